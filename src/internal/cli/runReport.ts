/**
 * What `run` tells after its command: the exit code (the command's, as a
 * shell gives it), one line on stderr when the command did not simply exit,
 * and with `--json` one JSON record on stdout.
 *
 * @internal
 */
import type * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import type * as Environment from "../../Environment.ts"
import type * as Exec from "../../Exec.ts"
import type { ExecutorError } from "../../Executor.ts"
import * as ExitCodes from "./exitCodes.ts"

/** Why the command could not start. */
export type StartFailure = ExecutorError | Environment.EnvironmentError | Config.ConfigError

/**
 * The exit code of a command that could not start: a shell's 127 and 126 for
 * a command it cannot find or execute; 2 for a configuration the CLI cannot
 * use (a bad environments file, an environment it does not name); and, as
 * ssh does, 255 for every other failure of the environment (a
 * server out of reach or breaking the protocol, an error answer, a refused
 * sandbox, a missing directory) — never a code the command itself could
 * have exited with.
 */
export const startFailureExitCode = (error: StartFailure): number => {
  if (error._tag !== "ExecutorError") return ExitCodes.usage
  const reason = error.reason
  if (reason._tag === "SpawnFailed" && reason.kind === "CommandNotFound") return ExitCodes.notFound
  if (reason._tag === "SpawnFailed" && reason.kind === "PermissionDenied") return ExitCodes.cannotExecute
  // an environment the configuration does not have (or disables) is the user's to fix, as a flag is
  if (reason._tag === "EnvironmentUnavailable" && reason.kind !== "Unhealthy") return ExitCodes.usage
  return ExitCodes.connection
}

/** The exit code of a command that ran: its own; 255 when the environment lost it (the link, or a broken protocol). */
export const exitCodeOf = (result: Exec.ExecResult): number =>
  result.termination._tag === "Lost" ? ExitCodes.connection : result.exitCode < 0 ? 1 : result.exitCode

/** The line printed on stderr after the command, when it did not simply exit. */
export const endingLine = (result: Exec.ExecResult): string | undefined => {
  const termination = result.termination
  switch (termination._tag) {
    case "TimedOut":
      return `timed out after ${Duration.format(termination.timeout)}; killed its process group`
    case "Lost":
      return `lost the command: ${termination.reason}`
    case "Signaled":
      return `command killed by ${termination.signal ?? "a signal"}`
    default:
      return undefined
  }
}

const capturedJson = (captured: Exec.ExecResult["stdout"]) => ({
  bytes: captured.totalBytes,
  droppedBytes: captured.droppedBytes
})

/** The termination as JSON, its tag first, a timeout in milliseconds. */
const terminationJson = (termination: Exec.Termination): Record<string, unknown> => {
  switch (termination._tag) {
    case "Exited":
      return { _tag: termination._tag, exitCode: termination.exitCode }
    case "Signaled":
      return { _tag: termination._tag, signal: termination.signal }
    case "TimedOut":
      return { _tag: termination._tag, timeoutMs: Duration.toMillis(termination.timeout) }
    case "Interrupted":
      return { _tag: termination._tag }
    case "Lost":
      return { _tag: termination._tag, reason: termination.reason }
  }
}

/** `--json`: the result of a command that ran. */
export const resultJson = (result: Exec.ExecResult): string =>
  JSON.stringify({
    exitCode: exitCodeOf(result),
    termination: terminationJson(result.termination),
    signal: result.signal,
    durationMs: Math.round(Duration.toMillis(result.duration) * 1000) / 1000,
    stdout: capturedJson(result.stdout),
    stderr: capturedJson(result.stderr),
    droppedByExecutor: result.droppedByExecutor,
    pipesHeldOpen: result.pipesHeldOpen
  })

/** `--json`: a command that could not start. */
export const startFailureJson = (error: StartFailure): string =>
  JSON.stringify({
    exitCode: startFailureExitCode(error),
    error: {
      _tag: error._tag === "ExecutorError" ? error.reason._tag : error._tag,
      ...(error._tag === "ExecutorError" && error.reason._tag === "SpawnFailed" ? { kind: error.reason.kind } : {}),
      message: error.message
    }
  })
