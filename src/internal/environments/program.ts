/**
 * Exec-server programs: an environment's `program` and `args` started as a
 * child that speaks newline-delimited JSON on its stdin and stdout (Codex's
 * stdio transport; `effect-exec serve --listen stdio`, or `ssh host …`). One
 * child per connection: when a child dies its link drops, and the next call
 * starts a new one. A child is killed with its process group (SIGTERM, then
 * SIGKILL after a grace) when its link closes, and every child still running
 * when the supervisor's scope ends.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import { ConnectionLost } from "../../Executor.ts"
import * as Defaults from "../defaults.ts"
import { fromStreams } from "../rpc/streams.ts"
import { type Transport, TransportClosed } from "../rpc/transport.ts"

/** What to start. */
export interface Program {
  readonly program: string
  readonly args?: ReadonlyArray<string> | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly cwd?: string | undefined
}

/** The end of what a child wrote to stderr, kept to say why it died. */
class StderrTail {
  private bytes = Buffer.alloc(0)
  add(chunk: Buffer): void {
    const limit = Defaults.environments.programStderrBytes
    this.bytes = Buffer.concat([this.bytes, chunk]).subarray(-limit)
  }
  /** Its last non-empty line. */
  get lastLine(): string | undefined {
    const lines = this.bytes.toString("utf8").split("\n").map((line) => line.trim()).filter((line) => line !== "")
    return lines[lines.length - 1]
  }
}

const describeExit = (child: ChildProcess, program: string, stderr: StderrTail): string => {
  const how = child.signalCode !== null ? `was killed by ${child.signalCode}` : `exited with code ${child.exitCode}`
  const said = stderr.lastLine
  return `the exec-server program ${program} ${how}${said === undefined ? "" : `; its stderr ended with: ${said}`}`
}

/** Completes once the child has exited, or after `millis` if it has not by then (`false`). */
const exitWithin = (child: ChildProcess, millis: number): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(true))
    const timer = setTimeout(() => resume(Effect.succeed(false)), millis)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.succeed(true))
    })
    return Effect.sync(() => clearTimeout(timer))
  })

/** Signals the child's process group (it leads one: it was started detached). */
const signalGroup = (child: ChildProcess, signal: NodeJS.Signals) => {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // already gone
  }
}

/** Ends the child's group: SIGTERM now, SIGKILL if it still runs after the grace. */
const terminate = (child: ChildProcess): void => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const force = setTimeout(() => signalGroup(child, "SIGKILL"), Defaults.environments.programKillGraceMillis)
  child.once("exit", () => clearTimeout(force))
  signalGroup(child, "SIGTERM")
}

/** Ends the child's group and waits for its exit. */
const kill = (child: ChildProcess): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    terminate(child)
  })

/** Starts and keeps the children of one program; see the module header. */
export class ProgramSupervisor {
  private readonly children = new Set<ChildProcess>()
  private readonly spec: Program

  constructor(spec: Program) {
    this.spec = spec
  }

  /** Starts a child and speaks NDJSON to it; closing the transport kills it. */
  readonly connect: Effect.Effect<Transport, ConnectionLost> = Effect.callback<Transport, ConnectionLost>(
    (resume) => {
      const { args, cwd, env, program } = this.spec
      const child = spawn(program, [...(args ?? [])], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, ...env },
        ...(cwd === undefined ? {} : { cwd }),
        // its own process group, so killing it takes what it started along (an ssh, a shell)
        detached: true
      })
      const stderr = new StderrTail()
      child.stderr.on("data", (chunk: Buffer) => stderr.add(chunk))
      child.stdin.on("error", () => {})
      child.once("error", (error) => {
        this.children.delete(child)
        resume(Effect.fail(new ConnectionLost({ description: `cannot start ${program}: ${error.message}` })))
      })
      child.once("spawn", () => {
        this.children.add(child)
        child.once("exit", () => this.children.delete(child))
        resume(Effect.succeed(this.transport(child, program, stderr)))
      })
      return kill(child)
    }
  )

  /** NDJSON over the child's stdio; the link's end is the child's, and its reason says how the child ended. */
  private transport(child: ChildProcess, program: string, stderr: StderrTail): Transport {
    const streams = fromStreams(child.stdout!, child.stdin!, { maxFrameBytes: Defaults.client.maxFrameBytes })
    // a frame that cannot be written (EPIPE) usually means the child died: say how, not only "write EPIPE"
    const explained = (error: TransportClosed) =>
      Effect.flatMap(exitWithin(child, 1_000), (exited) =>
        Effect.fail(
          exited
            ? new TransportClosed({ description: `${error.description}; ${describeExit(child, program, stderr)}` })
            : error
        ))
    return {
      ...streams,
      send: (frame) => Effect.catch(streams.send(frame), explained),
      post: (frame) => Effect.catch(streams.post(frame), explained),
      listen: (handlers) =>
        streams.listen({
          onFrame: handlers.onFrame,
          onClose: (reason) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              return handlers.onClose(describeExit(child, program, stderr))
            }
            // its stdout is gone (`reason`), so the child is of no more use: end it, then say how it ended
            child.once("exit", () => handlers.onClose(`${reason}; ${describeExit(child, program, stderr)}`))
            terminate(child)
          }
        }),
      close: Effect.andThen(streams.close, kill(child))
    }
  }

  /** Kills every child still running (the supervisor's scope ends). */
  get killAll(): Effect.Effect<void> {
    return Effect.forEach([...this.children], kill, { concurrency: "unbounded", discard: true })
  }
}
