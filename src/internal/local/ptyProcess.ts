/**
 * One child on a pseudo-terminal: it leads its own session with the terminal
 * as its controlling terminal; what it writes (stdout and stderr, merged by
 * the terminal) goes into its `ProcessLog` on stream `"pty"`; writes type into
 * the terminal; `resize` sets the terminal's size (the child gets SIGWINCH).
 * Flow control and de-duplicated writes are those of a child on pipes
 * (`localProcess`), and so are the exit grace and the close (`exitTracking`).
 *
 * The terminal comes from `@lydell/node-pty`'s native binding (`fork` and
 * `resize`, what its `UnixTerminal` wraps), not from `UnixTerminal` itself:
 * `UnixTerminal` destroys the terminal 200 ms after the child exits, which
 * loses whatever a paused (backpressured) reader has not taken yet, and it
 * reports the exit only after that. Here the terminal is read to its end (EIO,
 * once no process holds its other side), like a pipe.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs/promises"
import { createRequire } from "node:module"
import * as NodeOs from "node:os"
import * as NodeTty from "node:tty"
import { InvalidRequest, SpawnFailed, type StartRequest, Unsupported } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { execName, resolveCommand } from "./commandPath.ts"
import { childEnvironment } from "./envPolicy.ts"
import { ExitTracker } from "./exitTracking.ts"
import {
  InputWriter,
  type LocalProcess,
  OutputFlow,
  type PreparedStart,
  signalGroup,
  type SpawnOptions
} from "./localProcess.ts"
import { ProcessLog } from "./processLog.ts"
import { spawnTurn } from "./spawnTurns.ts"
import { checkCwd } from "./startChecks.ts"

/** The part of `@lydell/node-pty`'s native binding used here (its 1.1.0 signatures). */
interface PtyBinding {
  fork(
    file: string,
    args: ReadonlyArray<string>,
    env: ReadonlyArray<string>,
    cwd: string,
    cols: number,
    rows: number,
    uid: number,
    gid: number,
    utf8: boolean,
    helperPath: string,
    onExit: (exitCode: number, signal: number) => void
  ): { readonly fd: number; readonly pid: number; readonly pty: string }
  resize(fd: number, cols: number, rows: number): void
}

const require = createRequire(import.meta.url)
let loaded: { readonly binding: PtyBinding; readonly helperPath: string } | undefined

/** The binding, loaded on the first tty start (a machine without it still runs pipes). */
const loadBinding = Effect.try({
  try: () => {
    if (loaded === undefined) {
      const { requireBinary } = require("@lydell/node-pty/requireBinary.js") as {
        requireBinary: (file: string) => PtyBinding
      }
      // macOS spawns through a helper shipped beside the binary; Linux forks directly
      const helperPath = process.platform === "darwin"
        ? require.resolve(`@lydell/node-pty-${process.platform}-${process.arch}/spawn-helper`)
        : "spawn-helper-unused"
      loaded = { binding: requireBinary("pty.node"), helperPath }
    }
    return loaded
  },
  catch: (error) =>
    new Unsupported({ feature: `tty processes here (@lydell/node-pty could not be loaded: ${String(error)})` })
})

const signalNames = new Map(
  Object.entries(NodeOs.constants.signals).map(([name, number]) => [number, name as NodeJS.Signals])
)

/**
 * Kills the processes of session `sid` but its leader (those in other groups:
 * a job-control shell's jobs), found in `/proc` without blocking the event
 * loop.
 */
const killSessionMembers = async (sid: number): Promise<void> => {
  let entries: ReadonlyArray<string>
  try {
    entries = await NodeFs.readdir("/proc")
  } catch {
    return // no /proc: the leader's group is all we can reach
  }
  await Promise.all(entries.map(async (entry) => {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === sid) return
    try {
      const stat = await NodeFs.readFile(`/proc/${pid}/stat`, "utf8")
      // fields after the command name: state ppid pgrp session
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (Number(fields[3]) === sid) process.kill(pid, "SIGKILL")
    } catch {
      // gone meanwhile
    }
  }))
}

/** A running (or exited, not yet forgotten) child on a pseudo-terminal and its log. */
export class PtyProcess implements LocalProcess {
  readonly log: ProcessLog
  readonly closed = Deferred.makeUnsafe<void>()
  /** A process on a terminal is never confined (a sandboxed start of one is refused). */
  readonly sandboxType = "none" as const
  /** The child's pid: its process group and its session have the same id. */
  readonly pid: number
  /** Our side of the terminal: the child's output is read from it, its input written to it. */
  private readonly terminal: NodeTty.ReadStream
  private readonly resizeTerminal: (size: Protocol.TerminalSize) => void
  private readonly flow: OutputFlow
  private readonly input: InputWriter
  private readonly exits: ExitTracker
  private leaderExited = false

  constructor(
    forked: { readonly fd: number; readonly pid: number },
    binding: PtyBinding,
    log: ProcessLog,
    now: number,
    stdinWindowBytes: number
  ) {
    this.pid = forked.pid
    this.log = log
    this.terminal = new NodeTty.ReadStream(forked.fd)
    this.resizeTerminal = (size) => binding.resize(forked.fd, size.cols, size.rows)
    this.flow = new OutputFlow(log, [this.terminal], now)
    this.input = new InputWriter(this.terminal, stdinWindowBytes)
    this.exits = new ExitTracker({ log, closed: this.closed, outputEnded: () => this.terminal.destroyed })
  }

  get lastReadAt(): number {
    return this.flow.lastReadAt
  }

  get running(): boolean {
    return !this.leaderExited
  }

  /**
   * Signals the child's process group. SIGKILL reaches its whole session:
   * a job-control shell on a terminal runs each job in a group of its own
   * (those are found a moment later).
   */
  signalGroup(signal: NodeJS.Signals): void {
    signalGroup(this.pid, signal, () => {})
    if (signal === "SIGKILL") void killSessionMembers(this.pid)
  }

  destroy(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.log.closed) return Effect.void
      signalGroup(this.pid, "SIGKILL", () => {})
      this.terminal.destroy()
      return Effect.promise(() => killSessionMembers(this.pid))
    })
  }

  acknowledge(afterSeq: number, now: number): void {
    this.flow.acknowledge(afterSeq, now)
  }

  releaseBackpressure(): void {
    this.flow.releaseBackpressure()
  }

  /** Types into the terminal: `accepted` once it took every byte (see `InputWriter`). */
  write(chunk: Uint8Array, writeId: string | undefined): Effect.Effect<Protocol.WriteStatus> {
    return this.input.write(chunk, writeId, this.log.exited)
  }

  /** A terminal's input has no end but the Ctrl-D typed into it. */
  closeStdin(): undefined {
    return undefined
  }

  /** Sets the terminal's size; nothing to do once the child exited. */
  resize(size: Protocol.TerminalSize): boolean {
    if (!this.leaderExited && !this.terminal.destroyed) {
      try {
        this.resizeTerminal(size)
      } catch {
        // the terminal went away meanwhile: the same as after the exit
      }
    }
    return true
  }

  /** The binding's exit callback: the leader was waited for. */
  readonly onExit = (exitCode: number, signal: number): void => {
    this.leaderExited = true
    const name = signalNames.get(signal) ?? null
    this.exits.leaderExited({ code: signal === 0 ? exitCode : 128 + signal, signal: signal === 0 ? null : name })
  }

  /** Wires the terminal's output and end into the log. */
  attach(): void {
    this.terminal.on("data", (chunk: Buffer) => {
      this.log.appendOutput("pty", chunk)
      this.flow.pauseIfFull()
    })
    // EIO once no process holds the terminal's other side: its end, not a failure
    this.terminal.on("error", () => {})
    this.terminal.on("close", () => this.exits.outputEnd())
  }
}

/**
 * Prepares `request` on a fresh pseudo-terminal: its working directory
 * checked, its program found (a missing program is a typed error, not a
 * child that prints the failure on its terminal), the terminal's binding
 * loaded.
 */
export const preparePty = (
  request: StartRequest,
  options: SpawnOptions
): Effect.Effect<PreparedStart, SpawnFailed | InvalidRequest | Unsupported> =>
  Effect.gen(function*() {
    const [command, ...args] = request.argv as [string, ...Array<string>]
    if (request.arg0 !== undefined && request.arg0 !== null) {
      return yield* Effect.fail(
        new InvalidRequest({
          description: "arg0 cannot be set for a tty process (its argv[0] is the program it runs)",
          invalidParams: true
        })
      )
    }
    const env = childEnvironment(request.env, request.envPolicy, options.baseEnvironment)
    yield* checkCwd(command, request.cwd)
    const program = yield* resolveCommand(command, request.cwd, env.PATH)
    const { binding, helperPath } = yield* loadBinding
    const size = request.size ?? Defaults.terminal
    const spawn = (now: number) =>
      Effect.gen(function*() {
        const log = new ProcessLog(options.retainedBytes, request.backpressure === true)
        let started: PtyProcess | undefined
        // an exit reported before `started` is set (the spawn's turn may let the event loop run first) waits here
        let earlyExit: readonly [exitCode: number, signal: number] | undefined
        // the fork, one at a time
        const forked = yield* spawnTurn(Effect.try({
          try: () =>
            // the fork looks the command up again (execvp): argv[0] stays as given
            binding.fork(
              execName(command, program, env.PATH),
              args,
              Object.entries(env).map(([name, value]) => `${name}=${value}`),
              request.cwd,
              size.cols,
              size.rows,
              -1,
              -1,
              true,
              helperPath,
              (exitCode, signal) => {
                if (started === undefined) earlyExit = [exitCode, signal]
                else started.onExit(exitCode, signal)
              }
            ),
          catch: (error) =>
            new SpawnFailed({
              kind: "Other",
              command,
              description: `failed to start ${command} on a terminal: ${error instanceof Error ? error.message : error}`
            })
        }))
        started = new PtyProcess(forked, binding, log, now, options.stdinWindowBytes)
        started.attach()
        if (earlyExit !== undefined) started.onExit(...earlyExit)
        return started as LocalProcess
      })
    return { spawn }
  })
