/**
 * The `effect-exec` command line: `run` executes one command through the
 * library with its output streamed live, byte for byte, and exits with the
 * command's exit code.
 *
 * @since 0.1.0
 */
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import * as Environment from "./Environment.ts"
import * as Exec from "./Exec.ts"
import type { ExecutorError } from "./Executor.ts"
import * as OutputSink from "./OutputSink.ts"

/**
 * Parses `--timeout`: a duration such as `500ms`, `30s`, `2m`, `1.5 hours`, or
 * `none` for no timeout.
 *
 * @category parsing
 * @since 0.1.0
 */
export const parseTimeout = (input: string): Option.Option<Duration.Duration | "none"> => {
  const text = input.trim().toLowerCase()
  if (text === "none" || text === "0") return Option.some("none")
  const match = /^(\d+(?:\.\d+)?)\s*(ms|millis|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?)?$/.exec(text)
  if (match === null) return Option.none()
  const amount = Number(match[1])
  const unit = match[2] ?? "s"
  const millis = unit.startsWith("ms") || unit.startsWith("milli")
    ? amount
    : unit.startsWith("h")
    ? amount * 3_600_000
    : unit === "s" || unit.startsWith("sec")
    ? amount * 1_000
    : amount * 60_000
  return Option.some(Duration.millis(millis))
}

/** Exit codes a shell would give when a command cannot start. */
const startFailureExitCode = (error: ExecutorError): number =>
  error.reason._tag === "SpawnFailed"
    ? error.reason.kind === "CommandNotFound" ? 127 : error.reason.kind === "PermissionDenied" ? 126 : 1
    : 1

const timeoutFlag = Flag.String("timeout").pipe(
  Flag.withDescription(
    "Kill the command's process group after this long and exit 124: 500ms, 30s, 5m, 1h, or none (default 10s; " +
      "ignored with --capture fullBuffer)"
  ),
  Flag.withDefault("10s")
)

const cwdFlag = Flag.Directory("cwd", { mustExist: true }).pipe(
  Flag.withDescription("Working directory of the command (default: the current directory)"),
  Flag.optional
)

const captureFlag = Flag.Literals("capture", ["shellTool", "fullBuffer"]).pipe(
  Flag.withDescription(
    "What the library keeps in memory besides the live output: shellTool keeps the first 1 MiB of each stream and " +
      "applies the timeout; fullBuffer keeps everything and never times out"
  ),
  Flag.withDefault("shellTool")
)

const commandArgument = Argument.String("command").pipe(
  Argument.withDescription("The command and its arguments, after --; run as an argv, never through a shell"),
  Argument.variadic({ min: 1 })
)

/**
 * `effect-exec run`.
 *
 * @category commands
 * @since 0.1.0
 */
export const run = Command.make(
  "run",
  { timeout: timeoutFlag, cwd: cwdFlag, capture: captureFlag, command: commandArgument },
  Effect.fnUntraced(function*({ capture, command, cwd, timeout }) {
    const parsedTimeout = parseTimeout(timeout)
    if (Option.isNone(parsedTimeout)) {
      yield* Console.error(`effect-exec: invalid --timeout ${JSON.stringify(timeout)} (try 500ms, 30s, 5m or none)`)
      process.exitCode = 2
      return
    }
    const outcome = yield* Exec.run({
      command,
      capture,
      ...(Option.isSome(cwd) ? { cwd: cwd.value } : {}),
      // a terminal is not an agent's event stream: every byte goes out
      maxDeltas: Infinity,
      timeout: parsedTimeout.value === "none" ? Duration.infinity : parsedTimeout.value
    }).pipe(Effect.result)
    if (outcome._tag === "Failure") {
      yield* Console.error(`effect-exec: ${outcome.failure.message}`)
      process.exitCode = startFailureExitCode(outcome.failure)
      return
    }
    const result = outcome.success
    switch (result.termination._tag) {
      case "TimedOut":
        yield* Console.error(
          `effect-exec: timed out after ${Duration.format(result.termination.timeout)}; killed its process group`
        )
        break
      case "Lost":
        yield* Console.error(`effect-exec: lost the command: ${result.termination.reason}`)
        break
      case "Signaled":
        yield* Console.error(`effect-exec: command killed by ${result.termination.signal ?? "a signal"}`)
        break
    }
    process.exitCode = result.exitCode < 0 ? 1 : result.exitCode
  })
).pipe(
  Command.withDescription(
    "Run a command in its own process group with live output; exit with its exit code (124 on timeout)"
  ),
  Command.withExamples([
    { command: "effect-exec run -- sh -c 'echo hello; echo oops >&2; exit 3'", description: "exits 3" },
    { command: "effect-exec run --timeout 2m --cwd /repo -- npm test", description: "a test run with a deadline" }
  ]),
  Command.provide(Layer.mergeAll(Environment.layerLocal, OutputSink.layerConsole))
)

/**
 * The root `effect-exec` command.
 *
 * @category commands
 * @since 0.1.0
 */
export const root = Command.make("effect-exec").pipe(
  Command.withDescription("Run commands in an execution environment, the Effect way"),
  Command.withSubcommands([run])
)

/**
 * Runs the CLI on the given arguments.
 *
 * @category running
 * @since 0.1.0
 */
export const main = Command.run(root, { version: "0.1.0" })
