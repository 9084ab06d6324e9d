/**
 * `Exec.run`: run one command in the current `Environment` and return a typed
 * result. One consume loop serves every executor: start, then a `Stream` of
 * long-poll reads (`afterSeq = nextSeq - 1`) until the process is closed,
 * raced against the timeout and an optional interrupt; live deltas go to the
 * `OutputSink` (capped per call), chunks fold into capped buffers, and after
 * the exit the loop drains for at most `drainLimit`, so a background child
 * that keeps a pipe open cannot hang the call.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CappedBuffer from "./CappedBuffer.ts"
import { Environment } from "./Environment.ts"
import { EnvironmentRegistry, type Selection } from "./EnvironmentRegistry.ts"
import { EnvironmentUnavailable, type Executor, ExecutorError } from "./Executor.ts"
import * as InternalDefaults from "./internal/defaults.ts"
import { OutputSink } from "./OutputSink.ts"
import * as Protocol from "./Protocol.ts"
import * as Sandbox from "./Sandbox.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * What to keep of the output. `"shellTool"` (Codex's default): the first 1 MiB
 * of each stream, and the timeout applies. `"fullBuffer"`: everything, and no
 * timeout. `headTail`: the first `headBytes` and the last `tailBytes` of each
 * stream, with the cut counted (the errors are usually at the end).
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
  /** Default 10 seconds; ignored by `"fullBuffer"` capture. */
  readonly timeout?: Duration.Input
  /** Default `"shellTool"`. */
  readonly capture?: Capture
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
  /** The timeout passed; its process group was killed. */
  TimedOut: { readonly timeout: Duration.Duration }
  /** The request's `interrupt` fired; its process group was killed. */
  Interrupted: {}
  /** The executor failed while the command ran (for example a lost connection). */
  Lost: { readonly reason: string }
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
  /** The exit code; 124 on timeout, 128 + n for a death by signal n, -1 when unknown. */
  readonly exitCode: number
  /** The signal that ended it, when it died of one. */
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
 * The loop's Codex-derived constants.
 *
 * @category constants
 * @since 0.1.0
 */
export const Defaults = {
  timeout: Duration.millis(InternalDefaults.exec.timeoutMillis),
  timeoutExitCode: InternalDefaults.exec.timeoutExitCode,
  drainLimit: Duration.millis(InternalDefaults.exec.drainLimitMillis),
  maxDeltas: InternalDefaults.exec.maxDeltas,
  shellToolBytes: InternalDefaults.exec.shellToolBytes,
  /** Read size and long-poll wait of one `process/read`. */
  readBytes: InternalDefaults.exec.readBytes,
  readWaitMillis: InternalDefaults.exec.readWaitMillis
} as const

// =============================================================================
// The consume loop
// =============================================================================

const limitOf = (capture: Capture): CappedBuffer.Limit =>
  capture === "shellTool"
    ? { _tag: "Head", maxBytes: Defaults.shellToolBytes }
    : capture === "fullBuffer"
    ? { _tag: "Unlimited" }
    : { _tag: "HeadTail", headBytes: capture.headBytes, tailBytes: capture.tailBytes }

const aggregateCap = (capture: Capture): number | undefined =>
  capture === "shellTool"
    ? Defaults.shellToolBytes
    : capture === "fullBuffer"
    ? undefined
    : capture.headBytes + capture.tailBytes

/** Everything the loop has learnt so far; it survives a timeout or interrupt. */
class Progress {
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
 * Long-poll reads until the process is closed and drained. The cursor travels
 * in the stream's own state, not in `progress`: the stream may pull the next
 * read before the last one was absorbed (`interruptWhen` runs it ahead), and
 * a cursor read from `progress` then would fetch the same chunks twice.
 */
const reads = (executor: Executor["Service"], processId: string, progress: Progress) =>
  Stream.paginate(progress.afterSeq, (afterSeq) =>
    Effect.map(
      executor.read({ processId, afterSeq, maxBytes: Defaults.readBytes, waitMs: Defaults.readWaitMillis }),
      (result) => [[result], Protocol.isDrained(result) ? Option.none() : Option.some(result.nextSeq - 1)] as const
    ))

/** Folds one read into the progress and sends its deltas. */
const absorb = (progress: Progress, sink: OutputSink["Service"], callId: string, maxDeltas: number) =>
  Effect.fnUntraced(function*(result: Protocol.ReadResult) {
    for (const { chunk, seq, stream } of result.chunks) {
      ;(stream === "stderr" ? progress.stderr : progress.stdout).append(chunk)
      // advance per chunk: an interrupt between chunks must not make a re-read repeat one
      progress.afterSeq = seq
      if (progress.deltasSent < maxDeltas) {
        progress.deltasSent++
        yield* sink.emit({ callId, stream, chunk })
      } else {
        progress.deltasSkipped++
      }
    }
    progress.afterSeq = result.nextSeq - 1
    progress.droppedByExecutor += result.dropped?.bytes ?? 0
    progress.exited = result.exited
    progress.closed = result.closed
    progress.exitCode = result.exitCode
    progress.signal = result.signal ?? null
    progress.sandboxDenied = result.sandboxDenied ?? false
  })

/**
 * Reads until closed; once the exit is seen (now or during the reads), reads
 * on for at most `drainLimit`.
 */
const consume = (
  executor: Executor["Service"],
  processId: string,
  progress: Progress,
  step: (result: Protocol.ReadResult) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const exitSeen = yield* Deferred.make<void>()
    if (progress.exited) yield* Deferred.succeed(exitSeen, undefined)
    yield* reads(executor, processId, progress).pipe(
      Stream.interruptWhen(Effect.andThen(Deferred.await(exitSeen), Effect.sleep(Defaults.drainLimit))),
      Stream.runForEach((result) =>
        Effect.andThen(step(result), result.exited ? Deferred.succeed(exitSeen, undefined) : Effect.void)
      )
    )
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

/** A start that was interrupted, or whose answer a lost link swallowed, may have started the process. */
const mayHaveStarted = (cause: Cause.Cause<ExecutorError>): boolean =>
  cause.reasons.some((reason) => reason._tag !== "Fail" || reason.error.reason._tag === "ConnectionLost")

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
  (request: ExecRequestIn): Effect.Effect<ExecResult, ExecutorError, EnvironmentRegistry | OutputSink>
  (request: ExecRequest): Effect.Effect<ExecResult, ExecutorError, Environment | OutputSink>
} = Effect.fn("Exec.run")(function*(request: ExecRequest & { readonly environment?: Selection }): Effect.fn.Return<
  ExecResult,
  ExecutorError,
  Environment | OutputSink | Scope.Scope
> {
  const environment = yield* admitted(request.environment)
  const sink = yield* OutputSink
  const { executor } = environment
  const capture = request.capture ?? "shellTool"
  const terminal = request.tty === true ? {} : request.tty === false ? undefined : request.tty
  const processId = `shell-${crypto.randomUUID()}`
  const startedAt = yield* Clock.currentTimeMillis
  const progress = new Progress(limitOf(capture))
  const step = absorb(progress, sink, request.callId ?? processId, request.maxDeltas ?? Defaults.maxDeltas)
  const inheritAll: Protocol.EnvPolicy = {
    inherit: "all",
    ignoreDefaultExcludes: true,
    exclude: [],
    set: {},
    includeOnly: []
  }

  const cwd = request.cwd ?? (yield* executor.defaultCwd)
  // Killing must not hang on an executor that stopped answering (a silent
  // server): it gets as long as the drain, then the call goes on without it.
  const terminate = executor.terminate(processId).pipe(Effect.timeoutOption(Defaults.drainLimit), Effect.ignore)

  return yield* Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const started = yield* restore(executor.start({
        processId,
        argv: request.command,
        cwd,
        env: request.env ?? {},
        tty: terminal !== undefined,
        ...(terminal?.size === undefined ? {} : { size: terminal.size }),
        arg0: null,
        envPolicy: request.envPolicy ?? (request.env === undefined ? inheritAll : null),
        sandbox: request.sandbox === undefined ? null : Sandbox.toWire(request.sandbox, cwd),
        backpressure: true,
        // this loop pulls output with process/read: no need for a pushed copy
        outputNotifications: false
      })).pipe(
        // interrupted or cut off while starting: the process may exist all the same
        Effect.onError((cause) => mayHaveStarted(cause) ? terminate : Effect.void)
      )
      progress.sandboxType = started.sandboxType ?? "none"
      // From here on the process exists: any way out must leave it dead or done.
      const outcome: Outcome = yield* restore(Effect.gen(function*() {
        if (request.onSpawn) yield* request.onSpawn
        const timeout = capture === "fullBuffer"
          ? Effect.never
          : Effect.sleep(request.timeout ?? Defaults.timeout)
        return yield* Effect.raceFirst(
          consume(executor, processId, progress, step).pipe(
            Effect.as<Outcome>({ _tag: "Finished" }),
            Effect.catch((error) => Effect.succeed<Outcome>({ _tag: "Lost", error }))
          ),
          Effect.raceFirst(
            Effect.as(timeout, { _tag: "TimedOut" } as const),
            Effect.raceFirst(
              Effect.as(request.interrupt ?? Effect.never, { _tag: "Interrupted" } as const),
              terminal === undefined ? Effect.never : feedTerminal(executor, processId, terminal)
            )
          )
        )
      })).pipe(Effect.onInterrupt(() => terminate))

      if (outcome._tag !== "Finished") {
        yield* terminate
        // collect what the killed group left in its pipes, within the drain limit
        if (outcome._tag !== "Lost") {
          yield* restore(
            consume(executor, processId, progress, step).pipe(
              Effect.ignore,
              Effect.timeoutOption(Defaults.drainLimit)
            )
          ).pipe(Effect.onInterrupt(() => terminate))
        }
      }

      const finishedAt = yield* Clock.currentTimeMillis
      return finish(request, capture, processId, progress, outcome, finishedAt - startedAt)
    })
  )
  // the admission (a slot of a registry environment) is held until the run is over
}, Effect.scoped) as {
  (request: ExecRequestIn): Effect.Effect<ExecResult, ExecutorError, EnvironmentRegistry | OutputSink>
  (request: ExecRequest): Effect.Effect<ExecResult, ExecutorError, Environment | OutputSink>
}

const finish = (
  request: ExecRequest,
  capture: Capture,
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
    ? Termination.TimedOut({ timeout: Duration.fromInputUnsafe(request.timeout ?? Defaults.timeout) })
    : outcome._tag === "Interrupted"
    ? Termination.Interrupted()
    : outcome._tag === "Lost"
    ? Termination.Lost({ reason: outcome.error.message })
    : exitedBySignal
    ? Termination.Signaled({ signal })
    : Termination.Exited({ exitCode: progress.exitCode ?? -1 })
  const exitCode = outcome._tag === "TimedOut"
    ? Defaults.timeoutExitCode
    : signalExitCode !== -1
    ? signalExitCode
    : progress.exitCode ?? -1
  return {
    processId,
    exitCode,
    signal,
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
