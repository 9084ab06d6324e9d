/**
 * `effect-exec serve`: this host's processes and files for exec-server
 * clients (ours or Codex's), over a WebSocket or stdio. A stop signal is its
 * normal end: it kills the processes it runs and exits 0.
 *
 * @internal
 */
import { Command, Flag } from "effect/cli"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as ExecServer from "../../ExecServer.ts"
import { Executor } from "../../Executor.ts"
import * as LocalExecutor from "../../LocalExecutor.ts"
import * as WebSocketListener from "../../WebSocketListener.ts"
import * as Defaults from "../defaults.ts"
import * as Connection from "./connection.ts"
import * as CliDuration from "./duration.ts"
import * as ExitCodes from "./exitCodes.ts"
import { signalStopsCleanlyFromNow } from "./processMain.ts"

const listenFlag = Flag.String("listen").pipe(
  Flag.withDescription(
    "ws://IP:PORT to listen on (default ws://127.0.0.1:0; port 0 picks a free one; any address but loopback needs " +
      "a token), or stdio for newline-delimited JSON on stdin/stdout"
  ),
  Flag.withDefault("ws://127.0.0.1:0")
)

const seconds = (millis: number) => `${millis / 1000}s`

/** A whole-number flag's lower bound, said in the usage error (a zero count would make a server that serves nothing). */
const atLeast = (flag: string, min: number) =>
  Flag.filter((value: number) => value >= min, (value) => `--${flag} must be at least ${min}, got ${value}`)

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
  Flag.withDefault(ExecServer.defaults.maxConcurrentRequests),
  atLeast("concurrent-requests", 1)
)

const maxProcessesFlag = Flag.Int("max-processes").pipe(
  Flag.withDescription(
    `Processes running at once over all clients (default ${ExecServer.defaults.maxProcesses}); more starts are refused`
  ),
  Flag.withDefault(ExecServer.defaults.maxProcesses),
  atLeast("max-processes", 1)
)

const maxProcessesPerSessionFlag = Flag.Int("max-processes-per-session").pipe(
  Flag.withDescription(
    `Processes running at once for one client session (default ${ExecServer.defaults.maxProcessesPerSession})`
  ),
  Flag.withDefault(ExecServer.defaults.maxProcessesPerSession),
  atLeast("max-processes-per-session", 1)
)

const maxFileBytesFlag = Flag.Int("max-file-bytes").pipe(
  Flag.withDescription(
    `The largest file a client may read or write with fs/* (default ${ExecServer.defaults.maxFileBytes}); ` +
      `larger ones are refused`
  ),
  Flag.withDefault(ExecServer.defaults.maxFileBytes),
  atLeast("max-file-bytes", 0)
)

const maxSessionsPerAddressFlag = Flag.Int("max-sessions-per-address").pipe(
  Flag.withDescription(
    `Sessions attached at once from one client IP address (default ${ExecServer.defaults.maxSessionsPerAddress}), ` +
      `so one client cannot take every one of the ${ExecServer.defaults.maxSessions} session slots`
  ),
  Flag.withDefault(ExecServer.defaults.maxSessionsPerAddress),
  atLeast("max-sessions-per-address", 1)
)

const maxConnectionsPerAddressFlag = Flag.Int("max-connections-per-address").pipe(
  Flag.withDescription(
    `Connections open at once from one client IP address (default ${ExecServer.defaults.maxConnectionsPerAddress}); ` +
      `more are answered 503`
  ),
  Flag.withDefault(ExecServer.defaults.maxConnectionsPerAddress),
  atLeast("max-connections-per-address", 1)
)

const requireSandboxFlag = Flag.Boolean("require-sandbox").pipe(
  Flag.withDescription(
    "Refuse every process/start that would run unconfined (no sandbox, or a policy that confines nothing), and " +
      "every fs/* call without a policy that confines file access; the server does not start when the sandbox is " +
      "unavailable"
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

/** The flags of `serve`, parsed. */
export interface ServeFlags {
  readonly listen: string
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly tokenFile: Option.Option<string>
  readonly sessionTtl: string
  readonly concurrentRequests: number
  readonly maxProcesses: number
  readonly maxProcessesPerSession: number
  readonly maxFileBytes: number
  readonly maxSessionsPerAddress: number
  readonly maxConnectionsPerAddress: number
  readonly requireSandbox: boolean
  readonly bwrap: Option.Option<string>
}

/** `serve` with its flags parsed and its executor provided. */
const serveWith = Effect.fnUntraced(function*(flags: ServeFlags) {
  const ttl = CliDuration.parse(flags.sessionTtl)
  if (Option.isNone(ttl)) {
    return yield* new ExitCodes.UsageError({
      message: `invalid --session-ttl ${JSON.stringify(flags.sessionTtl)} (try 30s or 2m)`
    })
  }
  const options = {
    sessionTtl: ttl.value,
    maxConcurrentRequests: flags.concurrentRequests,
    maxProcesses: flags.maxProcesses,
    maxProcessesPerSession: flags.maxProcessesPerSession,
    maxFileBytes: flags.maxFileBytes,
    maxSessionsPerAddress: flags.maxSessionsPerAddress,
    maxConnectionsPerAddress: flags.maxConnectionsPerAddress
  }
  // said after the flags were found usable: a usage error is the only line then
  const sandboxAnnounced = Effect.gen(function*() {
    if (yield* announceSandbox(flags.requireSandbox)) return true
    yield* Console.error("effect-exec: --require-sandbox, but the sandbox is unavailable: not serving")
    process.exitCode = ExitCodes.usage
    return false
  })
  if (flags.listen === "stdio") {
    if (!(yield* sandboxAnnounced)) return
    yield* signalStopsCleanlyFromNow
    return yield* ExecServer.serveStdio(process.stdin, process.stdout, options)
  }
  const token = yield* Connection.resolveToken(flags.token, flags.tokenFile)
  const listener = yield* WebSocketListener.listen({ ...options, listen: flags.listen, token }).pipe(Effect.result)
  if (listener._tag === "Failure") {
    yield* Console.error(`effect-exec: ${withFlagNames(listener.failure)}`)
    process.exitCode = ExitCodes.usage
    return
  }
  // nothing is printed on stdout until then: a client reading the address finds the server as it will stay
  if (!(yield* sandboxAnnounced)) return
  // the address first, alone on stdout; everything else goes to stderr
  yield* Console.log(listener.success.url)
  yield* signalStopsCleanlyFromNow
  yield* Console.error(`effect-exec: exec-server listening on ${listener.success.url}`)
  return yield* Effect.never
}, Effect.scoped)

/** How the CLI sets each option of `WebSocketListener.listen` that a `ListenError` may name. */
const flagNames = {
  listen: "--listen",
  token: "--token (or --token-file, or EXEC_SERVER_TOKEN)"
} as const

/** A `ListenError`'s message, the option it starts with named as the CLI's flag. */
const withFlagNames = (error: WebSocketListener.ListenError): string =>
  error.option === undefined ? error.message : flagNames[error.option] + error.message.slice(error.option.length)

/** `effect-exec serve`. */
export const command = Command.make(
  "serve",
  {
    listen: listenFlag,
    token: Connection.tokenFlag,
    tokenFile: Connection.tokenFileFlag,
    sessionTtl: sessionTtlFlag,
    concurrentRequests: concurrentRequestsFlag,
    maxProcesses: maxProcessesFlag,
    maxProcessesPerSession: maxProcessesPerSessionFlag,
    maxFileBytes: maxFileBytesFlag,
    maxSessionsPerAddress: maxSessionsPerAddressFlag,
    maxConnectionsPerAddress: maxConnectionsPerAddressFlag,
    requireSandbox: requireSandboxFlag,
    bwrap: bwrapFlag
  },
  (flags) =>
    serveWith(flags).pipe(
      Effect.provide(LocalExecutor.layer({
        sandbox: { bwrap: Option.getOrUndefined(flags.bwrap), required: flags.requireSandbox },
        // the server copies what it sends (into a frame, or as base64) before it reads on
        lendOutput: true,
        windowBytes: Defaults.server.outputWindowBytes
      }))
    )
).pipe(
  Command.withDescription(
    "Serve this host's processes and files to exec-server clients (ours or Codex's); SIGINT, SIGTERM, SIGHUP or " +
      "SIGQUIT stops it, kills them and exits 0"
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
