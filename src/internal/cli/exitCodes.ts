/**
 * The CLI's exit codes, as a shell and ssh give them, and the one-line
 * messages of its own failures (never a stack trace).
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as NodeOs from "node:os"

/** A usage error: a flag or argument the CLI cannot use (as `getopt` tools exit). */
export const usage = 2

/** The environment failed: the exec-server cannot be reached, broke the link or the protocol, or refused (as ssh exits). */
export const connection = 255

/** The CLI failed in a way it did not foresee (a bug): one line, never a trace. */
export const internal = 70

/** The command cannot be executed (a shell's code for a file without the execute bit). */
export const cannotExecute = 126

/** The command does not exist (a shell's code). */
export const notFound = 127

/** 128 + n: how a shell reports a death by signal n. */
export const bySignal = (signal: NodeJS.Signals): number => 128 + NodeOs.constants.signals[signal]

/** A closed stdout (EPIPE) ends the CLI as SIGPIPE ends a shell's command: 141. */
export const brokenPipe = bySignal("SIGPIPE")

/**
 * A usage error found after parsing (a flag whose value cannot be used):
 * printed as one line on stderr, exit 2.
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}
