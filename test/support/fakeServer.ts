/**
 * A fake exec-server for the client's tests: a WebSocket server on 127.0.0.1
 * that does what each test scripts, well or badly (silence, garbage, floods,
 * impossible numbers, replays, colliding ids, a close it never answers). No
 * library code from `src/` runs on this side of the wire.
 *
 * Waits for what the client sent are woken by the socket, so they work under
 * `TestClock`; each gives up after 10 s of real time, so a broken client fails
 * a test rather than hanging it.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import { type WebSocket, WebSocketServer } from "ws"
import { waitUntil } from "./waitUntil.ts"

/** A request or notification the client sent. */
export interface Incoming {
  readonly id?: string | number
  readonly method: string
  readonly params: any
  /** The connection it came on: 0 the first, 1 after a reconnection, … */
  readonly connection: number
}

/** One client connection, as a script drives it. */
export interface FakeConnection {
  readonly index: number
  /** Sends a frame as is (garbage included). */
  readonly sendRaw: (frame: string) => void
  /** Sends bytes as a binary frame, as they are. */
  readonly sendBinary: (frame: Uint8Array) => void
  readonly send: (message: object) => void
  readonly answer: (id: string | number | undefined, result: unknown) => void
  readonly fail: (id: string | number | undefined, code: number, message: string, data?: unknown) => void
  readonly notify: (method: string, params: unknown) => void
  /** Closes the connection with a close frame saying `code` and `reason`. */
  readonly close: (code: number, reason: string) => void
  /** Ends the connection at once, without a close handshake (a network cut). */
  readonly cut: () => void
}

/** What the server does with each message after the handshake. */
export type Script = (message: Incoming, connection: FakeConnection) => void

export interface FakeServerOptions {
  /** Our extensions the server names in `initialize` (default none, as Codex). */
  readonly capabilities?: ReadonlyArray<string>
  /** Answers `initialize` instead of the default (a session id, the capabilities, `/tmp` as cwd). */
  readonly initialize?: Script
}

export interface FakeServer {
  readonly url: string
  readonly port: number
  /** Everything the client sent, in order. */
  readonly received: ReadonlyArray<Incoming>
  /** What the client sent of `method`. */
  readonly calls: (method: string) => ReadonlyArray<Incoming>
  /** Connections accepted so far. */
  readonly connections: () => number
  /** Waits until the client sent `method` `count` times; returns the last of them. */
  readonly whenReceived: (method: string, count?: number) => Effect.Effect<Incoming>
}

/** Bytes as the protocol carries them. */
export const base64 = (text: string | Uint8Array): string =>
  Buffer.from(typeof text === "string" ? text : text).toString("base64")

/** A read answer with these chunks (text, each one seq after the last, from `firstSeq`). */
export const readAnswer = (
  firstSeq: number,
  texts: ReadonlyArray<string>,
  end: { readonly exitCode?: number; readonly closed?: boolean; readonly nextSeq?: number } = {}
) => {
  const chunks = texts.map((text, i) => ({ seq: firstSeq + i, stream: "stdout", chunk: base64(text) }))
  const exited = end.exitCode !== undefined
  return {
    chunks,
    nextSeq: end.nextSeq ?? firstSeq + texts.length,
    exited,
    exitCode: end.exitCode ?? null,
    closed: end.closed ?? exited,
    failure: null
  }
}

/** Answers `process/start` as a server that started the process would. */
export const startAnswer = (message: Incoming) => ({ processId: message.params.processId, sandboxType: "none" })

/** A fake exec-server for the current scope; `script` answers everything after the handshake. */
export const fakeServer = (
  script: Script,
  options: FakeServerOptions = {}
): Effect.Effect<FakeServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: FakeServer; readonly close: () => void }>((resume) => {
      const received: Array<Incoming> = []
      const waiters = new Set<() => void>()
      const sockets = new Set<WebSocket>()
      let connections = 0
      const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 256 * 1024 * 1024 })
      wss.on("connection", (socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
        const connection = makeConnection(socket, connections++)
        socket.on("message", (data) => {
          let message: any
          try {
            message = JSON.parse(data.toString())
          } catch {
            return
          }
          const incoming: Incoming = { ...message, connection: connection.index }
          received.push(incoming)
          for (const waiter of [...waiters]) waiter()
          if (incoming.method === "initialized") return
          if (incoming.method === "initialize" && options.initialize === undefined) {
            connection.answer(incoming.id, {
              sessionId: "fake-session",
              environmentInfo: { cwd: "/tmp" },
              ...(options.capabilities === undefined ? {} : { capabilities: options.capabilities })
            })
            return
          }
          ;(incoming.method === "initialize" ? options.initialize! : script)(incoming, connection)
        })
      })
      wss.on("listening", () => {
        const port = (wss.address() as Net.AddressInfo).port
        const calls = (method: string) => received.filter((message) => message.method === method)
        resume(Effect.succeed({
          server: {
            url: `ws://127.0.0.1:${port}`,
            port,
            received,
            calls,
            connections: () => connections,
            whenReceived: (method, count = 1) =>
              waitUntil(`${count} × ${method}`, () => calls(method)[count - 1], (wake) => {
                waiters.add(wake)
                return () => void waiters.delete(wake)
              })
          },
          close: () => {
            for (const socket of sockets) socket.terminate()
            wss.close()
          }
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ server }) => server))

const makeConnection = (socket: WebSocket, index: number): FakeConnection => {
  const sendRaw = (frame: string) => {
    if (socket.readyState === socket.OPEN) socket.send(frame)
  }
  const send = (message: object) => sendRaw(JSON.stringify(message))
  return {
    index,
    sendRaw,
    sendBinary: (frame) => {
      if (socket.readyState === socket.OPEN) socket.send(frame, { binary: true })
    },
    send,
    answer: (id, result) => send({ id, result }),
    fail: (id, code, message, data) =>
      send({ id, error: data === undefined ? { code, message } : { code, message, data } }),
    notify: (method, params) => send({ method, params }),
    close: (code, reason) => socket.close(code, reason),
    cut: () => socket.terminate()
  }
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort` that can turn deaf: from
 * `deafen()` on it still reads what the client sends but passes nothing on,
 * so the client's WebSocket close is never answered. `clientGone` completes
 * once the client's side of the TCP connection ended.
 */
export const deafProxy = (targetPort: number) =>
  Effect.acquireRelease(
    Effect.callback<{
      readonly port: number
      readonly deafen: () => void
      readonly clientGone: Effect.Effect<void>
      readonly close: () => void
    }>((resume) => {
      let deaf = false
      let gone = false
      const goneWaiters = new Set<() => void>()
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((client) => {
        const upstream = Net.connect(targetPort, "127.0.0.1")
        for (const socket of [client, upstream]) {
          sockets.add(socket)
          socket.on("close", () => sockets.delete(socket))
          socket.on("error", () => {})
        }
        client.on("data", (data) => {
          if (!deaf) upstream.write(data)
        })
        upstream.on("data", (data) => client.write(data))
        client.on("close", () => {
          gone = true
          for (const waiter of [...goneWaiters]) waiter()
        })
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({
          port: (server.address() as Net.AddressInfo).port,
          deafen: () => {
            deaf = true
          },
          clientGone: waitUntil("the client to drop its connection", () => gone ? true : undefined, (wake) => {
            goneWaiters.add(wake)
            return () => void goneWaiters.delete(wake)
          }),
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        })))
    }),
    (proxy) => Effect.sync(proxy.close)
  )
