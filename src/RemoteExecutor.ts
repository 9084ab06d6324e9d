/**
 * The `Executor` contract as a client of an exec-server (ours or Codex's):
 * connects lazily, initializes a session, maps JSON-RPC errors to typed
 * reasons, routes notifications by `processId` into per-process records, and
 * when the link drops reconnects and resumes the session, retrying the calls
 * that are safe to repeat (`read` is: it names its cursor; `write` is: the
 * server de-duplicates by its `writeId`).
 *
 * `makeEnvironment` adds Effect's `FileSystem` over the server's `fs/*`
 * methods, on the same link.
 *
 * The roles live under `internal/remote/`: `link` (connect, initialize and
 * resume, typed calls with timeouts), `processRecords` (what notifications
 * told of each process), `remoteEvents` (`events` from those records, what
 * no notification brought read from the server), `pushedOutput` and
 * `streamedRead` (reads answered from pushed output), `fileSystem` and `platformError` (the file system).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type WebSocket from "ws"
import { ConnectionLost, Executor } from "./Executor.ts"
import * as Defaults from "./internal/defaults.ts"
import * as RemoteClient from "./internal/remote/environment.ts"
import { fromConnection } from "./internal/rpc/webSocket.ts"
import * as WebSocketClient from "./internal/rpc/webSocketClient.ts"
import { fromWebSocket, type Transport } from "./JsonRpc.ts"

/**
 * How to reach an exec-server.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** How long connecting and initializing may take (default 10 s). */
  readonly connectTimeout?: Duration.Input
  /**
   * How long an answer may take beyond a read's own `waitMs` (default 30 s);
   * past it the link counts as lost: a server that stopped answering without
   * closing the connection cannot hang a call.
   */
  readonly requestTimeout?: Duration.Input
  /** Sent in `initialize` (default `effect-exec`). */
  readonly clientName?: string
  /** The largest file the file system reads or writes (default 64 MiB); larger ones are refused. */
  readonly maxFileBytes?: number
  /**
   * Whether to ask for pushed output as binary frames where the server offers
   * them and the transport carries them (default true); false keeps every
   * frame JSON text, as a Codex client gets it.
   */
  readonly binaryOutput?: boolean
}

/**
 * Options of a WebSocket exec-server.
 *
 * @category options
 * @since 0.1.0
 */
export interface WebSocketOptions extends Options {
  /** `ws://HOST:PORT` of the server. */
  readonly url: string
  /** Sent as `Authorization: Bearer …`. */
  readonly token?: Redacted.Redacted<string> | undefined
}

/**
 * Opens a WebSocket to an exec-server: a `ws://` one through this package's
 * own client (its output frames read into reused memory, without garbage per
 * read), any other (`wss://`) through the `ws` library.
 *
 * @category transports
 * @since 0.1.0
 */
export const connectWebSocket = (options: WebSocketOptions): Effect.Effect<Transport, ConnectionLost> =>
  Effect.suspend(() => {
    const url = URL.parse(options.url)
    return url?.protocol === "ws:" ? connectOwn(url, options) : connectWithWs(options)
  })

const headersOf = (options: WebSocketOptions): Record<string, string> =>
  options.token === undefined ? {} : { Authorization: `Bearer ${Redacted.value(options.token)}` }

/** A `ws://` server, through our own client: output frames read without garbage per read. */
const connectOwn = (url: URL, options: WebSocketOptions): Effect.Effect<Transport, ConnectionLost> =>
  Effect.callback<Transport, ConnectionLost>((resume) => {
    const cancel = WebSocketClient.connect(url, {
      headers: headersOf(options),
      maxPayload: Defaults.client.maxFrameBytes,
      closeTimeoutMillis: Defaults.client.closeTimeoutMillis,
      name: options.url
    }, {
      opened: (connection) => resume(Effect.succeed(fromConnection(connection))),
      failed: (description) => resume(Effect.fail(new ConnectionLost({ description })))
    })
    return Effect.sync(cancel)
  })

/** Any other URL (`wss://`, an `http://` one), through `ws`. */
const connectWithWs = (options: WebSocketOptions): Effect.Effect<Transport, ConnectionLost> =>
  // ws (and Node's http, tls and zlib under it) loads on the first such connection, not with this module
  Effect.flatMap(Effect.promise(() => import("ws")), ({ default: WebSocket }) =>
    Effect.callback<Transport, ConnectionLost>((resume) => {
      const headers = headersOf(options)
      const socketOptions: WebSocket.ClientOptions & { readonly closeTimeout: number } = {
        headers,
        maxPayload: Defaults.client.maxFrameBytes,
        // ws 8.23's own option (its types lag): a server that never answers our
        // close cannot keep this process alive for ws's default 30 s
        closeTimeout: Defaults.client.closeTimeoutMillis
      }
      const lost = (description: string) =>
        resume(Effect.fail(new ConnectionLost({ description })))
      let socket: WebSocket
      try {
        socket = new WebSocket(options.url, socketOptions)
      } catch (error) {
        // a URL ws cannot use ("", "ws://"): the same typed failure as an unreachable one, not a defect
        return lost(`cannot connect to ${JSON.stringify(options.url)}: ${(error as Error).message}`)
      }
      socket.once("open", () => {
        socket.removeAllListeners("error")
        resume(Effect.succeed(fromWebSocket(socket)))
      })
      socket.once("unexpected-response", (_request, response) => {
        lost(
          response.statusCode === 401
            ? `${options.url} refused the connection: 401 Unauthorized (wrong or missing token)`
            : `${options.url} refused the WebSocket upgrade: HTTP ${response.statusCode}`
        )
        socket.terminate()
      })
      socket.once("error", (error) => lost(`cannot connect to ${options.url}: ${error.message}`))
      return Effect.sync(() => socket.terminate())
    }))

/**
 * What runs on an exec-server's host: its processes and its files, over one
 * connection.
 *
 * @category models
 * @since 0.1.0
 */
export interface RemoteEnvironment {
  readonly executor: Executor["Service"]
  /**
   * Effect's `FileSystem` over the server's `fs/*` methods: absolute paths are
   * the server host's, relative ones are resolved against the server's working
   * directory; what the protocol cannot do (`rename`, `chmod`, `watch`, a
   * `mode`, …) fails with a `BadArgument`.
   */
  readonly fileSystem: FileSystem.FileSystem
}

/**
 * Builds a remote executor and file system sharing one link over transports
 * opened by `connect`, in the current scope (closing it closes the link).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeEnvironment = (
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: Options = {}
): Effect.Effect<RemoteEnvironment, never, Scope.Scope> =>
  Effect.map(
    RemoteClient.make(connect, {
      clientName: options.clientName ?? "effect-exec",
      connectTimeout: Duration.fromInputUnsafe(options.connectTimeout ?? Defaults.client.connectTimeoutMillis),
      requestTimeoutMillis: Duration.toMillis(
        Duration.fromInputUnsafe(options.requestTimeout ?? Defaults.client.requestTimeoutMillis)
      ),
      maxFileBytes: options.maxFileBytes,
      binaryOutput: options.binaryOutput ?? true
    }),
    ({ executor, fileSystem }) => ({ executor, fileSystem })
  )

/**
 * Builds a remote executor over transports opened by `connect`, in the current
 * scope (closing it closes the link).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: Options = {}
): Effect.Effect<Executor["Service"], never, Scope.Scope> =>
  Effect.map(makeEnvironment(connect, options), (environment) => environment.executor)

/**
 * A remote executor talking to the exec-server at `url` over WebSocket.
 * Nothing connects until the first call.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Environment, Exec, OutputSink, RemoteExecutor } from "effect-exec"
 *
 * const url = "ws://127.0.0.1:4000"
 * const program = Exec.run({ command: ["uname", "-a"] }).pipe(
 *   Effect.provide(Environment.fromExecutor({ _tag: "Remote", url })),
 *   Effect.provide(RemoteExecutor.layer({ url, token: Redacted.make("secret") })),
 *   Effect.provide(OutputSink.layerDiscard)
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: WebSocketOptions): Layer.Layer<Executor> =>
  Layer.effect(Executor, make(connectWebSocket(options), options))

/**
 * A remote executor over a transport of your own (for example an exec-server
 * child process speaking newline-delimited JSON on its stdio).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerTransport = (
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: Options = {}
): Layer.Layer<Executor> => Layer.effect(Executor, make(connect, options))
