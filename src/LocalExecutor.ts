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
 * A `tty` request runs on a pseudo-terminal (`@lydell/node-pty`): its output
 * is on stream `"pty"`, writes type into the terminal, `resize` sets its size.
 *
 * The process groups die with this process, however it ends: closing the
 * executor's scope kills them, and a watchdog outside them (`parentWatchdog`)
 * kills those still running when this process dies without closing it
 * (SIGKILL, an unhandled Ctrl-C).
 *
 * The roles live under `internal/local/`: `localProcess` (what the executor
 * asks of a process, and the flow control and writes both kinds share),
 * `childProcess` (a child on pipes: spawn, pipes, exit, stdin, signals),
 * `ptyProcess` (a child on a pseudo-terminal), `exitTracking` (when both
 * kinds' exit and close are numbered), `processTable` (ids,
 * retention, bounds), `processLog` (the seq-numbered log and its long-poll),
 * `envPolicy`, `parentWatchdog`. A start with a `sandbox` runs under
 * bubblewrap, built by `internal/sandbox/`, or is refused (a process on a
 * terminal cannot be confined yet).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import {
  Executor,
  ExecutorError,
  failWith,
  InvalidRequest,
  type ProcessEvent,
  ProcessIdInUse,
  type ReadOptions,
  type StartRequest
} from "./Executor.ts"
import * as Defaults from "./internal/defaults.ts"
import { prepareChild } from "./internal/local/childProcess.ts"
import { childEnvironment } from "./internal/local/envPolicy.ts"
import { Holdings, type LocalProcess, type SpawnOptions } from "./internal/local/localProcess.ts"
import { makeOutputPipes } from "./internal/local/outputPipes.ts"
import { ParentWatchdog } from "./internal/local/parentWatchdog.ts"
import { eventStream, longPollRead } from "./internal/local/processLog.ts"
import { ProcessTable } from "./internal/local/processTable.ts"
import { preparePty } from "./internal/local/ptyProcess.ts"
import { startProblem } from "./internal/local/startChecks.ts"
import * as Launcher from "./internal/sandbox/launcher.ts"
import type * as Protocol from "./Protocol.ts"

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
   * Closed processes kept at most (default 1024): past it one is forgotten
   * before its retention ends (the oldest whose output was all read, else the
   * oldest, read or not), so memory is bounded by count, not only by time. A
   * read of a forgotten process fails with `UnknownProcess`.
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
  /**
   * Bytes written to a process's input that it has not taken yet, at most
   * (default 1 MiB; one larger write goes alone): a write that does not fit
   * waits until the process reads, and is answered `accepted` only once the
   * OS took every byte of it.
   */
  readonly stdinWindowBytes?: number
  /** How sandboxed starts are confined: where bubblewrap is, whether every start must be sandboxed. */
  readonly sandbox?: SandboxOptions
  /**
   * Whether `read` and `events` may hand out views of memory the executor
   * reuses (default false: every chunk handed out is the caller's to keep).
   * A read's chunks then stay as they are until a read of the process presents
   * a cursor at or past them, an event's until the stream is pulled again: for
   * consumers that copy what they keep before that, as an exec-server does
   * when it sends them. A large output read as it goes then cycles through a
   * few slabs of memory instead of allocating (and leaving garbage) for each
   * read.
   */
  readonly lendOutput?: boolean
  /**
   * The unread output at which a process started with `backpressure` is
   * paused (default: `retainedBytes`). An exec-server wants more than the
   * retention, enough to cover a round trip to its client: it lends its
   * output, so the window costs no garbage.
   */
  readonly windowBytes?: number
}

/**
 * How sandboxed starts are confined: `bwrap` (the bubblewrap binary; default
 * `$EXEC_SANDBOX_BWRAP`, else `bwrap` on `PATH`) and `required` (refuse every
 * start that would run unconfined).
 *
 * @category options
 * @since 0.1.0
 */
export type SandboxOptions = Launcher.SandboxOptions

/**
 * The process table's defaults, Codex's values: output retained per process,
 * how long and how many closed processes are kept, how long a backpressured
 * process waits for a reader, the stdin window.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults = {
  retainedBytes: Defaults.processTable.retainedBytes,
  closedRetentionMillis: Defaults.processTable.closedRetentionMillis,
  maxClosedRetained: Defaults.processTable.maxClosedRetained,
  readerIdleTimeoutMillis: Defaults.processTable.readerIdleTimeoutMillis,
  stdinWindowBytes: Defaults.processTable.stdinWindowBytes
} as const

/**
 * The methods on processes already started (or starting): each finds its
 * process in `table`.
 */
const methodsOn = (table: ProcessTable) => {
  /** `then` with the process of `processId`, once its reader's cursor is at `afterSeq` (a read acknowledges too). */
  const acknowledgedThen = <A, E>(
    processId: string,
    afterSeq: number,
    then: (process: LocalProcess) => Effect.Effect<A, E>
  ) =>
    Effect.flatMap(table.lookup(processId), (process) =>
      Clock.clockWith((clock) => {
        process.acknowledge(afterSeq, clock.currentTimeMillisUnsafe())
        return then(process)
      }))
  const readAs = (params: Protocol.ReadParams, lent: boolean) =>
    acknowledgedThen(params.processId, params.afterSeq ?? 0, (process) => longPollRead(process.log, params, lent))
  const tracedRead = Effect.fn("LocalExecutor.read")(function*(params: Protocol.ReadParams) {
    return yield* readAs(params, false)
  })
  // lent: the chunks are views of slabs the process's output cycles through; without a span, as the consume loop
  // reads once per chunk of a large output and a span each would cost more than the read
  const read = (params: Protocol.ReadParams, options?: ReadOptions) =>
    options?.lent === true ? readAs(params, true) : tracedRead(params)

  // without a span too: a reader of pushed output acknowledges once per quarter window (~1 MiB), and the span and
  // call-site capture of `Effect.fn` cost more than the acknowledgement itself
  const acknowledge = (processId: string, afterSeq: number) => acknowledgedThen(processId, afterSeq, () => Effect.void)

  const write = Effect.fn("LocalExecutor.write")(function*(params: Protocol.WriteParams) {
    const entry = table.get(params.processId)
    if (entry === undefined) return "unknownProcess" as const
    if (entry.state === "starting") return "starting" as const
    return yield* entry.process.write(params.chunk, params.writeId)
  })

  const terminate = Effect.fn("LocalExecutor.terminate")(function*(processId: string) {
    // a process still starting is killed as soon as it runs
    if (table.terminateWhenStarted(processId)) return { running: true }
    const entry = table.get(processId)
    if (entry?.state !== "running") return { running: false }
    const { process } = entry
    const running = process.running
    // the leader may be gone while its group still holds the pipes: those die too
    if (running || !process.log.closed) process.signalGroup("SIGKILL")
    return { running }
  })

  const signal = Effect.fn("LocalExecutor.signal")(function*(processId: string, _signal: Protocol.SignalName) {
    const entry = table.get(processId)
    if (entry?.state === "running" && entry.process.running) entry.process.signalGroup("SIGINT")
  })

  const resize = Effect.fn("LocalExecutor.resize")(function*(processId: string, size: Protocol.TerminalSize) {
    const process = yield* table.lookup(processId)
    if (!process.resize(size)) {
      return yield* failWith(
        new InvalidRequest({ description: `process ${processId} has no terminal (started without tty)` })
      )
    }
  })

  const closeStdin = Effect.fn("LocalExecutor.closeStdin")(function*(processId: string) {
    const entry = table.get(processId)
    if (entry === undefined) return "unknownProcess" as const
    if (entry.state === "starting") return "starting" as const
    const status = entry.process.closeStdin()
    if (status === undefined) {
      return yield* failWith(
        new InvalidRequest({ description: `process ${processId} runs on a terminal: type Ctrl-D to end its input` })
      )
    }
    return status
  })

  const events = (
    processId: string,
    options?: { readonly afterSeq?: number }
  ): Stream.Stream<ProcessEvent, ExecutorError> =>
    Stream.unwrap(Effect.map(table.lookup(processId), (process) => eventStream(process.log, options?.afterSeq ?? 0)))

  return { read, write, terminate, signal, resize, acknowledge, closeStdin, events }
}

/**
 * The slow part of a start, which may take seconds (a hung mount, the first
 * probe of bubblewrap): its working directory, its program, its sandbox.
 * What the sandbox holds on the host goes to `holdings`.
 */
const prepareStart = (
  sandbox: Launcher.Launcher,
  spawnOptions: SpawnOptions,
  request: StartRequest,
  holdings: Holdings
) =>
  request.tty
    ? Effect.andThen(
      sandbox.refuseConfined(
        request,
        childEnvironment(request.env, request.envPolicy, spawnOptions.baseEnvironment),
        "a process on a terminal"
      ),
      preparePty(request, spawnOptions)
    )
    : prepareChild(
      request,
      spawnOptions,
      holdings,
      (program, environment, hold) => sandbox.prepare(request, program, environment, hold)
    )

/**
 * Builds a local executor in the current scope; closing the scope kills every
 * process group it still has.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const spawnOptions: SpawnOptions = {
    retainedBytes: options.retainedBytes ?? Defaults.processTable.retainedBytes,
    baseEnvironment: options.baseEnvironment ?? process.env,
    stdinWindowBytes: options.stdinWindowBytes ?? Defaults.processTable.stdinWindowBytes,
    lendOutput: options.lendOutput === true,
    windowBytes: options.windowBytes,
    outputPipes: yield* makeOutputPipes()
  }
  const closedRetention = Duration.fromInputUnsafe(
    options.closedRetention ?? Defaults.processTable.closedRetentionMillis
  )
  const readerIdleTimeout = Duration.fromInputUnsafe(
    options.readerIdleTimeout ?? Defaults.processTable.readerIdleTimeoutMillis
  )
  const table = new ProcessTable(options.maxClosedRetained ?? Defaults.processTable.maxClosedRetained)
  const sandbox = yield* Launcher.makeLauncher(options.sandbox)
  const supervisors = yield* FiberSet.make()
  const watchdog = new ParentWatchdog()
  yield* Effect.addFinalizer(() => Effect.andThen(table.destroyAll(), Effect.sync(() => watchdog.close())))

  /** Lets a paused process go lossy when no reader has come for a while. */
  const releaseWhenReaderIdle = (process: LocalProcess): Effect.Effect<never> =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(readerIdleTimeout)
        const now = yield* Clock.currentTimeMillis
        if (process.log.backpressure && now - process.lastReadAt >= Duration.toMillis(readerIdleTimeout)) {
          process.releaseBackpressure()
        }
      }
    })

  /** Watches a process until it closed, then keeps it for its retention. */
  const supervise = (processId: string, process: LocalProcess) =>
    Effect.andThen(
      Effect.raceFirst(
        Deferred.await(process.closed),
        process.log.backpressure ? releaseWhenReaderIdle(process) : Effect.never
      ),
      retire(processId, new WeakRef(process), process.pid)
    )

  /**
   * A closed process is counted among the closed, then forgotten once its
   * retention ends. It is held weakly meanwhile: when the bound on closed
   * processes forgets it first, its output is garbage at once, not after the
   * retention.
   */
  const retire = (processId: string, process: WeakRef<LocalProcess>, pid: number) =>
    Effect.gen(function*() {
      table.closed(processId)
      yield* Effect.sleep(closedRetention)
      const retained = process.deref()
      if (retained !== undefined) table.forget(processId, retained)
      // what the group left behind had its retention to finish: its id may go to another group now
      watchdog.forget(pid)
    })

  const start = Effect.fn("LocalExecutor.start")(function*(request: StartRequest) {
    const { processId } = request
    if (request.argv.length === 0) {
      return yield* failWith(new InvalidRequest({ description: "argv must not be empty", invalidParams: true }))
    }
    const problem = startProblem(request)
    if (problem !== undefined) return yield* failWith(problem)
    // the preparation may be interrupted (a timeout, a closed connection); from the reservation's point of view
    // reserve → spawn → register is all or nothing: an interrupted start leaves no child and no reservation behind
    return yield* Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        if (!table.reserve(processId)) return yield* failWith(new ProcessIdInUse({ processId }))
        const holdings = new Holdings()
        const giveBack = Effect.sync(() => {
          holdings.releaseAll()
          table.unreserve(processId)
        })
        const prepared = yield* restore(prepareStart(sandbox, spawnOptions, request, holdings)).pipe(
          Effect.mapError((reason) => new ExecutorError({ reason })),
          Effect.onError(() => giveBack)
        )
        const process = yield* prepared.spawn(yield* Clock.currentTimeMillis).pipe(
          Effect.mapError((reason) => new ExecutorError({ reason })),
          Effect.onError(() => giveBack)
        )
        // a terminate that came while it started kills it now
        if (table.started(processId, process)) process.signalGroup("SIGKILL")
        watchdog.watch(process.pid)
        yield* FiberSet.run(supervisors, supervise(processId, process))
        return {
          processId,
          sandboxType: process.sandboxType,
          ...(process.log.backpressure ? { windowBytes: process.log.windowBytes } : {})
        }
      })
    )
  })

  return Executor.of({
    start,
    ...methodsOn(table),
    defaultCwd: Effect.sync(() => process.cwd()),
    sandboxSupport: Effect.map(
      sandbox.support,
      (support) => ({ ...support, required: options.sandbox?.required === true })
    )
  })
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
