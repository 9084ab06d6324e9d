/**
 * The CLI as this process's main program, behaving as a Unix tool:
 *
 * - SIGINT, SIGTERM, SIGHUP and SIGQUIT interrupt the program, so its
 *   finalizers kill the command's process group, then the CLI exits 128 + n
 *   (a second signal exits at once). A command for which a signal is the
 *   normal way to stop (`serve`, once it listens) exits 0 instead.
 * - A closed stdout or stderr (EPIPE: `effect-exec run … | head -1`) ends the
 *   run the same way, quietly, and exits 141, as SIGPIPE ends a shell's
 *   command.
 * - A failure is one line on stderr, never a stack trace: usage errors exit
 *   2, other failures 1, a defect (a bug) 70.
 *
 * - It exits once what it queued for stdout and stderr is written: a reader
 *   behind on a pipe gets the tail of the output too.
 *
 * The exit code a command decides is `process.exitCode`.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as CliError from "effect/cli/CliError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as ExitCodes from "./exitCodes.ts"

/** The signals that stop the CLI (and its command). */
export const stopSignals: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"]

let signalStopsCleanly = false

/**
 * From now on a stop signal is the normal way to end this run: the CLI exits
 * 0 once its finalizers ran (a server asked to stop, that stopped).
 */
export const signalStopsCleanlyFromNow: Effect.Effect<void> = Effect.sync(() => {
  signalStopsCleanly = true
})

const firstLine = (text: string): string => text.split("\n")[0]!.trim()

const messageOf = (value: unknown): string =>
  firstLine(
    typeof value === "object" && value !== null && "message" in value && typeof value.message === "string"
      ? value.message
      : String(value)
  )

/** Prints one line for a failed program and sets the exit code it deserves. */
const reportFailure = (cause: Cause.Cause<unknown>): Effect.Effect<void> => {
  if (Cause.hasInterruptsOnly(cause)) return Effect.void
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure !== undefined) {
    const error = failure.error
    process.exitCode = 1
    if (CliError.isCliError(error)) {
      // effect/cli's parse errors were presented already (usage.ts)
      process.exitCode = ExitCodes.usage
      return error._tag === "ShowHelp" ? Effect.void : Console.error(`effect-exec: ${messageOf(error)}`)
    }
    if (error instanceof ExitCodes.UsageError) process.exitCode = ExitCodes.usage
    return Console.error(`effect-exec: ${messageOf(error)}`)
  }
  const defect = cause.reasons.find(Cause.isDieReason)
  process.exitCode = ExitCodes.internal
  return Console.error(`effect-exec: internal error: ${messageOf(defect?.defect)}`)
}

const exitCodeOf = (): number => {
  const code = Number(process.exitCode ?? 0)
  return Number.isInteger(code) ? code : 1
}

/**
 * Calls `done` once stdout and stderr have written what they queued. A pipe's
 * write is not always synchronous: what the pipe cannot take at once (its
 * reader is behind) waits in libuv, and `write` still returns true below the
 * stream's high-water mark, so exiting at once would lose the tail of the
 * output. A stream that errored or was destroyed has nothing more to write.
 */
const afterOutputFlushed = (done: () => void): void => {
  const streams = [process.stdout, process.stderr].filter((stream) =>
    stream.writableLength > 0 && !stream.destroyed && !stream.writableEnded
  )
  let pending = streams.length
  if (pending === 0) return done()
  const one = () => {
    if (--pending === 0) done()
  }
  for (const stream of streams) {
    // writes complete in order: the callback of an empty write runs once those before it are written (or failed)
    stream.write("", one)
  }
}

const runner = Runtime.makeRunMain(({ fiber }) => {
  let stoppedWith: number | undefined
  const stop = (code: number) => {
    if (stoppedWith !== undefined) return
    stoppedWith = code
    fiber.interruptUnsafe(fiber.id)
  }
  const onSignal = (signal: NodeJS.Signals) => {
    // a second signal does not wait for the finalizers
    if (stoppedWith !== undefined && stoppedWith !== ExitCodes.brokenPipe) process.exit(stoppedWith)
    stop(ExitCodes.bySignal(signal))
  }
  const onStreamError = (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") return stop(ExitCodes.brokenPipe)
    stop(ExitCodes.internal)
  }
  // anything thrown outside the program (a stray callback) is still one line, never a trace
  const onUncaught = (error: unknown) => {
    process.stderr.write(`effect-exec: internal error: ${messageOf(error)}\n`)
    process.exit(ExitCodes.internal)
  }
  for (const signal of stopSignals) process.on(signal, onSignal)
  process.stdout.on("error", onStreamError)
  process.stderr.on("error", onStreamError)
  process.on("uncaughtException", onUncaught)
  fiber.addObserver(() => {
    for (const signal of stopSignals) process.off(signal, onSignal)
    const code = stoppedWith === undefined
      ? exitCodeOf()
      : signalStopsCleanly && stoppedWith !== ExitCodes.brokenPipe
      ? 0
      : stoppedWith
    // a closed stdout has nothing more to take; anything else is written before the exit (a signal still ends it)
    if (stoppedWith === ExitCodes.brokenPipe) process.exit(code)
    afterOutputFlushed(() => process.exit(code))
  })
})

/** Runs `program` as this process's main program, then exits. */
export const runMain = (program: Effect.Effect<void, unknown>): void =>
  runner(Effect.catchCause(program, reportFailure), { disableErrorReporting: true })
