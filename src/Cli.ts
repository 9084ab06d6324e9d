/**
 * The `effect-exec` command line: `run` executes one command through the
 * library (here, or on an exec-server) with its output streamed live, byte for
 * byte, and exits with the command's exit code; `serve` makes this host an
 * exec-server.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import { Argument, Command, Flag } from "effect/cli"
import type * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import { readFileSync } from "node:fs"
import * as Environment from "./Environment.ts"
import * as Exec from "./Exec.ts"
import * as ExecServer from "./ExecServer.ts"
import { Executor, type ExecutorError } from "./Executor.ts"
import * as UserTerminal from "./internal/cli/userTerminal.ts"
import * as LocalExecutor from "./LocalExecutor.ts"
import * as OutputSink from "./OutputSink.ts"
import * as Sandbox from "./Sandbox.ts"
import * as WebSocketListener from "./WebSocketListener.ts"

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

/** Exit codes a shell would give when a command cannot start; 255 (as ssh) when the server is out of reach. */
const startFailureExitCode = (error: ExecutorError | Environment.EnvironmentError | Config.ConfigError): number =>
  error._tag !== "ExecutorError"
    ? 2
    : error.reason._tag === "SpawnFailed"
    ? error.reason.kind === "CommandNotFound" ? 127 : error.reason.kind === "PermissionDenied" ? 126 : 1
    : error.reason._tag === "ConnectionLost"
    ? 255
    : 1

const tokenFlag = Flag.Redacted("token").pipe(
  Flag.withDescription("Bearer token for the exec-server (default: $EXEC_SERVER_TOKEN)"),
  Flag.optional
)

const tokenFileFlag = Flag.File("token-file", { mustExist: true }).pipe(
  Flag.withDescription("Read the bearer token from this file (its first line)"),
  Flag.optional
)

/** The token from --token, --token-file or EXEC_SERVER_TOKEN, in that order. */
const resolveToken = (
  token: Option.Option<Redacted.Redacted<string>>,
  tokenFile: Option.Option<string>
): Redacted.Redacted<string> | undefined => {
  if (Option.isSome(token)) return token.value
  if (Option.isSome(tokenFile)) return Redacted.make(readFileSync(tokenFile.value, "utf8").split("\n")[0]!.trim())
  const fromEnvironment = process.env.EXEC_SERVER_TOKEN
  return fromEnvironment === undefined || fromEnvironment === "" ? undefined : Redacted.make(fromEnvironment)
}

const remoteFlag = Flag.String("remote").pipe(
  Flag.withDescription("Run on the exec-server at this ws://HOST:PORT (default: $EXEC_SERVER_URL, else this machine)"),
  Flag.optional
)

const timeoutFlag = Flag.String("timeout").pipe(
  Flag.withDescription(
    "Kill the command's process group after this long and exit 124: 500ms, 30s, 5m, 1h, or none (default 10s, " +
      "none with --tty; ignored with --capture fullBuffer)"
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

/**
 * `effect-exec run`.
 *
 * @category commands
 * @since 0.1.0
 */
export const run = Command.make(
  "run",
  {
    timeout: timeoutFlag,
    tty: ttyFlag,
    cwd: cwdFlag,
    capture: captureFlag,
    sandbox: sandboxFlag,
    remote: remoteFlag,
    token: tokenFlag,
    tokenFile: tokenFileFlag,
    command: commandArgument
  },
  Effect.fnUntraced(function*({ capture, command, cwd, remote, sandbox, timeout, token, tokenFile, tty }) {
    // an interactive session has no deadline unless one is asked for
    const timeoutText = Option.getOrElse(timeout, () => tty ? "none" : "10s")
    const parsedTimeout = parseTimeout(timeoutText)
    if (Option.isNone(parsedTimeout)) {
      yield* Console.error(
        `effect-exec: invalid --timeout ${JSON.stringify(timeoutText)} (try 500ms, 30s, 5m or none)`
      )
      process.exitCode = 2
      return
    }
    const outcome = yield* Effect.scoped(Effect.gen(function*() {
      // the terminal is lent for the run only: raw mode ends before anything below is printed
      const terminal = tty ? yield* UserTerminal.lend() : undefined
      return yield* Exec.run({
        command,
        capture,
        ...(Option.isSome(cwd) ? { cwd: cwd.value } : {}),
        ...(Option.isSome(sandbox) ? { sandbox: Sandbox.fromMode(sandbox.value) } : {}),
        // a terminal is not an agent's event stream: every byte goes out
        maxDeltas: Infinity,
        timeout: parsedTimeout.value === "none" ? Duration.infinity : parsedTimeout.value,
        ...(terminal === undefined ? {} : {
          tty: terminal,
          // the command sees the user's environment, TERM included, as in their shell
          envPolicy: { inherit: "all", ignoreDefaultExcludes: true, exclude: [], set: {}, includeOnly: [] },
          ...(process.env.TERM === undefined ? {} : { env: { TERM: process.env.TERM } })
        })
      })
    })).pipe(
      Effect.provide(
        Option.isSome(remote)
          ? Environment.layerRemote({ url: remote.value, token: resolveToken(token, tokenFile) })
          : Environment.layerConfig
      ),
      Effect.result
    )
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
    { command: "effect-exec run --timeout 2m --cwd /repo -- npm test", description: "a test run with a deadline" },
    { command: "effect-exec run --remote ws://127.0.0.1:4000 -- uname -a", description: "on an exec-server" },
    { command: "effect-exec run -t --remote ws://127.0.0.1:4000 -- bash", description: "a shell on an exec-server" },
    { command: "effect-exec run --sandbox workspace-write -- make", description: "writes only in the workspace" }
  ]),
  Command.provide(OutputSink.layerConsole)
)

const listenFlag = Flag.String("listen").pipe(
  Flag.withDescription(
    "ws://IP:PORT to listen on (port 0 picks a free one; any address but loopback needs a token), or stdio for " +
      "newline-delimited JSON on stdin/stdout"
  ),
  Flag.withDefault("ws://127.0.0.1:0")
)

const seconds = (millis: number) => `${millis / 1000}s`

const sessionTtlFlag = Flag.String("session-ttl").pipe(
  Flag.withDescription(
    `How long a disconnected client's processes wait for it to resume, e.g. 30s (default ` +
      `${seconds(ExecServer.defaults.sessionTtlMillis)})`
  ),
  Flag.withDefault(seconds(ExecServer.defaults.sessionTtlMillis))
)

const concurrentRequestsFlag = Flag.Int("concurrent-requests").pipe(
  Flag.withDescription(
    `Requests of one connection served at once (default ${ExecServer.defaults.maxConcurrentRequests}); up to ` +
      `${ExecServer.defaults.maxQueuedRequests} more wait`
  ),
  Flag.withDefault(ExecServer.defaults.maxConcurrentRequests)
)

const maxProcessesFlag = Flag.Int("max-processes").pipe(
  Flag.withDescription(
    `Processes running at once over all clients (default ${ExecServer.defaults.maxProcesses}); more starts are refused`
  ),
  Flag.withDefault(ExecServer.defaults.maxProcesses)
)

const maxProcessesPerSessionFlag = Flag.Int("max-processes-per-session").pipe(
  Flag.withDescription(
    `Processes running at once for one client session (default ${ExecServer.defaults.maxProcessesPerSession})`
  ),
  Flag.withDefault(ExecServer.defaults.maxProcessesPerSession)
)

const maxFileBytesFlag = Flag.Int("max-file-bytes").pipe(
  Flag.withDescription(
    `The largest file a client may read or write with fs/* (default ${ExecServer.defaults.maxFileBytes}); ` +
      `larger ones are refused`
  ),
  Flag.withDefault(ExecServer.defaults.maxFileBytes)
)

const requireSandboxFlag = Flag.Boolean("require-sandbox").pipe(
  Flag.withDescription(
    "Refuse every process/start that would run unconfined (no sandbox, or a policy that confines nothing); " +
      "the server does not start when the sandbox is unavailable"
  ),
  Flag.withDefault(false)
)

const bwrapFlag = Flag.File("bwrap", { mustExist: true }).pipe(
  Flag.withDescription(
    "The bubblewrap binary that enforces sandboxed starts (default: $EXEC_SANDBOX_BWRAP, else bwrap on PATH); " +
      "without a working one, sandboxed starts are refused and initialize does not name the sandbox capability"
  ),
  Flag.optional
)

/** Says on stderr whether sandboxed starts are enforced; false when they are required and cannot be. */
const announceSandbox = (required: boolean) =>
  Effect.gen(function*() {
    const executor = yield* Executor
    const support = yield* executor.sandboxSupport.pipe(
      Effect.orElseSucceed(() => ({ available: false as const, reason: "unknown" }))
    )
    if (support.available) {
      yield* Console.error(`effect-exec: sandboxed starts are enforced (bubblewrap)`)
      return true
    }
    yield* Console.error(`effect-exec: sandbox unavailable: ${support.reason}; sandboxed starts are refused`)
    return !required
  })

/** The flags of `serve`. */
interface ServeFlags {
  readonly listen: string
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly tokenFile: Option.Option<string>
  readonly sessionTtl: string
  readonly concurrentRequests: number
  readonly maxProcesses: number
  readonly maxProcessesPerSession: number
  readonly maxFileBytes: number
  readonly requireSandbox: boolean
}

/** `serve` once its executor is provided. */
const serveWith = Effect.fnUntraced(
  function*(
    {
      concurrentRequests,
      listen,
      maxFileBytes,
      maxProcesses,
      maxProcessesPerSession,
      requireSandbox,
      sessionTtl,
      token,
      tokenFile
    }: ServeFlags
  ) {
    const ttl = parseTimeout(sessionTtl)
    if (Option.isNone(ttl) || ttl.value === "none") {
      yield* Console.error(`effect-exec: invalid --session-ttl ${JSON.stringify(sessionTtl)} (try 30s or 2m)`)
      process.exitCode = 2
      return
    }
    const options = {
      sessionTtl: ttl.value,
      maxConcurrentRequests: concurrentRequests,
      maxProcesses,
      maxProcessesPerSession,
      maxFileBytes,
      requireSandbox
    }
    if (!(yield* announceSandbox(requireSandbox))) {
      yield* Console.error("effect-exec: --require-sandbox, but the sandbox is unavailable: not serving")
      process.exitCode = 2
      return
    }
    if (listen === "stdio") {
      // as over WebSocket, SIGINT or SIGTERM is a clean stop: the Codex CLI stops its stdio environment with SIGTERM
      process.exitCode = 0
      yield* ExecServer.serveStdio(process.stdin, process.stdout, options)
      return
    }
    const outcome = yield* WebSocketListener.listen({ ...options, listen, token: resolveToken(token, tokenFile) })
      .pipe(
        Effect.result
      )
    if (outcome._tag === "Failure") {
      yield* Console.error(`effect-exec: ${outcome.failure.message}`)
      process.exitCode = 2
      return
    }
    // the address first, alone on stdout; everything else goes to stderr
    yield* Console.log(outcome.success.url)
    // from here on, SIGINT or SIGTERM is the way to stop: a clean exit (see teardown)
    process.exitCode = 0
    yield* Console.error(`effect-exec: exec-server listening on ${outcome.success.url}`)
    return yield* Effect.never
  },
  Effect.scoped
)

/**
 * `effect-exec serve`.
 *
 * @category commands
 * @since 0.1.0
 */
export const serve = Command.make(
  "serve",
  {
    listen: listenFlag,
    token: tokenFlag,
    tokenFile: tokenFileFlag,
    sessionTtl: sessionTtlFlag,
    concurrentRequests: concurrentRequestsFlag,
    maxProcesses: maxProcessesFlag,
    maxProcessesPerSession: maxProcessesPerSessionFlag,
    maxFileBytes: maxFileBytesFlag,
    requireSandbox: requireSandboxFlag,
    bwrap: bwrapFlag
  },
  (flags) =>
    serveWith(flags).pipe(
      Effect.provide(LocalExecutor.layer({
        sandbox: { bwrap: Option.getOrUndefined(flags.bwrap), required: flags.requireSandbox },
        // the server copies what it sends (into a frame, or as base64) before it reads on
        lendOutput: true
      }))
    )
).pipe(
  Command.withDescription(
    "Serve this host's processes and files to exec-server clients (ours or Codex's); SIGINT or SIGTERM stops it " +
      "and kills them"
  ),
  Command.withExamples([
    { command: "effect-exec serve", description: "loopback, a free port (printed first on stdout)" },
    { command: "effect-exec serve --listen ws://10.0.0.5:4000 --token-file ~/.exec-token", description: "on a LAN" },
    {
      command: "effect-exec serve --require-sandbox --bwrap /usr/bin/bwrap",
      description: "every command confined by the policy its client sends"
    }
  ])
)

/**
 * The root `effect-exec` command.
 *
 * @category commands
 * @since 0.1.0
 */
export const root = Command.make("effect-exec").pipe(
  Command.withDescription("Run commands in an execution environment, the Effect way"),
  Command.withSubcommands([run, serve])
)

/**
 * How the process exits: as Effect's default, except that a server stopped by
 * SIGINT or SIGTERM after it started serving exits 0 (it was asked to stop,
 * and stopped cleanly), where an interrupted `run` exits 130.
 *
 * @category running
 * @since 0.1.0
 */
export const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) && process.exitCode === 0
    ? onExit(0)
    : Runtime.defaultTeardown(exit, onExit)

/**
 * Runs the CLI on the given arguments.
 *
 * @category running
 * @since 0.1.0
 */
export const main = Command.run(root, { version: ExecServer.version })
