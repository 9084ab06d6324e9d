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
import type * as Http from "node:http"
import type * as Net from "node:net"
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
  message: Schema.String,
  /**
   * The option of `listen` at fault, when one is: its message then starts
   * with the option's name (the CLI names its flag instead).
   */
  option: Schema.optionalKey(Schema.Literals(["listen", "token"]))
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
  /**
   * Largest frame accepted (default 96 MiB, `ExecServer.defaults.maxFrameBytes`:
   * room for an `fs/writeFile` of `maxFileBytes` in base64); a larger one closes
   * the connection (1009).
   */
  readonly maxFrameBytes?: number
  /**
   * Answers and notifications queued for a client, before it is dropped
   * (default 128 MiB: above what 64 concurrent reads of a full retention
   * window can queue for a client that does read).
   */
  readonly maxBufferedBytes?: number
  /** A client that takes nothing from its socket for this long is dropped (default 30 s). */
  readonly stallTimeout?: Duration.Input
  /** Connections open at once from one IP address (default 512); more are answered 503 and closed. */
  readonly maxConnectionsPerAddress?: number
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
      return Effect.fail(
        new ListenError({ option: "listen", message: `listen must look like ws://IP:PORT, got ${listen}` })
      )
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1")
    if (url.protocol !== "ws:") {
      return Effect.fail(
        new ListenError({ option: "listen", message: `listen must be a ws:// address, got ${listen}` })
      )
    }
    if (isIP(host) === 0) {
      return Effect.fail(
        new ListenError({
          option: "listen",
          message: `listen needs an IP address, not the host name ${host} (try ws://127.0.0.1:0)`
        })
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

/**
 * The credentials of a `Bearer` `Authorization` header (RFC 6750), read as RFC
 * 9110 § 11.4 says: the scheme is case-insensitive, one or more spaces follow
 * it, and whitespace around the value is no part of it. `undefined` for any
 * other scheme, or credentials with whitespace inside. Reads the header once,
 * without a regular expression.
 *
 * @category parsing
 * @since 0.1.0
 */
export const bearerCredentials = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const value = header.trim()
  const scheme = "bearer"
  if (value.length <= scheme.length || value.slice(0, scheme.length).toLowerCase() !== scheme) return undefined
  let start = scheme.length
  if (!isWhitespace(value.charCodeAt(start))) return undefined
  while (isWhitespace(value.charCodeAt(start))) start++
  for (let i = start; i < value.length; i++) if (isWhitespace(value.charCodeAt(i))) return undefined
  return value.slice(start)
}

const isWhitespace = (code: number) => code === 0x20 || code === 0x09

const digest = (value: string) => createHash("sha256").update(value).digest()

/** Compares the token of a presented `Authorization` header with `token` in constant time. */
const authorized = (header: string | undefined, token: Redacted.Redacted<string>): boolean => {
  const presented = bearerCredentials(header)
  // digests of equal length are compared whether or not a token was presented: the time says nothing
  return timingSafeEqual(digest(presented ?? ""), digest(Redacted.value(token))) && presented !== undefined
}

/** An IP address as one client: an IPv4 address mapped into IPv6 is the IPv4 address. */
const clientAddress = (address: string | undefined): string =>
  address === undefined
    ? "unknown"
    : address.startsWith("::ffff:") && address.includes(".")
    ? address.slice(7)
    : address

const refuse = (socket: NodeJS.WritableStream & { destroy(): void }, status: number, text: string) => {
  socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
  socket.destroy()
}

/**
 * The path of the health endpoint beside the WebSocket: `GET` (or `HEAD`)
 * answers 200 `ok` while the server listens, without a token, and says
 * nothing else (for load balancers and Kubernetes probes).
 *
 * @category constants
 * @since 0.1.0
 */
export const healthPath = "/healthz"

/** A plain HTTP request: the health endpoint, else a pointer to the WebSocket (426). */
const answerHttp = (request: Http.IncomingMessage, response: Http.ServerResponse) => {
  const path = (request.url ?? "").split("?")[0]
  if (path === healthPath && (request.method === "GET" || request.method === "HEAD")) {
    response.writeHead(200, { "Content-Type": "text/plain", "Cache-Control": "no-store" }).end("ok\n")
    return
  }
  response.writeHead(426, { "Content-Type": "text/plain" }).end("exec-server: connect with a WebSocket\n")
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
      option: "token",
      message: `token is required to listen on ${address.host}: without a token anyone who reaches it could run ` +
        `commands`
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
  const http = Http.createServer(answerHttp)
  // connections per address, counted from the TCP accept: one client cannot hold every socket the server has
  const maxPerAddress = options.maxConnectionsPerAddress ?? ExecServer.defaults.maxConnectionsPerAddress
  const connectionsPerAddress = new Map<string, number>()
  http.on("connection", (socket: Net.Socket) => {
    const address = clientAddress(socket.remoteAddress)
    const open = connectionsPerAddress.get(address) ?? 0
    if (open >= maxPerAddress) {
      socket.on("error", () => {})
      return refuse(socket, 503, "Service Unavailable")
    }
    connectionsPerAddress.set(address, open + 1)
    socket.once("close", () => {
      const left = (connectionsPerAddress.get(address) ?? 1) - 1
      if (left === 0) connectionsPerAddress.delete(address)
      else connectionsPerAddress.set(address, left)
    })
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
        fromWebSocket(
          webSocket,
          {
            maxBufferedBytes: options.maxBufferedBytes ?? ExecServer.defaults.maxBufferedBytes,
            stallTimeoutMillis: Duration.toMillis(
              Duration.fromInputUnsafe(options.stallTimeout ?? ExecServer.defaults.stallTimeoutMillis)
            )
          },
          clientAddress(request.socket.remoteAddress)
        )
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
