/**
 * The exec-server's WebSocket endpoint: binds `ws://IP:PORT` (loopback by
 * default), checks the bearer token and the browser `Origin` on the upgrade,
 * and hands each connection to `ExecServer.serveConnection`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHash, timingSafeEqual } from "node:crypto"
import { isIP } from "node:net"
import * as ExecServer from "./ExecServer.ts"
import type { Executor } from "./Executor.ts"
import { fromWebSocket } from "./JsonRpc.ts"

/**
 * The server could not listen as asked.
 *
 * @category errors
 * @since 0.1.0
 */
export class ListenError extends Schema.TaggedError<ListenError>()("ListenError", {
  message: Schema.String
}) {}

/**
 * Where and how to listen.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options extends ExecServer.Options {
  /** `ws://IP:PORT`; default `ws://127.0.0.1:0` (port 0 picks a free one). Host names are refused. */
  readonly listen?: string
  /** Required as `Authorization: Bearer …` on the upgrade when set; required to listen off loopback. */
  readonly token?: Redacted.Redacted<string> | undefined
  /** Browser origins allowed to connect; any other `Origin` header is refused with 403. */
  readonly allowedOrigins?: ReadonlyArray<string>
  /** Largest frame accepted (default 16 MiB); a larger one closes the connection (1009). */
  readonly maxFrameBytes?: number
  /**
   * Answers and notifications queued for a client, before it is dropped
   * (default 128 MiB: above what 64 concurrent reads of a full retention
   * window can queue for a client that does read).
   */
  readonly maxBufferedBytes?: number
  /** A client that takes nothing from its socket for this long is dropped (default 30 s). */
  readonly stallTimeout?: Duration.Input
}

/**
 * The parsed `--listen` address.
 *
 * @category models
 * @since 0.1.0
 */
export interface ListenAddress {
  readonly host: string
  readonly port: number
}

/**
 * Parses `ws://IP:PORT`. Host names are refused: say which address to bind.
 *
 * @category parsing
 * @since 0.1.0
 */
export const parseListen = (listen: string): Effect.Effect<ListenAddress, ListenError> =>
  Effect.suspend(() => {
    let url: URL
    try {
      url = new URL(listen)
    } catch {
      return Effect.fail(new ListenError({ message: `--listen must look like ws://IP:PORT, got ${listen}` }))
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1")
    if (url.protocol !== "ws:") {
      return Effect.fail(new ListenError({ message: `--listen must be a ws:// address, got ${listen}` }))
    }
    if (isIP(host) === 0) {
      return Effect.fail(
        new ListenError({ message: `--listen needs an IP address, not the host name ${host} (try ws://127.0.0.1:0)` })
      )
    }
    return Effect.succeed({ host, port: url.port === "" ? 0 : Number(url.port) })
  })

/**
 * Whether an IP address is on this machine only.
 *
 * @category utils
 * @since 0.1.0
 */
export const isLoopback = (host: string): boolean =>
  host === "::1" || host === "::ffff:127.0.0.1" || /^127\.\d+\.\d+\.\d+$/.test(host)

const digest = (value: string) => createHash("sha256").update(value).digest()

/** Compares a presented `Authorization` header with the token in constant time. */
const authorized = (header: string | undefined, token: Redacted.Redacted<string>): boolean => {
  const presented = header?.startsWith("Bearer ") ? header.slice("Bearer ".length) : ""
  return timingSafeEqual(digest(presented), digest(Redacted.value(token)))
}

const refuse = (socket: NodeJS.WritableStream & { destroy(): void }, status: number, text: string) => {
  socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
  socket.destroy()
}

/**
 * Listens for exec-server clients until the scope closes; returns the bound
 * `ws://IP:PORT`. Closing the scope closes every connection and terminates
 * every session's processes.
 *
 * @category serving
 * @since 0.1.0
 */
export const listen = Effect.fnUntraced(function*(options: Options = {}) {
  const address = yield* parseListen(options.listen ?? "ws://127.0.0.1:0")
  const token = options.token
  if (!isLoopback(address.host) && token === undefined) {
    return yield* new ListenError({
      message: `refusing to listen on ${address.host} without a token: anyone who reaches it could run commands ` +
        `(set --token, --token-file or EXEC_SERVER_TOKEN)`
    })
  }
  const registry = yield* ExecServer.makeRegistry(options)
  const run = yield* FiberSet.makeRuntime<Executor>()
  // ws and Node's http load when a server listens, not with this module
  const [{ WebSocketServer }, Http] = yield* Effect.promise(() => Promise.all([import("ws"), import("node:http")]))
  const sockets = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxFrameBytes ?? ExecServer.defaults.maxFrameBytes
  })
  const http = Http.createServer((_request, response) => {
    response.writeHead(426, { "Content-Type": "text/plain" }).end("exec-server: connect with a WebSocket\n")
  })
  http.on("upgrade", (request, socket, head) => {
    const origin = request.headers.origin
    if (origin !== undefined && !(options.allowedOrigins ?? []).includes(origin)) {
      return refuse(socket, 403, "Forbidden")
    }
    if (token !== undefined && !authorized(request.headers.authorization, token)) {
      return refuse(socket, 401, "Unauthorized")
    }
    sockets.handleUpgrade(request, socket, head, (webSocket) => {
      run(ExecServer.serveConnection(
        registry,
        fromWebSocket(webSocket, {
          maxBufferedBytes: options.maxBufferedBytes ?? ExecServer.defaults.maxBufferedBytes,
          stallTimeoutMillis: Duration.toMillis(
            Duration.fromInputUnsafe(options.stallTimeout ?? ExecServer.defaults.stallTimeoutMillis)
          )
        })
      ))
    })
  })
  yield* Effect.acquireRelease(
    Effect.callback<void, ListenError>((resume) => {
      http.once(
        "error",
        (error) => resume(Effect.fail(new ListenError({ message: `cannot listen: ${error.message}` })))
      )
      http.listen(address.port, address.host, () => resume(Effect.void))
    }),
    () =>
      Effect.callback<void>((resume) => {
        for (const client of sockets.clients) client.terminate()
        sockets.close()
        http.close(() => resume(Effect.void))
        http.closeAllConnections()
      })
  )
  const bound = http.address() as { address: string; port: number }
  const host = bound.address.includes(":") ? `[${bound.address}]` : bound.address
  return { url: `ws://${host}:${bound.port}`, port: bound.port }
})
