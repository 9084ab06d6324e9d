/**
 * One child process on this machine: spawned in its own session (process
 * group), its pipes and exit written into its `ProcessLog`, its pipes paused
 * while a backpressured log holds a full unread window, its stdin written to
 * with de-duplication by `writeId`, and its whole group signalled. A start
 * may be wrapped (a sandbox): the hook gets the final environment and says
 * what to spawn instead, with what to feed extra file descriptors.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import type { Readable } from "node:stream"
import { InvalidRequest, SandboxRefused, SpawnFailed, type StartRequest } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { feed } from "../sandbox/bwrap.ts"
import { closingDescriptors } from "../sandbox/closeDescriptors.ts"
import { isLikelySandboxDenied } from "../sandbox/denial.ts"
import type { Launch } from "../sandbox/launcher.ts"
import { childEnvironment } from "./envPolicy.ts"
import { InputWriter, type LocalProcess, OutputFlow, signalGroup } from "./localProcess.ts"
import { OutputMemory } from "./outputMemory.ts"
import { type PipeReader, readPipe } from "./pipeReader.ts"
import { ProcessLog } from "./processLog.ts"

/** How a child is set up. */
export interface SpawnOptions {
  /** Output retained by its log (and the window a backpressured reader gets). */
  readonly retainedBytes: number
  /** The environment an `envPolicy` starts from. */
  readonly baseEnvironment: Readonly<Record<string, string | undefined>>
  /**
   * Whether reads and event streams get views of the output's memory that
   * they copy before their next read or pull (the exec-server's way), so that
   * memory is reused; otherwise each chunk handed out is the reader's own.
   */
  readonly lendOutput?: boolean | undefined
}

/**
 * Decides, from the final environment, what to spawn for a request instead of
 * its argv (`undefined`: the argv as is), or refuses it.
 */
export type WrapSpawn = (
  environment: Readonly<Record<string, string>>
) => Effect.Effect<Launch | undefined, SandboxRefused | SpawnFailed>

/** A running (or exited, not yet forgotten) child on pipes and its log. */
export class PipeProcess implements LocalProcess {
  readonly log: ProcessLog
  readonly child: NodeChildProcess.ChildProcess
  /** Completes once the child exited and both pipes reached their end. */
  readonly closed = Deferred.makeUnsafe<void>()
  /** How it is confined (`none`: not at all); a confined exit is classified by Codex's denial rule. */
  sandboxType: Protocol.SandboxType = "none"
  /** Run once, when the process is closed. */
  readonly onClosed: Array<() => void> = []
  private readonly flow: OutputFlow
  /** The readers of its pipes, once `attach` started them (flow control pauses and resumes these). */
  private readonly readers: Array<PipeReader> = []
  private readonly input = new InputWriter()

  private readonly memory: OutputMemory

  constructor(child: NodeChildProcess.ChildProcess, log: ProcessLog, memory: OutputMemory, now: number) {
    this.child = child
    this.log = log
    this.memory = memory
    this.flow = new OutputFlow(log, this.readers, now)
  }

  get lastReadAt(): number {
    return this.flow.lastReadAt
  }

  /** Whether the leader has not exited yet. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Signals the child's whole process group (it leads its own session). */
  signalGroup(signal: NodeJS.Signals): void {
    signalGroup(this.child.pid!, signal, () => this.child.kill(signal))
  }

  /** Kills the group and stops reading its pipes (the executor is going away). */
  destroy(): void {
    if (this.log.closed) return
    this.signalGroup("SIGKILL")
    for (const reader of this.readers) reader.destroy()
  }

  acknowledge(afterSeq: number, now: number): void {
    this.flow.acknowledge(afterSeq, now)
  }

  releaseBackpressure(): void {
    this.flow.releaseBackpressure()
  }

  /** Writes to stdin; answers once the pipe took the bytes, so memory stays bounded. */
  write(chunk: Uint8Array, writeId: string | undefined): Effect.Effect<Protocol.WriteStatus> {
    return this.input.write(this.child.stdin, this.log.exited, chunk, writeId)
  }

  /** A child on pipes has no terminal to resize. */
  resize(): boolean {
    return false
  }

  /** Wires the child's pipes and exit into the log. */
  attach(): void {
    const { child, log } = this
    let openStreams = 2
    // The exit is numbered once the pipes are drained, or after a grace period
    // when a background child keeps them open: Node often reports the exit
    // before the output the child wrote just before it, and a reader that sees
    // the exit first starts its drain clock too early.
    let exitStatus: { readonly code: number; readonly signal: NodeJS.Signals | null } | undefined
    let exitGrace: NodeJS.Timeout | undefined
    const closeIfDone = () => {
      if (openStreams === 0 && log.exited) {
        // before the close is told: a reader that sees it may look for what the process held
        for (const closed of this.onClosed.splice(0)) closed()
        log.markClosed()
        Deferred.doneUnsafe(this.closed, Exit.void)
      }
    }
    const recordExit = () => {
      if (exitStatus === undefined || log.exited) return
      clearTimeout(exitGrace)
      const denied = this.sandboxType !== "none" && isLikelySandboxDenied(exitStatus.code, log.retainedChunks())
      log.markExited(exitStatus.code, exitStatus.signal, denied)
      closeIfDone()
    }
    const pipe = (readable: Readable | null, stream: Protocol.OutputStream) => {
      if (readable === null) {
        openStreams--
        return
      }
      this.readers.push(readPipe(readable, this.memory.pipe(), {
        onChunk: (chunk) => {
          log.appendOutput(stream, chunk)
          this.flow.pauseIfFull()
        },
        onClose: () => {
          openStreams--
          if (openStreams === 0) recordExit()
          closeIfDone()
        }
      }))
    }
    pipe(child.stdout, "stdout")
    pipe(child.stderr, "stderr")
    child.stdin?.on("error", () => {})
    child.on("exit", (code, signal) => {
      exitStatus = { code: code ?? Protocol.signaledExitCode(signal), signal }
      if (openStreams === 0) recordExit()
      // at the grace's end, after one more look at the pipes: a loaded event loop may run this timer late,
      // with their last output (and their end) waiting in the same turn's I/O
      else exitGrace = setTimeout(() => setImmediate(recordExit), Defaults.processTable.exitGraceMillis)
    })
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

/** Fails with `CwdNotFound` unless `cwd` is a directory. */
export const checkCwd = (command: string, cwd: string) =>
  Effect.callback<void, SpawnFailed>((resume) => {
    NodeFs.stat(cwd, (error, stats) => {
      if (error === null && stats.isDirectory()) return resume(Effect.void)
      resume(Effect.fail(
        new SpawnFailed({
          kind: "CwdNotFound",
          command,
          description: error === null
            ? `working directory is not a directory: ${cwd}`
            : `working directory does not exist: ${cwd}`
        })
      ))
    })
  })

/** Spawns `request` (or what `launch` says instead) in its own session, its output going to a fresh log. */
const startChild = (
  request: StartRequest,
  options: SpawnOptions,
  now: number,
  environment: Readonly<Record<string, string>>,
  launch: Launch | undefined
) =>
  Effect.callback<LocalProcess, SpawnFailed | InvalidRequest | SandboxRefused>((resume) => {
    const [command, ...args] = request.argv as [string, ...Array<string>]
    const inputs = launch?.inputs ?? []
    // checked when spawning: a descriptor opened a moment earlier must not slip into the sandbox
    const spawned = launch === undefined
      ? { file: command, args }
      : closingDescriptors(launch.file, launch.args, 2 + inputs.length)
    if ("unclosable" in spawned) {
      launch?.release()
      return resume(Effect.fail(
        new SandboxRefused({
          kind: "Unavailable",
          description: `descriptors ${spawned.unclosable.join(", ")} of this process would reach the sandbox, and ` +
            `this host has no bash or perl to close them`
        })
      ))
    }
    let child: NodeChildProcess.ChildProcess
    try {
      child = NodeChildProcess.spawn(spawned.file, spawned.args, {
        cwd: request.cwd,
        env: environment,
        detached: true,
        stdio: [request.pipeStdin === true ? "pipe" : "ignore", "pipe", "pipe", ...inputs.map(() => "pipe" as const)],
        ...(request.arg0 && launch === undefined ? { argv0: request.arg0 } : {})
      })
    } catch (error) {
      launch?.release()
      return resume(Effect.fail(new InvalidRequest({ description: `cannot start ${command}: ${String(error)}` })))
    }
    child.once("error", (error) => {
      launch?.release()
      resume(Effect.fail(spawnFailure(launch?.file ?? command, error)))
    })
    child.once("spawn", () => {
      feed(child, inputs)
      const memory = new OutputMemory(options.lendOutput === true)
      const started = new PipeProcess(
        child,
        new ProcessLog(options.retainedBytes, request.backpressure === true, {
          memory,
          lends: options.lendOutput === true
        }),
        memory,
        now
      )
      if (launch !== undefined) {
        started.sandboxType = launch.sandboxType
        started.onClosed.push(launch.release)
      }
      started.attach()
      resume(Effect.succeed(started))
    })
  })

/**
 * Starts `request` as a child in its own session, its output going to a fresh
 * log; `wrap` (a sandbox) may replace what is spawned, or refuse it.
 */
export const spawnProcess = (
  request: StartRequest,
  options: SpawnOptions,
  now: number,
  wrap?: WrapSpawn
): Effect.Effect<LocalProcess, SpawnFailed | InvalidRequest | SandboxRefused> =>
  Effect.andThen(
    checkCwd(request.argv[0]!, request.cwd),
    Effect.suspend(() => {
      const environment = childEnvironment(request.env, request.envPolicy, options.baseEnvironment)
      return Effect.flatMap(
        wrap === undefined ? Effect.undefined : wrap(environment),
        (launch) => startChild(request, options, now, environment, launch)
      )
    })
  )
