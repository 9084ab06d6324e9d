/**
 * The `Executor` contract on this machine: each process runs in its own
 * process group (session) with a sequence-numbered log, exactly as an
 * exec-server's process table behaves (`shared/protocol.md`).
 *
 * Processes are spawned with `node:child_process` rather than Effect's
 * `ChildProcessSpawner`: the spawner signals the whole group when a leader
 * exits non-zero and when its scope closes, which would kill the background
 * children whose late output the protocol keeps, and it reports a death by
 * signal as an error without the signal's name.
 *
 * @since 0.1.0
 */
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import {
  Executor,
  ExecutorError,
  fail,
  InvalidRequest,
  type ProcessEvent,
  ProcessIdInUse,
  SpawnFailed,
  type StartRequest,
  UnknownProcess,
  Unsupported
} from "./Executor.ts"
import { childEnvironment } from "./internal/envPolicy.ts"
import { eventStream, longPollRead, ProcessLog } from "./internal/processLog.ts"
import * as Protocol from "./Protocol.ts"

/**
 * Tuning of the local process table; every field has the Codex default.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** Output retained per process (default 1 MiB). */
  readonly retainedBytes?: number
  /** How long a closed process stays readable and keeps its id (default 30 s). */
  readonly closedRetention?: Duration.Input
  /**
   * Closed processes kept at most (default 1024): past it the oldest is
   * forgotten before its retention ends, so memory is bounded by count, not
   * only by time.
   */
  readonly maxClosedRetained?: number
  /**
   * A process started with `backpressure` falls back to dropping its oldest
   * output when no reader has come for this long (default 10 s), so a reader
   * that went away cannot stall it forever.
   */
  readonly readerIdleTimeout?: Duration.Input
  /** The environment an `envPolicy` starts from (default `process.env`). */
  readonly baseEnvironment?: Readonly<Record<string, string | undefined>>
}

interface Running {
  readonly state: "running"
  readonly log: ProcessLog
  readonly child: NodeChildProcess.ChildProcess
  readonly closed: Deferred.Deferred<void>
  /** The last `writeId`s written, oldest first: a repeated one is not written again. */
  readonly writeIds: Set<string>
  paused: boolean
  lastReadAt: number
}

/** Write ids remembered per process for de-duplication (as Codex keeps them). */
const rememberedWriteIds = 4096

type Entry = { readonly state: "starting" } | Running

/** How long an exit waits for the pipes to drain before it is numbered anyway. */
const exitGraceMillis = 200

const isRunning = (child: NodeChildProcess.ChildProcess) => child.exitCode === null && child.signalCode === null

/** Signals the child's whole process group (it leads its own session). */
const signalGroup = (child: NodeChildProcess.ChildProcess, signal: NodeJS.Signals): void => {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    child.kill(signal)
  }
}

const spawnFailure = (command: string, error: NodeJS.ErrnoException) => {
  switch (error.code) {
    case "ENOENT":
      return new SpawnFailed({ kind: "CommandNotFound", command, description: `command not found: ${command}` })
    case "EACCES":
      return new SpawnFailed({ kind: "PermissionDenied", command, description: `permission denied: ${command}` })
    default:
      return new SpawnFailed({ kind: "Other", command, description: `failed to start ${command}: ${error.message}` })
  }
}

const checkCwd = (command: string, cwd: string) =>
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

/**
 * Builds a local executor in the current scope; closing the scope kills every
 * process group it still has.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const capacity = options.retainedBytes ?? Protocol.Limits.retainedBytesPerProcess
  const closedRetention = Duration.fromInputUnsafe(options.closedRetention ?? Protocol.Limits.closedRetentionMillis)
  const readerIdleTimeout = Duration.fromInputUnsafe(options.readerIdleTimeout ?? "10 seconds")
  const baseEnvironment = options.baseEnvironment ?? process.env
  const table = new Map<string, Entry>()
  const supervisors = yield* FiberSet.make()
  const maxClosedRetained = options.maxClosedRetained ?? 1024
  /** Closed processes still retained, oldest first (a Set keeps insertion order). */
  const closedOrder = new Set<string>()
  const forget = (processId: string, entry: Entry) => {
    if (table.get(processId) === entry) table.delete(processId)
    closedOrder.delete(processId)
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const entry of table.values()) {
        if (entry.state !== "running" || entry.log.closed) continue
        signalGroup(entry.child, "SIGKILL")
        entry.child.stdout?.destroy()
        entry.child.stderr?.destroy()
      }
      table.clear()
    })
  )

  const resumeIfRoom = (entry: Running) => {
    if (entry.paused && (!entry.log.backpressure || entry.log.unreadBytes < capacity)) {
      entry.paused = false
      entry.child.stdout?.resume()
      entry.child.stderr?.resume()
    }
  }

  /** Wires a spawned child's pipes and exit into its log. */
  const attach = (child: NodeChildProcess.ChildProcess, entry: Running) => {
    const { log } = entry
    let openStreams = 2
    // The exit is numbered once the pipes are drained, or after a grace period
    // when a background child keeps them open: Node often reports the exit
    // before the output the child wrote just before it, and a reader that sees
    // the exit first starts its drain clock too early.
    let exitStatus: { readonly code: number; readonly signal: NodeJS.Signals | null } | undefined
    let exitGrace: NodeJS.Timeout | undefined
    const recordExit = () => {
      if (exitStatus === undefined || log.exited) return
      clearTimeout(exitGrace)
      log.markExited(exitStatus.code, exitStatus.signal)
      closeIfDone()
    }
    const closeIfDone = () => {
      if (openStreams === 0 && log.exited) {
        log.markClosed()
        Deferred.doneUnsafe(entry.closed, Exit.void)
      }
    }
    const pipe = (readable: NodeJS.ReadableStream | null, stream: Protocol.OutputStream) => {
      if (readable === null) {
        openStreams--
        return
      }
      readable.on("data", (chunk: Buffer) => {
        log.appendOutput(stream, chunk)
        if (log.backpressure && !entry.paused && log.unreadBytes >= capacity) {
          entry.paused = true
          child.stdout?.pause()
          child.stderr?.pause()
        }
      })
      readable.on("error", () => {})
      readable.on("close", () => {
        openStreams--
        if (openStreams === 0) recordExit()
        closeIfDone()
      })
    }
    pipe(child.stdout, "stdout")
    pipe(child.stderr, "stderr")
    child.stdin?.on("error", () => {})
    child.on("exit", (code, signal) => {
      exitStatus = { code: code ?? Protocol.signaledExitCode(signal), signal }
      if (openStreams === 0) recordExit()
      else exitGrace = setTimeout(recordExit, exitGraceMillis)
    })
  }

  const spawn = (request: StartRequest, entry: (child: NodeChildProcess.ChildProcess) => Running) =>
    Effect.callback<Running, SpawnFailed | InvalidRequest>((resume) => {
      const [command, ...args] = request.argv as [string, ...Array<string>]
      let child: NodeChildProcess.ChildProcess
      try {
        child = NodeChildProcess.spawn(command, args, {
          cwd: request.cwd,
          env: childEnvironment(request.env, request.envPolicy, baseEnvironment),
          detached: true,
          stdio: [request.pipeStdin === true ? "pipe" : "ignore", "pipe", "pipe"],
          ...(request.arg0 ? { argv0: request.arg0 } : {})
        })
      } catch (error) {
        return resume(Effect.fail(new InvalidRequest({ description: `cannot start ${command}: ${String(error)}` })))
      }
      child.once("error", (error) => resume(Effect.fail(spawnFailure(command, error))))
      child.once("spawn", () => {
        const running = entry(child)
        attach(child, running)
        resume(Effect.succeed(running))
      })
    })

  /** Lets a paused process go lossy when no reader has come for a while. */
  const releaseWhenReaderIdle = (entry: Running): Effect.Effect<never> =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(readerIdleTimeout)
        const now = yield* Clock.currentTimeMillis
        if (entry.log.backpressure && now - entry.lastReadAt >= Duration.toMillis(readerIdleTimeout)) {
          entry.log.releaseBackpressure()
          resumeIfRoom(entry)
        }
      }
    })

  const start = Effect.fn("LocalExecutor.start")(function*(request: StartRequest) {
    const { processId } = request
    if (request.argv.length === 0) {
      return yield* fail(new InvalidRequest({ description: "argv must not be empty" }))
    }
    if (request.tty) return yield* fail(new Unsupported({ feature: "tty (pty) processes" }))
    if (table.has(processId)) return yield* fail(new ProcessIdInUse({ processId }))
    table.set(processId, { state: "starting" })
    const now = yield* Clock.currentTimeMillis
    const closed = yield* Deferred.make<void>()
    const entry = yield* checkCwd(request.argv[0]!, request.cwd).pipe(
      Effect.andThen(spawn(request, (child) => ({
        state: "running",
        log: new ProcessLog(capacity, request.backpressure === true),
        child,
        closed,
        writeIds: new Set(),
        paused: false,
        lastReadAt: now
      }))),
      Effect.mapError((reason) => new ExecutorError({ reason })),
      Effect.onError(() => Effect.sync(() => table.delete(processId)))
    )
    table.set(processId, entry)
    yield* FiberSet.run(supervisors, Effect.gen(function*() {
      yield* Effect.raceFirst(
        Deferred.await(closed),
        entry.log.backpressure ? releaseWhenReaderIdle(entry) : Effect.never
      )
      closedOrder.add(processId)
      if (closedOrder.size > maxClosedRetained) {
        // the oldest whose output was all read: output a reader still wants is kept until its retention ends
        for (const candidate of closedOrder) {
          const candidateEntry = table.get(candidate)
          if (candidateEntry === undefined || candidateEntry.state !== "running") {
            closedOrder.delete(candidate)
            break
          }
          if (candidateEntry.log.unreadBytes === 0) {
            forget(candidate, candidateEntry)
            break
          }
        }
      }
      yield* Effect.sleep(closedRetention)
      forget(processId, entry)
    }))
    return { processId, sandboxType: "none" }
    // from the reservation to the supervisor, all or nothing: an interrupted start must not leave a child behind
  }, Effect.uninterruptible)

  const lookup = (processId: string) =>
    Effect.suspend(() => {
      const entry = table.get(processId)
      if (entry === undefined) return fail(new UnknownProcess({ processId }))
      if (entry.state === "starting") {
        return fail(new InvalidRequest({ description: `process id ${processId} is starting` }))
      }
      return Effect.succeed(entry)
    })

  /** Marks `afterSeq` as seen by a reader, which may let a paused process go on. */
  const acknowledge = (entry: Running, afterSeq: number) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      entry.lastReadAt = now
      entry.log.acknowledge(afterSeq)
      resumeIfRoom(entry)
    })

  const read = Effect.fn("LocalExecutor.read")(function*(params: Protocol.ReadParams) {
    const entry = yield* lookup(params.processId)
    yield* acknowledge(entry, params.afterSeq ?? 0)
    return yield* longPollRead(entry.log, params)
  })

  const write = Effect.fn("LocalExecutor.write")(function*(params: Protocol.WriteParams) {
    const entry = table.get(params.processId)
    if (entry === undefined) return "unknownProcess" as const
    if (entry.state === "starting") return "starting" as const
    const stdin = entry.child.stdin
    if (stdin === null || stdin.destroyed || stdin.writableEnded || entry.log.exited) return "stdinClosed" as const
    const { writeId } = params
    // a retried write (same id) was accepted already: answer the same, write nothing
    if (writeId !== undefined && entry.writeIds.has(writeId)) return "accepted" as const
    if (writeId !== undefined) {
      entry.writeIds.add(writeId)
      if (entry.writeIds.size > rememberedWriteIds) entry.writeIds.delete(entry.writeIds.values().next().value!)
    }
    if (!stdin.write(params.chunk)) {
      // the child reads slower than it is written to: answer once its pipe took the bytes, so memory stays bounded
      yield* Effect.callback<void>((resume) => {
        const done = () => resume(Effect.void)
        stdin.once("drain", done)
        stdin.once("close", done)
        return Effect.sync(() => {
          stdin.removeListener("drain", done)
          stdin.removeListener("close", done)
        })
      })
    }
    return "accepted" as const
  })

  const terminate = Effect.fn("LocalExecutor.terminate")(function*(processId: string) {
    const entry = table.get(processId)
    if (entry === undefined || entry.state === "starting") return { running: false }
    const running = isRunning(entry.child)
    // the leader may be gone while its group still holds the pipes: those die too
    if (running || !entry.log.closed) signalGroup(entry.child, "SIGKILL")
    return { running }
  })

  const signal = Effect.fn("LocalExecutor.signal")(function*(processId: string, _signal: Protocol.SignalName) {
    const entry = table.get(processId)
    if (entry !== undefined && entry.state === "running" && isRunning(entry.child)) signalGroup(entry.child, "SIGINT")
  })

  const events = (
    processId: string,
    options?: { readonly afterSeq?: number }
  ): Stream.Stream<ProcessEvent, ExecutorError> =>
    Stream.unwrap(Effect.map(lookup(processId), (entry) => eventStream(entry.log, options?.afterSeq ?? 0)))

  return Executor.of({ start, read, write, terminate, signal, events, defaultCwd: Effect.sync(() => process.cwd()) })
})

/**
 * The local executor as a layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Executor, LocalExecutor } from "effect-exec"
 *
 * const program = Effect.gen(function*() {
 *   const executor = yield* Executor.Executor
 *   yield* executor.start({ processId: "p1", argv: ["echo", "hi"], cwd: "/tmp", env: {}, tty: false })
 *   return yield* executor.read({ processId: "p1", waitMs: 1000 })
 * }).pipe(Effect.provide(LocalExecutor.layer()))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Executor> => Layer.effect(Executor, make(options))
