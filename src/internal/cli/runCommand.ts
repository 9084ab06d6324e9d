/**
 * `effect-exec run`: one command through the library, here or on an
 * exec-server, as a Unix tool runs one: its stdout and stderr streamed to
 * ours byte for byte and in the order they were read, our stdin forwarded to
 * it (its end too), its exit code ours, and no deadline unless `--timeout`
 * names one.
 *
 * The flags are fields of one `Command.make` config (`RunFlags` is its
 * parsed shape); a new flag is one field there and its use in `runWith`.
 *
 * @internal
 */
import { Argument, Command, Flag } from "effect/cli"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as NodePath from "node:path"
import * as Exec from "../../Exec.ts"
import * as OutputSink from "../../OutputSink.ts"
import * as Sandbox from "../../Sandbox.ts"
import * as Connection from "./connection.ts"
import * as CliDuration from "./duration.ts"
import { UsageError } from "./exitCodes.ts"
import * as RunReport from "./runReport.ts"
import * as Stdin from "./stdin.ts"
import * as UserTerminal from "./userTerminal.ts"

const timeoutFlag = Flag.String("timeout").pipe(
  Flag.withDescription(
    "Kill the command's process group after this long and exit 124: 500ms, 30s, 5m, 1h, a bare number is seconds " +
      "(default, and 0 or none: no timeout)"
  ),
  Flag.optional
)

const ttyFlag = Flag.Boolean("tty").pipe(
  Flag.withAlias("t"),
  Flag.withDescription(
    "Run the command on a pseudo-terminal, as in a shell: colours, line editing, prompts. When stdin is a " +
      "terminal it is put in raw mode (every key, Ctrl-C too, goes to the command) and window size changes follow"
  ),
  Flag.withDefault(false)
)

const stdinFlag = Flag.Boolean("stdin").pipe(
  Flag.withDescription(
    "Forward this stdin to the command, its end too (the default); --no-stdin gives the command /dev/null, " +
      "as ssh -n does"
  ),
  Flag.withDefault(true)
)

const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription(
    "Print one JSON record on stdout after the command (exit code, termination, duration, byte counts, dropped " +
      "bytes); the command's own stdout and stderr both go to stderr"
  ),
  Flag.withDefault(false)
)

// a string, not a directory checked here: on an exec-server the directory is the server's
const cwdFlag = Flag.String("cwd").pipe(
  Flag.withDescription("Working directory of the command (default: the current directory, or the server's)"),
  Flag.optional
)

const captureFlag = Flag.Literals("capture", ["shellTool", "fullBuffer"]).pipe(
  Flag.withDescription(
    "What the library keeps in memory besides the live output: shellTool the first 1 MiB of each stream (the " +
      "default), fullBuffer everything"
  ),
  Flag.withDefault("shellTool")
)

const sandboxFlag = Flag.Literals("sandbox", Sandbox.modes).pipe(
  Flag.withDescription(
    "Confine the command as Codex's CLI does: read-only (nothing writable), workspace-write (the working directory, " +
      "/tmp and $TMPDIR writable, but not .git/.agents/.codex/.aws), danger-full-access (no sandbox); the network " +
      "is restricted in the first two. Default: no sandbox. Locally it needs bubblewrap (" +
      "$EXEC_SANDBOX_BWRAP, else bwrap on PATH); a host that cannot enforce it refuses the command"
  ),
  Flag.optional
)

const commandArgument = Argument.String("command").pipe(
  Argument.withDescription("The command and its arguments, after --; run as an argv, never through a shell"),
  Argument.variadic({ min: 1 })
)

/** The flags of `run`, parsed. */
export interface RunFlags extends Connection.ConnectionFlags {
  readonly timeout: Option.Option<string>
  readonly tty: boolean
  readonly stdin: boolean
  readonly json: boolean
  readonly cwd: Option.Option<string>
  readonly capture: "shellTool" | "fullBuffer"
  readonly sandbox: Option.Option<Sandbox.Mode>
  readonly command: ReadonlyArray<string>
}

/** `--timeout`, read: a usage error when it cannot be. */
const timeoutOf = (flags: RunFlags): Effect.Effect<Duration.Duration, UsageError> => {
  if (Option.isNone(flags.timeout)) return Effect.succeed(Duration.infinity)
  const text = flags.timeout.value
  return Option.match(CliDuration.parseTimeout(text), {
    onNone: () =>
      Effect.fail(
        new UsageError({ message: `invalid --timeout ${JSON.stringify(text)} (try 500ms, 30s, 5m or none)` })
      ),
    onSome: (timeout) => Effect.succeed(timeout === "none" ? Duration.infinity : timeout)
  })
}

/** `--cwd`: relative to the user's directory here; on a named environment or server it must be absolute (checked there). */
const cwdOf = (flags: RunFlags, cwd: string): string =>
  Option.isNone(flags.remote) && Option.isNone(flags.env) ? NodePath.resolve(cwd) : cwd

/** The user's environment, TERM included, as in their shell: what a command on a terminal sees. */
const asInTheUsersShell = (): Pick<Exec.ExecRequest, "envPolicy" | "env"> => ({
  envPolicy: { inherit: "all", ignoreDefaultExcludes: true, exclude: [], set: {}, includeOnly: [] },
  ...(process.env.TERM === undefined ? {} : { env: { TERM: process.env.TERM } })
})

/** Runs the command: on the user's terminal (lent for the run only) with `--tty`, else on pipes. */
const execute = (flags: RunFlags, timeout: Duration.Duration) =>
  Effect.scoped(Effect.gen(function*() {
    const request: Exec.ExecRequest = {
      command: flags.command,
      capture: flags.capture,
      timeout,
      ...(Option.isSome(flags.cwd) ? { cwd: cwdOf(flags, flags.cwd.value) } : {}),
      ...(Option.isSome(flags.sandbox) ? { sandbox: Sandbox.fromMode(flags.sandbox.value) } : {}),
      // a person is not an agent's event stream: every byte goes out
      maxDeltas: Infinity
    }
    if (!flags.tty) {
      return yield* Exec.run(flags.stdin && !Stdin.isDevNull() ? { ...request, stdin: Stdin.bytes() } : request)
    }
    // raw mode ends with this scope, before anything below is printed
    const terminal: Exec.Terminal = flags.stdin ? yield* UserTerminal.lend() : {}
    return yield* Exec.run({ ...request, ...asInTheUsersShell(), tty: terminal })
  }))

/** `run` with its flags parsed. */
const runWith = Effect.fnUntraced(function*(flags: RunFlags) {
  const timeout = yield* timeoutOf(flags)
  const environment = yield* Connection.environmentLayer(flags)
  const outcome = yield* execute(flags, timeout).pipe(Effect.provide(environment), Effect.result)
  if (outcome._tag === "Failure") {
    yield* Console.error(`effect-exec: ${outcome.failure.message}`)
    if (flags.json) yield* Console.log(RunReport.startFailureJson(outcome.failure))
    process.exitCode = RunReport.startFailureExitCode(outcome.failure)
    return
  }
  const result = outcome.success
  const ending = RunReport.endingLine(result)
  if (ending !== undefined) yield* Console.error(`effect-exec: ${ending}`)
  if (flags.json) yield* Console.log(RunReport.resultJson(result))
  process.exitCode = RunReport.exitCodeOf(result)
})

/** Where the command's output goes: ours, stream for stream; with `--json`, all of it to stderr. */
const outputFor = (flags: RunFlags) =>
  flags.json ? OutputSink.layerWritable({ stdout: process.stderr, stderr: process.stderr }) : OutputSink.layerConsole

/** `effect-exec run`. */
export const command = Command.make(
  "run",
  {
    timeout: timeoutFlag,
    tty: ttyFlag,
    stdin: stdinFlag,
    json: jsonFlag,
    cwd: cwdFlag,
    capture: captureFlag,
    sandbox: sandboxFlag,
    remote: Connection.remoteFlag,
    env: Connection.envFlag,
    environments: Connection.environmentsFlag,
    token: Connection.tokenFlag,
    tokenFile: Connection.tokenFileFlag,
    command: commandArgument
  },
  (flags) => runWith(flags).pipe(Effect.provide(outputFor(flags)))
).pipe(
  Command.withDescription(
    "Run a command in its own process group with live output and this stdin; exit with its exit code (124 on " +
      "timeout, 127 when it does not exist, 128 + n when killed by signal n, 255 when the exec-server is out of reach)"
  ),
  Command.withExamples([
    { command: "effect-exec run -- sh -c 'echo hello; echo oops >&2; exit 3'", description: "exits 3" },
    { command: "effect-exec run --timeout 2m --cwd /repo -- npm test", description: "a test run with a deadline" },
    { command: "effect-exec run -- sort < names.txt", description: "stdin goes to the command" },
    { command: "effect-exec run --remote ws://127.0.0.1:4000 -- uname -a", description: "on an exec-server" },
    { command: "effect-exec run --env devbox -- make", description: "in an environment of environments.toml" },
    { command: "effect-exec run -t --remote ws://127.0.0.1:4000 -- bash", description: "a shell on an exec-server" },
    { command: "effect-exec run --sandbox workspace-write -- make", description: "writes only in the workspace" },
    { command: "effect-exec run --json -- make 2>build.log", description: "a JSON result on stdout" }
  ])
)
