/**
 * `Exec.run`: run one command in the current `Environment` and return a typed
 * result. One consume loop serves every executor: start, then a `Stream` of
 * long-poll reads (`afterSeq = nextSeq - 1`) until the process is closed,
 * raced against the timeout and an optional interrupt, while the request's
 * stdin (or a terminal's keys) is written in; live deltas go to the
 * `OutputSink` (capped per call), chunks fold into capped buffers, and after
 * the exit the loop drains for at most `drainLimit`, so a background child
 * that keeps a pipe open cannot hang the call.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CappedBuffer from "./CappedBuffer.ts"
import { Environment } from "./Environment.ts"
import { EnvironmentRegistry, type Selection } from "./EnvironmentRegistry.ts"
import {
  EnvironmentUnavailable,
  type Executor,
  ExecutorError,
  failWith,
  InvalidRequest,
  type ReadOptions
} from "./Executor.ts"
import * as Defaults from "./internal/defaults.ts"
import { OutputSink } from "./OutputSink.ts"
import * as Protocol from "./Protocol.ts"
import * as Sandbox from "./Sandbox.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * What to keep of the output. `"shellTool"` (Codex's default): the first 1 MiB
 * of each stream, with a 10 s timeout unless the request names one.
 * `"fullBuffer"`: everything, with no timeout unless the request names one.
 * `headTail`: the first `headBytes` and the last `tailBytes` of each stream,
 * with the cut counted (the errors are usually at the end), and the 10 s
 * default timeout; each a whole number of bytes, 0 or more (`Exec.run` refuses
 * any other with `InvalidRequest`, before it starts anything).
 *
 * @category models
 * @since 0.1.0
 */
export type Capture =
  | "shellTool"
  | "fullBuffer"
  | { readonly headBytes: number; readonly tailBytes: number }

/**
 * The pseudo-terminal a command runs on (`ExecRequest.tty`): its size, what is
 * typed into it, and how it is resized while the command runs.
 *
 * @category models
 * @since 0.1.0
 */
export interface Terminal {
  /** Its size when the command starts (default 24 rows × 80 columns, as Codex opens it). */
  readonly size?: Protocol.TerminalSize
  /**
   * Bytes typed into the terminal (keystrokes, in raw form: `"\x03"` is
   * Ctrl-C, `"\x04"` at the start of a line is end of input), written in order
   * while the command runs.
   */
  readonly input?: Stream.Stream<Uint8Array>
  /** New sizes, applied as they come (an executor that cannot resize ignores them). */
  readonly resize?: Stream.Stream<Protocol.TerminalSize>
}

/**
 * A command to run.
 *
 * @category models
 * @since 0.1.0
 */
export interface ExecRequest {
  /** The argv: executed as is, never spliced into a shell string. */
  readonly command: ReadonlyArray<string>
  /** Working directory (default: the environment's). */
  readonly cwd?: string
  /**
   * With `envPolicy` unset: exactly this environment. Without `env` and
   * `envPolicy`: the executor's own environment.
   */
  readonly env?: Readonly<Record<string, string>>
  /** Builds the environment from the executor's own; `env` goes on top. */
  readonly envPolicy?: Protocol.EnvPolicy
  /**
   * Confines the command (default: no sandbox). An executor that cannot
   * enforce the policy fails the call with `SandboxRefused`.
   */
  readonly sandbox?: Sandbox.Policy
  /**
   * Kills the process group after this long (exit code 124). Honoured with
   * every capture; without it, `"shellTool"` and head/tail capture time out
   * after 10 seconds (Codex's shell tool) and `"fullBuffer"` never does.
   * `Duration.infinity` disables it.
   */
  readonly timeout?: Duration.Input
  /** Default `"shellTool"`. */
  readonly capture?: Capture
  /**
   * What the command reads on its stdin: a string (as UTF-8), bytes, or a
   * `Stream` of bytes written as it comes, each chunk once the command's pipe
   * took the previous one; then its stdin is ended, so it reads end-of-file.
   * Without it, stdin is `/dev/null`. Not with `tty`: type into the terminal
   * with `tty.input`. A Codex 0.169 exec-server cannot end a pipe's input, so
   * there the command gets the bytes but no end-of-file.
   */
  readonly stdin?: string | Uint8Array | Stream.Stream<Uint8Array>
  /** Runs once the process is running (Codex's `after_spawn`). */
  readonly onSpawn?: Effect.Effect<void>
  /** When this completes the process group is terminated and the result says `Interrupted`. */
  readonly interrupt?: Effect.Effect<void>
  /** Names this call in its output deltas (default: the process id). */
  readonly callId?: string
  /** Live deltas sent to the `OutputSink` at most (default 10 000; `Infinity` for all). */
  readonly maxDeltas?: number
  /**
   * Runs the command on a pseudo-terminal (`true`, or a {@link Terminal} with
   * its size, input and resizes), so it behaves as in a shell: colours, line
   * editing, prompts. A terminal merges stdout and stderr: what it shows is
   * captured in `stdout` (and `aggregated`), `stderr` stays empty, and live
   * deltas come on stream `"pty"`. Its text has the terminal's `\r\n` line
   * ends and echoes what was typed.
   */
  readonly tty?: boolean | Terminal
}

/**
 * A command to run in one environment of an `EnvironmentRegistry`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ExecRequestIn extends ExecRequest {
  /**
   * Where it runs: an environment's id, or a choice among several
   * (`EnvironmentRegistry.leastBusy(ids)`). The run takes one of the
   * environment's slots for its whole length, waiting while all are taken.
   */
  readonly environment: Selection
}

/**
 * How the command ended: exactly one reason.
 *
 * @category models
 * @since 0.1.0
 */
export type Termination = Data.TaggedEnum<{
  /** It exited by itself with this code. */
  Exited: { readonly exitCode: number }
  /** It died of a signal it was not sent by us. */
  Signaled: { readonly signal: string | null }
  /**
   * The timeout passed (it counts from the call: connecting and starting
   * included); whatever had started was killed with its process group.
   */
  TimedOut: { readonly timeout: Duration.Duration }
  /** The request's `interrupt` fired; its process group was killed. */
  Interrupted: {}
  /**
   * The executor failed while the command ran: the link to the exec-server
   * was lost (`ConnectionLost`), the server no longer had the command's
   * session when the client reconnected (`SessionLost`: it expired while the
   * client was away, or the server restarted), or the server broke the
   * protocol (`ProtocolViolation`: it repeated or inflated output, sent an
   * impossible exit code, …). `reason` is the error's one-line message; the
   * command may still run there (the loop asked for it to be killed).
   */
  Lost: { readonly reason: string; readonly error: ExecutorError }
}>

/**
 * Constructors and matchers for {@link Termination}.
 *
 * @category constructors
 * @since 0.1.0
 */
export const Termination = Data.taggedEnum<Termination>()

/**
 * What a command did.
 *
 * @category models
 * @since 0.1.0
 */
export interface ExecResult {
  readonly processId: string
  /**
   * The exit code; 124 on timeout, 128 + n for a death by signal n, -1 when
   * unknown, and -1 for every `Lost` run (whatever the executor said before it
   * failed: the run's output may be incomplete, or its server untrustworthy).
   */
  readonly exitCode: number
  /** The signal that ended it, when it died of one (`null` for a `Lost` run). */
  readonly signal: string | null
  /** What the command wrote to stdout; with `tty`, everything its terminal showed. */
  readonly stdout: CappedBuffer.Captured
  /** What the command wrote to stderr; empty with `tty` (the terminal merges it into `stdout`). */
  readonly stderr: CappedBuffer.Captured
  /** stdout and stderr combined by the Codex rule. */
  readonly aggregated: CappedBuffer.Captured
  readonly duration: Duration.Duration
  readonly timedOut: boolean
  readonly termination: Termination
  /** The process exited but a descendant kept its output open past the drain limit. */
  readonly pipesHeldOpen: boolean
  /** Output the executor lost before the loop could read it (0 with backpressure). */
  readonly droppedByExecutor: number
  /** Deltas not sent because the per-call cap was reached. */
  readonly deltasSkipped: number
  /** How the executor confined it: `"none"`, or its sandbox's name (`"linuxSeccomp"`). */
  readonly sandboxType: string
  /** The failure looks like the sandbox's doing (Codex's rule over the exit code and the output). */
  readonly sandboxDenied: boolean
}

// =============================================================================
// Constants
// =============================================================================

/**
 * The loop's Codex-derived constants (as `ExecServer.defaults` and
 * `LocalExecutor.defaults` are the server's and the process table's).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults = {
  timeout: Duration.millis(Defaults.exec.timeoutMillis),
  timeoutExitCode: Defaults.exec.timeoutExitCode,
  drainLimit: Duration.millis(Defaults.exec.drainLimitMillis),
  maxDeltas: Defaults.exec.maxDeltas,
  shellToolBytes: Defaults.exec.shellToolBytes,
  /** Read size and long-poll wait of one `process/read`. */
  readBytes: Defaults.exec.readBytes,
  readWaitMillis: Defaults.exec.readWaitMillis,
  /** The largest chunk of `stdin` one `process/write` carries. */
  writeBytes: Defaults.exec.writeBytes
} as const

// =============================================================================
// The consume loop
// =============================================================================

/** A size a capture can keep: a whole number of bytes, 0 or more. */
const isByteCount = (bytes: number) => Number.isSafeInteger(bytes) && bytes >= 0

const limitOf = (capture: Capture): CappedBuffer.Limit =>
  capture === "shellTool"
    ? { _tag: "Head", maxBytes: defaults.shellToolBytes }
    : capture === "fullBuffer"
    ? { _tag: "Unlimited" }
    : { _tag: "HeadTail", headBytes: capture.headBytes, tailBytes: capture.tailBytes }

const aggregateCap = (capture: Capture): number | undefined =>
  capture === "shellTool"
    ? defaults.shellToolBytes
    : capture === "fullBuffer"
    ? undefined
    : capture.headBytes + capture.tailBytes

/** Everything the loop has learnt so far; it survives a timeout or interrupt. */
class Progress {
  /** `start` was asked for: from here on the process may exist. */
  startSent = false
  /** `start` answered: the process exists. */
  started = false
  afterSeq = 0
  exited = false
  closed = false
  exitCode: number | null = null
  signal: string | null = null
  sandboxType = "none"
  sandboxDenied = false
  droppedByExecutor = 0
  deltasSent = 0
  deltasSkipped = 0
  readonly stdout: CappedBuffer.CappedBuffer
  readonly stderr: CappedBuffer.CappedBuffer
  constructor(limit: CappedBuffer.Limit) {
    this.stdout = CappedBuffer.make(limit)
    this.stderr = CappedBuffer.make(limit)
  }
}

/**
 * Folds one read into the progress and sends its deltas. The loop reads lent:
 * the chunks may be the executor's memory until the next read, so a sink that
 * may keep them gets copies (the capture copies what it keeps anyway).
 */
const absorb = (progress: Progress, sink: OutputSink.Service, callId: string, maxDeltas: number) =>
  Effect.fnUntraced(function*(result: Protocol.ReadResult) {
    const copied = sink.borrows !== true
    for (const { chunk, seq, stream } of result.chunks) {
      // nothing twice: a chunk at or before the cursor was taken already; an empty one is nothing
      if (seq <= progress.afterSeq || chunk.length === 0) {
        progress.afterSeq = Math.max(progress.afterSeq, seq)
        continue
      }
      ;(stream === "stderr" ? progress.stderr : progress.stdout).append(chunk)
      // advance per chunk: an interrupt between chunks must not make a re-read repeat one
      progress.afterSeq = seq
      if (progress.deltasSent < maxDeltas) {
        progress.deltasSent++
        yield* sink.emit({ callId, stream, chunk: copied ? new Uint8Array(chunk) : chunk })
      } else {
        progress.deltasSkipped++
      }
    }
    progress.afterSeq = Math.max(progress.afterSeq, result.nextSeq - 1)
    progress.droppedByExecutor += result.dropped?.bytes ?? 0
    progress.exited = result.exited
    progress.closed = result.closed
    progress.exitCode = result.exitCode
    progress.signal = result.signal ?? null
    progress.sandboxDenied = result.sandboxDenied ?? false
  })

/** Output bytes in a read answer. */
const bytesIn = (result: Protocol.ReadResult): number => {
  let bytes = 0
  for (const chunk of result.chunks) bytes += chunk.chunk.length
  return bytes
}

/** The loop's reads: it copies what it keeps before it reads on, so an executor may lend it its memory. */
const lentRead: ReadOptions = { lent: true }

/**
 * Long-poll reads (`afterSeq = nextSeq - 1`, never back) until the process is
 * closed and drained. Once the exit is seen, the loop reads on for at most
 * `drainLimit`, so a background child holding a pipe cannot hang the call —
 * but a backlog written before the exit is read whole: a read filled to half
 * its size or more moves the limit to `drainLimit` past its end, for up to
 * `drainBacklogBytes` read after the exit, during which the time the sink
 * takes does not count either. (A backpressured executor still holds up to a
 * window of output when the process exits, and a read answer says `exited`
 * whatever its cursor; a slow sink — a CLI writing to a slow pipe — must not
 * cut it off.)
 */
const consume = (
  executor: Executor["Service"],
  processId: string,
  progress: Progress,
  step: (result: Protocol.ReadResult) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const drainLimit = Duration.toMillis(defaults.drainLimit)
    /** When the drain ends, once the exit is seen. */
    let drainEndsAt = progress.exited ? (yield* Clock.currentTimeMillis) + drainLimit : undefined
    let readAfterExit = 0
    while (true) {
      const left = drainEndsAt === undefined ? undefined : drainEndsAt - (yield* Clock.currentTimeMillis)
      if (left !== undefined && left <= 0) return
      const read = executor.read({
        processId,
        afterSeq: progress.afterSeq,
        maxBytes: defaults.readBytes,
        waitMs: left === undefined ? defaults.readWaitMillis : Math.min(defaults.readWaitMillis, left)
      }, lentRead)
      let result: Protocol.ReadResult
      if (left === undefined) result = yield* read
      else {
        const answer = yield* Effect.timeoutOption(read, left)
        if (Option.isNone(answer)) return
        result = answer.value
      }
      // the clock is read only where the drain needs it: this loop turns once per chunk of a large output
      const absorbing = result.exited ? yield* Clock.currentTimeMillis : 0
      yield* step(result)
      if (Protocol.isDrained(result)) return
      if (!result.exited) continue
      const absorbed = yield* Clock.currentTimeMillis
      const bytes = bytesIn(result)
      if (drainEndsAt === undefined) drainEndsAt = absorbed + drainLimit
      else if (readAfterExit < Defaults.exec.drainBacklogBytes) {
        // within the backlog: a full read gives the whole limit again, and the sink's time is not the executor's
        drainEndsAt = bytes * 2 >= defaults.readBytes ? absorbed + drainLimit : drainEndsAt + (absorbed - absorbing)
      }
      readAfterExit += bytes
    }
  })

/**
 * Types a terminal's input into the process and applies its resizes, until
 * both streams end, then waits forever (the caller races it against the
 * consume loop). A failure stops the feeding only: the loop reports the lost
 * process, and a resize the executor cannot do is no reason to stop.
 */
const feedTerminal = (executor: Executor["Service"], processId: string, terminal: Terminal): Effect.Effect<never> =>
  Effect.andThen(
    Effect.all([
      terminal.input === undefined ? Effect.void : terminal.input.pipe(
        Stream.mapEffect((chunk) => executor.write({ processId, chunk })),
        Stream.takeWhile((status) => status === "accepted"),
        Stream.runDrain,
        Effect.ignore
      ),
      terminal.resize === undefined ? Effect.void : Stream.runForEach(
        terminal.resize,
        (size) => Effect.ignore(executor.resize(processId, size))
      )
    ], { concurrency: "unbounded", discard: true }),
    Effect.never
  )

/** A request's `stdin` as a stream of writes, none larger than one write may carry. */
const stdinChunks = (stdin: NonNullable<ExecRequest["stdin"]>): Stream.Stream<Uint8Array> => {
  const split = (bytes: Uint8Array): Array<Uint8Array> => {
    const chunks: Array<Uint8Array> = []
    for (let offset = 0; offset < bytes.length; offset += defaults.writeBytes) {
      chunks.push(bytes.subarray(offset, offset + defaults.writeBytes))
    }
    return chunks
  }
  if (typeof stdin === "string") return Stream.fromIterable(split(new TextEncoder().encode(stdin)))
  if (stdin instanceof Uint8Array) return Stream.fromIterable(split(stdin))
  return Stream.flatMap(stdin, (chunk) => Stream.fromIterable(split(chunk)))
}

/**
 * Writes `stdin` to the process in order, each chunk once the previous one was
 * taken, then ends its stdin; then waits forever (the caller races it against
 * the consume loop). It stops early when the command no longer reads (its
 * stdin closed, or it exited). A failure stops the feeding only: the loop
 * reports a lost process, and an executor that cannot end stdin (a Codex
 * server) leaves the command without end-of-file.
 */
const feedStdin = (executor: Executor["Service"], processId: string, stdin: Stream.Stream<Uint8Array>) =>
  stdin.pipe(
    Stream.mapEffect((chunk) => executor.write({ processId, chunk })),
    Stream.takeUntil((status) => status !== "accepted"),
    Stream.runLast,
    Effect.flatMap((last) =>
      Option.isNone(last) || last.value === "accepted" ? Effect.asVoid(executor.closeStdin(processId)) : Effect.void
    ),
    Effect.ignore,
    Effect.andThen(Effect.never)
  )

/**
 * A start that was interrupted, whose answer a lost link swallowed, or whose
 * answer broke the protocol may have started the process.
 */
const mayHaveStarted = (cause: Cause.Cause<ExecutorError>): boolean =>
  cause.reasons.some((reason) =>
    reason._tag !== "Fail" || reason.error.reason._tag === "ConnectionLost" ||
    reason.error.reason._tag === "ProtocolViolation"
  )

/**
 * The environment a run uses, admitted for the run's scope: the one named (or
 * chosen) in the registry, else the current `Environment`.
 */
const admitted = (
  selection: Selection | undefined
): Effect.Effect<Environment["Service"], ExecutorError, Environment | Scope.Scope> =>
  selection === undefined
    ? Effect.gen(function*() {
      const environment = yield* Environment
      if (environment.admit !== undefined) yield* environment.admit
      return environment
    })
    : Effect.flatMap(Effect.serviceOption(EnvironmentRegistry), (registry) =>
      Option.isSome(registry)
        ? Effect.map(registry.value.admit(selection), (held) => held.environment)
        : Effect.fail(
          new ExecutorError({
            reason: new EnvironmentUnavailable({
              kind: "NoRegistry",
              environment: typeof selection === "string" ? selection : (selection.among ?? []).join(","),
              description: "a run names an environment, but no EnvironmentRegistry is provided"
            })
          })
        ))

/** Completes when the timeout passes (`TimedOut`) or the request's interrupt fires (`Interrupted`). */
const deadline = (timeout: Duration.Duration | undefined, interrupt: Effect.Effect<void> | undefined) =>
  Effect.raceFirst(
    Effect.as(timeout === undefined ? Effect.never : Effect.sleep(timeout), { _tag: "TimedOut" } as const),
    Effect.as(interrupt ?? Effect.never, { _tag: "Interrupted" } as const)
  )

type Outcome =
  | { readonly _tag: "Finished" }
  | { readonly _tag: "TimedOut" }
  | { readonly _tag: "Interrupted" }
  | { readonly _tag: "Lost"; readonly error: ExecutorError }

/**
 * Runs a command and returns its result: in the current `Environment`, or,
 * when the request names an `environment`, in that one of the
 * `EnvironmentRegistry`. Fails only when the command cannot start; once it
 * runs, every ending is a result. Interrupting the calling fiber kills the
 * process group too.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Environment, Exec, OutputSink } from "effect-exec"
 *
 * const result = Exec.run({ command: ["sh", "-c", "echo hi; exit 3"], timeout: "5 seconds" }).pipe(
 *   Effect.provide([Environment.layerLocal, OutputSink.layerDiscard])
 * )
 * // => { exitCode: 3, stdout: { text: "hi\n", … }, termination: { _tag: "Exited", exitCode: 3 }, … }
 * ```
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EnvironmentRegistry, Exec, OutputSink } from "effect-exec"
 *
 * // in devbox, as $CODEX_HOME/environments.toml (or EXEC_ENVIRONMENTS_FILE) names it
 * const result = Exec.run({ command: ["make", "test"], environment: "devbox" }).pipe(
 *   Effect.provide([EnvironmentRegistry.layerConfig(), OutputSink.layerDiscard])
 * )
 * ```
 *
 * @category running
 * @since 0.1.0
 */
export const run: {
  (request: ExecRequestIn): Effect.Effect<ExecResult, ExecutorError, EnvironmentRegistry>
  (request: ExecRequest): Effect.Effect<ExecResult, ExecutorError, Environment>
} = Effect.fn("Exec.run")(function*(request: ExecRequest & { readonly environment?: Selection }): Effect.fn.Return<
  ExecResult,
  ExecutorError,
  Environment | Scope.Scope
> {
  const capture = request.capture ?? "shellTool"
  const terminal = request.tty === true ? {} : request.tty === false ? undefined : request.tty
  if (terminal !== undefined && request.stdin !== undefined) {
    return yield* failWith(
      new InvalidRequest({ description: "stdin is for a command on pipes: with tty, type into it with tty.input" })
    )
  }
  if (typeof capture === "object" && !(isByteCount(capture.headBytes) && isByteCount(capture.tailBytes))) {
    return yield* failWith(
      new InvalidRequest({
        description: `capture: headBytes and tailBytes must be whole numbers of bytes, 0 or more (got ${
          String(capture.headBytes)
        } and ${String(capture.tailBytes)})`
      })
    )
  }
  const stdin = request.stdin === undefined ? undefined : stdinChunks(request.stdin)
  const processId = `shell-${crypto.randomUUID()}`
  const startedAt = yield* Clock.currentTimeMillis
  const progress = new Progress(limitOf(capture))
  const timeout = timeoutOf(request, capture)
  // An environment of a registry may make the run wait for a slot: the wait
  // is part of the timeout, and the interrupt ends it too.
  const admission = yield* Effect.raceFirst(
    Effect.map(admitted(request.environment), (environment) => ({ _tag: "Admitted", environment }) as const),
    deadline(timeout, request.interrupt)
  )
  if (admission._tag !== "Admitted") {
    return finish(capture, timeout, processId, progress, admission, (yield* Clock.currentTimeMillis) - startedAt)
  }
  const { executor } = admission.environment
  const remaining = timeout === undefined
    ? undefined
    : Duration.max(
      Duration.zero,
      Duration.subtract(timeout, Duration.millis((yield* Clock.currentTimeMillis) - startedAt))
    )
  const sink = yield* OutputSink
  const step = absorb(progress, sink, request.callId ?? processId, request.maxDeltas ?? defaults.maxDeltas)
  const inheritAll: Protocol.EnvPolicy = {
    inherit: "all",
    ignoreDefaultExcludes: true,
    exclude: [],
    set: {},
    includeOnly: []
  }

  // Killing must not hang on an executor that stopped answering (a silent
  // server): it gets as long as the drain, then the call goes on without it.
  const terminate = executor.terminate(processId).pipe(Effect.timeoutOption(defaults.drainLimit), Effect.ignore)
  const start = Effect.gen(function*() {
    const cwd = request.cwd ?? (yield* executor.defaultCwd)
    progress.startSent = true
    const started = yield* executor.start({
      processId,
      argv: request.command,
      cwd,
      env: request.env ?? {},
      tty: terminal !== undefined,
      ...(terminal?.size === undefined ? {} : { size: terminal.size }),
      ...(stdin === undefined ? {} : { pipeStdin: true }),
      arg0: null,
      envPolicy: request.envPolicy ?? (request.env === undefined ? inheritAll : null),
      sandbox: request.sandbox === undefined ? null : Sandbox.toWire(request.sandbox, cwd),
      backpressure: true,
      // this loop pulls output with process/read: no need for a pushed copy
      outputNotifications: false
    })
    progress.started = true
    progress.sandboxType = started.sandboxType ?? "none"
  })

  // what is written into the command while it runs: a terminal's keys and resizes, or stdin
  const feedInput = terminal !== undefined
    ? feedTerminal(executor, processId, terminal)
    : stdin !== undefined
    ? feedStdin(executor, processId, stdin)
    : Effect.never

  return yield* Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      // The timeout and the interrupt race everything, the start included: a
      // server that never answers `process/start` cannot outlast the deadline.
      const outcome: Outcome = yield* restore(Effect.raceFirst(
        startThenConsume(executor, processId, progress, step, start, request.onSpawn, feedInput),
        deadline(remaining, request.interrupt)
      )).pipe(
        // a start interrupted or cut off may have started the process all the same
        Effect.onError((cause) => progress.startSent && mayHaveStarted(cause) ? terminate : Effect.void)
      )

      if (outcome._tag !== "Finished" && progress.startSent) {
        // kill what may run, then collect what the killed group left in its
        // pipes: both within one drain limit past the deadline
        yield* restore(
          Effect.andThen(
            terminate,
            progress.started && outcome._tag !== "Lost"
              ? Effect.ignore(consume(executor, processId, progress, step))
              : Effect.void
          ).pipe(Effect.timeoutOption(defaults.drainLimit))
        ).pipe(Effect.onInterrupt(() => terminate))
      }

      const finishedAt = yield* Clock.currentTimeMillis
      return finish(capture, timeout, processId, progress, outcome, finishedAt - startedAt)
    })
  )
  // the admission (a slot of a registry environment) is held until the run is over
}, Effect.scoped) as {
  (request: ExecRequestIn): Effect.Effect<ExecResult, ExecutorError, EnvironmentRegistry>
  (request: ExecRequest): Effect.Effect<ExecResult, ExecutorError, Environment>
}

/**
 * Starts the process, then reads it to its end (feeding its input
 * meanwhile). Fails only when the start does; a failure of the executor
 * after the start is the outcome `Lost`.
 */
const startThenConsume = (
  executor: Executor["Service"],
  processId: string,
  progress: Progress,
  step: (result: Protocol.ReadResult) => Effect.Effect<void>,
  start: Effect.Effect<void, ExecutorError>,
  onSpawn: Effect.Effect<void> | undefined,
  feedInput: Effect.Effect<never>
): Effect.Effect<Outcome, ExecutorError> =>
  Effect.gen(function*() {
    yield* start
    if (onSpawn) yield* onSpawn
    return yield* Effect.raceFirst(
      consume(executor, processId, progress, step).pipe(
        Effect.as<Outcome>({ _tag: "Finished" }),
        Effect.catch((error) => Effect.succeed<Outcome>({ _tag: "Lost", error }))
      ),
      feedInput
    )
  })

/**
 * The request's timeout; without one, Codex's 10 s for its shell tool's
 * capture (and head/tail), none for a full buffer.
 */
const timeoutOf = (request: ExecRequest, capture: Capture): Duration.Duration | undefined => {
  if (request.timeout !== undefined) {
    const timeout = Duration.fromInputUnsafe(request.timeout)
    return Duration.isFinite(timeout) ? timeout : undefined
  }
  return capture === "fullBuffer" ? undefined : defaults.timeout
}

const finish = (
  capture: Capture,
  timeout: Duration.Duration | undefined,
  processId: string,
  progress: Progress,
  outcome: Outcome,
  elapsedMillis: number
): ExecResult => {
  const stdout = progress.stdout.snapshot()
  const stderr = progress.stderr.snapshot()
  const signal = progress.signal
  const exitedBySignal = progress.exited && (signal !== null || progress.exitCode === -1)
  const signalExitCode = Protocol.signaledExitCode(signal)
  const termination: Termination = outcome._tag === "TimedOut"
    ? Termination.TimedOut({ timeout: timeout ?? Duration.infinity })
    : outcome._tag === "Interrupted"
    ? Termination.Interrupted()
    : outcome._tag === "Lost"
    ? Termination.Lost({ reason: outcome.error.message, error: outcome.error })
    : exitedBySignal
    ? Termination.Signaled({ signal })
    : Termination.Exited({ exitCode: progress.exitCode ?? -1 })
  // a Lost run claims no exit code: its output may be cut short, or come from a server that broke the protocol
  const exitCode = outcome._tag === "TimedOut"
    ? defaults.timeoutExitCode
    : outcome._tag === "Lost"
    ? -1
    : signalExitCode !== -1
    ? signalExitCode
    : progress.exitCode ?? -1
  return {
    processId,
    exitCode,
    signal: outcome._tag === "Lost" ? null : signal,
    stdout,
    stderr,
    aggregated: CappedBuffer.aggregateCaptured(stdout, stderr, aggregateCap(capture)),
    duration: Duration.millis(elapsedMillis),
    timedOut: outcome._tag === "TimedOut",
    termination,
    pipesHeldOpen: outcome._tag === "Finished" && progress.exited && !progress.closed,
    droppedByExecutor: progress.droppedByExecutor,
    deltasSkipped: progress.deltasSkipped,
    sandboxType: progress.sandboxType,
    sandboxDenied: progress.sandboxDenied
  }
}

// =============================================================================
// One-liners
// =============================================================================

/**
 * A command that did not succeed: it exited non-zero, died of a signal, timed
 * out, was interrupted or lost. `result` has everything it did (its output,
 * exit code, termination); the message says how it ended and quotes the end
 * of its stderr.
 *
 * @category errors
 * @since 0.1.0
 */
export class CommandFailed extends Data.TaggedError("CommandFailed")<{
  readonly command: ReadonlyArray<string>
  readonly result: ExecResult
}> {
  override get message(): string {
    const { result } = this
    const how = Termination.$match(result.termination, {
      Exited: ({ exitCode }) => `exited with code ${exitCode}`,
      Signaled: ({ signal }) => `was killed by ${signal ?? "a signal"}`,
      TimedOut: ({ timeout }) => `timed out after ${Duration.format(timeout)}`,
      Interrupted: () => "was interrupted",
      Lost: ({ reason }) => `was lost: ${reason}`
    })
    const stderr = result.stderr.text.trimEnd()
    const tail = stderr.length > 500 ? `…${stderr.slice(-500)}` : stderr
    return `${this.command.map(displayArg).join(" ")} ${how}${tail === "" ? "" : `: ${tail}`}`
  }
}

/**
 * An argument as a shell user would type it, for messages only (nothing runs
 * it): as it is when it holds nothing a shell reads specially, else in single
 * quotes, so `sh -c 'exit 3'` does not read as `sh -c exit 3`.
 */
const displayArg = (arg: string): string => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`

/**
 * What a one-liner runs: an argv, or a full request.
 *
 * @category models
 * @since 0.1.0
 */
export type Command = ReadonlyArray<string> | ExecRequest

const isArgv = (command: Command): command is ReadonlyArray<string> => Array.isArray(command)

/** A one-liner keeps all of the output and has no deadline, unless the request says otherwise. */
const requestOf = (command: Command): ExecRequest =>
  isArgv(command) ? { command, capture: "fullBuffer" } : { capture: "fullBuffer", ...command }

/**
 * Runs a command and succeeds only when it exits 0; otherwise fails with
 * {@link CommandFailed}, which carries the whole result. The request keeps
 * {@link run}'s defaults, unlike {@link string} and {@link lines}: the first
 * 1 MiB of each stream (`"shellTool"` capture) and a 10 s timeout unless it
 * names a `timeout` (or `capture: "fullBuffer"`). A command that cannot start
 * fails with an `ExecutorError`, as with {@link run}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Environment, Exec } from "effect-exec"
 *
 * const program = Exec.runOrFail({ command: ["make", "test"], timeout: "5 minutes" }).pipe(
 *   Effect.catchTag("CommandFailed", (error) => Effect.logError(error.result.aggregated.text)),
 *   Effect.provide(Environment.layerLocal)
 * )
 * ```
 *
 * @category running
 * @since 0.1.0
 */
export const runOrFail = Effect.fn("Exec.runOrFail")(function*(request: ExecRequest): Effect.fn.Return<
  ExecResult,
  ExecutorError | CommandFailed,
  Environment
> {
  const result = yield* run(request)
  if (result.termination._tag === "Exited" && result.exitCode === 0) return result
  return yield* new CommandFailed({ command: request.command, result })
})

/**
 * Runs a command and returns its stdout as text, as `$(…)` in a shell; fails
 * with {@link CommandFailed} unless it exits 0, and with an `ExecutorError`
 * when it cannot start (as {@link run}). An argv, or a request that names no
 * `capture`, keeps all of the output and has no timeout; a request may say
 * otherwise.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Environment, Exec } from "effect-exec"
 *
 * const head = Exec.string(["git", "rev-parse", "HEAD"]).pipe(Effect.provide(Environment.layerLocal))
 * ```
 *
 * @category running
 * @since 0.1.0
 */
export const string = (command: Command): Effect.Effect<string, ExecutorError | CommandFailed, Environment> =>
  Effect.map(runOrFail(requestOf(command)), (result) => result.stdout.text)

/**
 * Runs a command and returns the lines of its stdout (without their line
 * ends, `\n` or `\r\n`; no empty last line for a final newline); fails with
 * {@link CommandFailed} unless it exits 0, and with an `ExecutorError` when it
 * cannot start. Its defaults are {@link string}'s.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Environment, Exec } from "effect-exec"
 *
 * const files = Exec.lines({ command: ["git", "ls-files"], cwd: "/repo" }).pipe(
 *   Effect.provide(Environment.layerLocal)
 * )
 * ```
 *
 * @category running
 * @since 0.1.0
 */
export const lines = (
  command: Command
): Effect.Effect<ReadonlyArray<string>, ExecutorError | CommandFailed, Environment> =>
  Effect.map(string(command), (text) => {
    // no output is no line: its one empty piece is dropped as a trailing line end's would be
    const split = text.split(/\r?\n/)
    if (split.at(-1) === "") split.pop()
    return split
  })
