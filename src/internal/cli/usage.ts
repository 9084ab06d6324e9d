/**
 * How the CLI presents what `effect/cli` finds wrong with its arguments: one
 * line on stderr that names the problem and where to read more, instead of
 * the whole help on stdout. `--help` and `--version` print as usual.
 *
 * @internal
 */
import type * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Console from "effect/Console"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

/** The first line of `text`: effect/cli's messages may add indented suggestions below it. */
const firstLine = (text: string): string => text.split("\n")[0]!.trim()

/** Whether the user separated the command from the flags with `--`. */
const hasSeparator = (argv: ReadonlyArray<string>): boolean => argv.includes("--")

/** What is wrong, in a few words (a forgotten `--` is the usual cause of an unknown flag after `run`). */
export const describe = (
  error: CliError.NonShowHelpErrors,
  commandPath: ReadonlyArray<string>,
  argv: ReadonlyArray<string>
): string => {
  const runsACommand = commandPath.at(-1) === "run"
  switch (error._tag) {
    case "UnrecognizedOption":
      if (runsACommand && !hasSeparator(argv)) {
        return `unknown flag ${error.option}: put -- before the command and its arguments ` +
          `(${commandPath.join(" ")} [flags] -- COMMAND ARGS…)`
      }
      return `unknown flag ${error.option}` +
        (error.suggestions.length > 0 ? ` (did you mean ${error.suggestions.join(" or ")}?)` : "")
    case "MissingArgument":
      return runsACommand
        ? `missing the command to run (${commandPath.join(" ")} [flags] -- COMMAND ARGS…)`
        : `missing argument ${error.argument}`
    default:
      return firstLine(error.message)
  }
}

/** One line: the command, what is wrong, and where the help is. */
export const line = (
  commandPath: ReadonlyArray<string>,
  errors: ReadonlyArray<CliError.NonShowHelpErrors>,
  argv: ReadonlyArray<string>
): string => {
  const what = errors.length === 0
    ? `missing subcommand (${commandPath.join(" ")} run|serve|envs …)`
    : describe(errors[0]!, commandPath, argv)
  return `${commandPath.join(" ")}: ${what}; see ${commandPath.join(" ")} --help`
}

const present = (argv: ReadonlyArray<string>) => (event: CliOutput.Presenter.Event): Effect.Effect<void> => {
  switch (event._tag) {
    case "InvalidInvocation":
      return Console.error(line(event.commandPath, event.errors, argv))
    case "Help":
      // help nobody asked for: the command line was incomplete
      return event.reason === "Implicit"
        ? Console.error(line(event.commandPath, [], argv))
        : CliOutput.defaultPresenter.present(event)
    case "Version":
      return CliOutput.defaultPresenter.present(event)
  }
}

/** The presenter for a run on `argv` (the arguments after the program's name). */
export const layer = (argv: ReadonlyArray<string>): Layer.Layer<never> =>
  CliOutput.layerPresenter({ present: present(argv) })
