/**
 * One child process on this machine: spawned in its own session (process
 * group), its pipes and exit written into its `ProcessLog`, its pipes paused
 * while a backpressured log holds a full unread window, its stdin written to
 * with de-duplication by `writeId`, and its whole group signalled. A start
 * is prepared first (its working directory, its program found by
 * `commandPath`, its sandbox: the slow part, which may be interrupted), then
 * spawned. It may be wrapped (a sandbox): the hook gets the program and the
 * final environment and says what to spawn instead, with what to feed extra
 * file descriptors.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as NodeChildProcess from "node:child_process"
import type { Readable } from "node:stream"
import { InvalidRequest, type SandboxRefused, SpawnFailed, type StartRequest } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { OutputMemory } from "../outputMemory.ts"
import { feed } from "../sandbox/bwrap.ts"
import { isLikelySandboxDenied } from "../sandbox/denial.ts"
import type { Launch } from "../sandbox/launcher.ts"
import { resolveCommand } from "./commandPath.ts"
import { childEnvironment } from "./envPolicy.ts"
import { ExitTracker } from "./exitTracking.ts"
import {
  type Holdings,
  InputWriter,
  type LocalProcess,
  OutputFlow,
  type PreparedStart,
  signalGroup,
  type SpawnOptions
} from "./localProcess.ts"
import { OutputPipe, type OutputPipes } from "./outputPipes.ts"
import { type PipeReader, readDescriptor, readPipe } from "./pipeReader.ts"
import { ProcessLog } from "./processLog.ts"
import { spawnTurn } from "./spawnTurns.ts"
import { checkCwd } from "./startChecks.ts"

/**
 * Decides, from the program found and the final environment, what to spawn
 * for a request instead of its argv (`undefined`: the argv as is), or refuses
 * it; what it holds on the host goes to `hold`.
 */
export type WrapSpawn = (
  program: string,
  environment: Readonly<Record<string, string>>,
  hold: (release: () => void) => void
) => Effect.Effect<Launch | undefined, SandboxRefused | InvalidRequest>

/** A running (or exited, not yet forgotten) child on pipes and its log. */
export class PipeProcess implements LocalProcess {
  readonly log: ProcessLog
  readonly child: NodeChildProcess.ChildProcess
  /** Completes once the child exited and both pipes reached their end. */
  readonly closed = Deferred.makeUnsafe<void>()
  /** How it is confined (`none`: not at all); a confined exit is classified by Codex's denial rule. */
  readonly sandboxType: Protocol.SandboxType
  /** What its start holds on the host: given back once it is closed. */
  private readonly holdings: Holdings
  private readonly flow: OutputFlow
  private readonly input: InputWriter
  /** Where its output is read into. */
  private readonly memory: OutputMemory
  /** The readers of its pipes, once `attach` started them (flow control pauses and resumes these). */
  private readonly readers: Array<PipeReader> = []
  /** Its stdout and stderr, when they are real pipes rather than Node's sockets. */
  private readonly outputs: StdoutAndStderr | undefined

  constructor(
    child: NodeChildProcess.ChildProcess,
    log: ProcessLog,
    now: number,
    options: {
      readonly sandboxType: Protocol.SandboxType
      readonly holdings: Holdings
      readonly stdinWindowBytes: number
      readonly memory: OutputMemory
      readonly outputs: StdoutAndStderr | undefined
    }
  ) {
    this.child = child
    this.log = log
    this.sandboxType = options.sandboxType
    this.holdings = options.holdings
    this.memory = options.memory
    this.outputs = options.outputs
    this.flow = new OutputFlow(log, this.readers, now)
    this.input = new InputWriter(child.stdin, options.stdinWindowBytes)
  }

  get lastReadAt(): number {
    return this.flow.lastReadAt
  }

  get pid(): number {
    return this.child.pid!
  }

  /** Whether the leader has not exited yet. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Signals the child's whole process group (it leads its own session). */
  signalGroup(signal: NodeJS.Signals): void {
    signalGroup(this.child.pid!, signal, () => this.child.kill(signal))
  }

  /**
   * Kills the group and stops reading its pipes (the executor is going away).
   * A sandbox that holds mount points on the host is waited for until it is
   * gone (its pipes ended: nothing inside holds them any more), so that they
   * are removed, and never while it may still use them; past the wait they
   * are left.
   */
  destroy(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.log.closed) return Effect.void
      this.signalGroup("SIGKILL")
      const stopReading = Effect.sync(() => {
        for (const reader of this.readers) reader.destroy()
      })
      if (this.holdings.isEmpty) return stopReading
      // read to the end, whatever a paused reader left
      this.flow.releaseBackpressure()
      return Deferred.await(this.closed).pipe(
        Effect.timeoutOption(Defaults.processTable.destroyWaitMillis),
        Effect.andThen(stopReading)
      )
    })
  }

  acknowledge(afterSeq: number, now: number): void {
    this.flow.acknowledge(afterSeq, now)
  }

  releaseBackpressure(): void {
    this.flow.releaseBackpressure()
  }

  /** Writes to stdin: `accepted` once the pipe took every byte (see `InputWriter`). */
  write(chunk: Uint8Array, writeId: string | undefined): Effect.Effect<Protocol.WriteStatus> {
    return this.input.write(chunk, writeId, this.log.exited)
  }

  /** A child on pipes has no terminal to resize. */
  resize(): boolean {
    return false
  }

  /** Ends the stdin pipe once the writes queued before it are flushed: the child reads end-of-file. */
  closeStdin(): Protocol.WriteStatus {
    const stdin = this.child.stdin
    if (stdin === null || stdin.destroyed || stdin.writableEnded || this.log.exited) return "stdinClosed"
    stdin.end()
    return "accepted"
  }

  /** Wires the child's pipes and exit into the log. */
  attach(): void {
    const { child, log } = this
    let openStreams = 2
    const exits = new ExitTracker({
      log,
      closed: this.closed,
      outputEnded: () => openStreams === 0,
      sandboxDenied: (code) => this.sandboxType !== "none" && isLikelySandboxDenied(code, log.retainedChunks()),
      beforeClose: () => {
        // nothing reads the input any more: writes still waiting are answered stdinClosed
        child.stdin?.destroy()
        this.holdings.releaseAll()
      }
    })
    const pipe = (source: OutputPipe | Readable | null, stream: Protocol.OutputStream) => {
      if (source === null) {
        openStreams--
        return
      }
      const handlers = {
        onChunk: (chunk: Buffer) => {
          log.appendOutput(stream, chunk)
          this.flow.pauseIfFull()
        },
        onClose: () => {
          openStreams--
          if (openStreams === 0) exits.outputEnd()
        }
      }
      this.readers.push(
        source instanceof OutputPipe
          ? readDescriptor(source.takeReadEnd(), this.memory.pipe(), handlers)
          : readPipe(source, this.memory.pipe(), handlers)
      )
    }
    pipe(this.outputs?.[0] ?? child.stdout, "stdout")
    pipe(this.outputs?.[1] ?? child.stderr, "stderr")
    child.stdin?.on("error", () => {})
    child.on("exit", (code, signal) => exits.leaderExited({ code: code ?? Protocol.signaledExitCode(signal), signal }))
  }
}

/** The typed failure for an error of starting `command`. */
export const spawnFailure = (command: string, error: NodeJS.ErrnoException) => {
  switch (error.code) {
    case "ENOENT":
      return new SpawnFailed({ kind: "CommandNotFound", command, description: `command not found: ${command}` })
    case "EACCES":
      return new SpawnFailed({ kind: "PermissionDenied", command, description: `permission denied: ${command}` })
    default:
      return new SpawnFailed({ kind: "Other", command, description: `failed to start ${command}: ${error.message}` })
  }
}

/** Spawns `request`'s `program` (or what `launch` says instead) in its own session, its output going to a fresh log. */
const startChild = (
  request: StartRequest,
  options: SpawnOptions,
  now: number,
  prepared: {
    readonly program: string
    readonly environment: Readonly<Record<string, string>>
    readonly launch: Launch | undefined
    readonly holdings: Holdings
  },
  outputs: StdoutAndStderr | undefined
) =>
  Effect.callback<LocalProcess, SpawnFailed | InvalidRequest>((resume) => {
    const { environment, holdings, launch, program } = prepared
    const [command, ...args] = request.argv as [string, ...Array<string>]
    const inputs = launch?.inputs ?? []
    const stdio: Array<"pipe" | "ignore" | number> = [
      request.pipeStdin === true ? "pipe" : "ignore",
      outputs?.[0].writeFd ?? "pipe",
      outputs?.[1].writeFd ?? "pipe",
      ...inputs.map(() => "pipe" as const)
    ]
    let child: NodeChildProcess.ChildProcess
    try {
      child = launch === undefined
        ? NodeChildProcess.spawn(program, args, {
          cwd: request.cwd,
          env: environment,
          detached: true,
          stdio,
          // found on the child's PATH once: argv[0] stays the command as given
          argv0: request.arg0 || command
        })
        : NodeChildProcess.spawn(launch.file, launch.args, {
          cwd: request.cwd,
          env: launch.environment,
          detached: true,
          stdio
        })
    } catch (error) {
      return resume(Effect.fail(new InvalidRequest({ description: `cannot start ${command}: ${String(error)}` })))
    } finally {
      // the child has its own copies now (or never will): a pipe ends when the child's copies are closed
      outputs?.[0].closeWriteEnd()
      outputs?.[1].closeWriteEnd()
    }
    child.once("error", (error) => resume(Effect.fail(spawnFailure(launch?.file ?? command, error))))
    child.once("spawn", () => {
      feed(child, inputs)
      const memory = new OutputMemory(options.lendOutput === true ? "always" : "whileLent")
      const started = new PipeProcess(
        child,
        new ProcessLog(options.retainedBytes, request.backpressure === true, {
          memory,
          lends: options.lendOutput === true,
          windowBytes: options.windowBytes
        }),
        now,
        {
          sandboxType: launch?.sandboxType ?? "none",
          holdings,
          stdinWindowBytes: options.stdinWindowBytes,
          memory,
          outputs
        }
      )
      started.attach()
      resume(Effect.succeed(started))
    })
  })

/**
 * Prepares `request` as a child on pipes: its working directory checked, its
 * program found, and `wrap` (a sandbox) asked what to spawn instead, or
 * refusing it; what the sandbox holds goes to `holdings`.
 */
export const prepareChild = (
  request: StartRequest,
  options: SpawnOptions,
  holdings: Holdings,
  wrap?: WrapSpawn
): Effect.Effect<PreparedStart, SpawnFailed | InvalidRequest | SandboxRefused> =>
  Effect.gen(function*() {
    const command = request.argv[0]!
    yield* checkCwd(command, request.cwd)
    const environment = childEnvironment(request.env, request.envPolicy, options.baseEnvironment)
    const program = yield* resolveCommand(command, request.cwd, environment.PATH)
    const launch = wrap === undefined ? undefined : yield* wrap(program, environment, holdings.hold)
    return {
      // the fork, one at a time (the checks and the sandbox's preparation above are not)
      spawn: (now: number) =>
        withOutputPipes(
          options.outputPipes,
          (outputs) => spawnTurn(startChild(request, options, now, { program, environment, launch, holdings }, outputs))
        )
    }
  })

/** A child's stdout and stderr pipes. */
type StdoutAndStderr = readonly [OutputPipe, OutputPipe]

/**
 * Runs `use` with a stdout and a stderr pipe from `supply` (`undefined`:
 * none, the child gets Node's sockets), taken before the spawn turn (making
 * pipes takes one), and closes whatever of them `use` did not give away. The
 * take is not interruptible, like the spawn it is part of, and need not be:
 * it waits for a batch at most `Defaults.pipes.batchTimeoutMillis`.
 */
const withOutputPipes = <A, E>(
  supply: OutputPipes | undefined,
  use: (outputs: StdoutAndStderr | undefined) => Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  supply === undefined ?
    use(undefined) :
    Effect.acquireUseRelease(
      supply.take(2),
      (pipes) => use(pipes as StdoutAndStderr | undefined),
      (pipes) => Effect.sync(() => pipes?.forEach((pipe) => pipe.close()))
    )
