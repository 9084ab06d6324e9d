/**
 * A WebSocket proxy between a client and an exec-server that records every
 * frame and can break the link the way a network does: cut it without a
 * close frame, refuse reconnections for a while, or leave the server's side
 * open while the client's is gone (so what the server sends then is lost, as
 * bytes in flight are when a route dies), or send later connections to
 * another server (one restarted at the same address). Each client connection
 * is one "link" (1, 2, …) with its own upstream connection.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import WebSocket, { WebSocketServer } from "ws"

/** One frame that crossed the proxy (or, on a held server side, reached it and went no further). */
export interface ProxiedFrame {
  /** Which client connection: 1 for the first, 2 after a reconnect, … */
  readonly link: number
  readonly from: "client" | "server"
  /** The frame as parsed JSON (`{ unparsable: text }` when it is not). */
  readonly message: any
  /** Whether it was passed on (false for what a held server side sent after the cut). */
  readonly delivered: boolean
  /** Whether it was a binary frame. */
  readonly binary: boolean
}

export interface WebSocketProxy {
  /** Where the client connects: `ws://127.0.0.1:PORT`. */
  readonly url: string
  /** Every frame so far, in the order the proxy saw them. */
  readonly frames: ReadonlyArray<ProxiedFrame>
  /** Waits (up to `timeoutMs`, default 30 s) for the first frame matching `predicate`. */
  readonly waitFor: (
    description: string,
    predicate: (frame: ProxiedFrame) => boolean,
    timeoutMs?: number
  ) => Effect.Effect<ProxiedFrame>
  /**
   * Cuts every open link without a close frame. The client's side always goes;
   * with `holdServerSide` the server's side stays open (what the server sends
   * is recorded, not delivered) until `releaseServerSide`.
   */
  readonly cut: (options?: { readonly holdServerSide?: boolean }) => Effect.Effect<void>
  /** Ends the server sides kept by `cut({ holdServerSide: true })`, without a close frame. */
  readonly releaseServerSide: Effect.Effect<void>
  /** Where later connections go: another exec-server behind the same address (the links open now stay). */
  readonly setTarget: (target: string) => Effect.Effect<void>
  /** While not accepting, a connection attempt is refused with HTTP 503. */
  readonly setAccepting: (accepting: boolean) => Effect.Effect<void>
  /**
   * Holds back the next server frame matching `held` (recorded as it arrives)
   * until one matching `until` was passed on, then passes it on: the order of
   * a server whose notifications overtake its answers (Codex's sends them
   * from separate tasks).
   */
  readonly holdBack: (
    held: (frame: ProxiedFrame) => boolean,
    until: (frame: ProxiedFrame) => boolean
  ) => Effect.Effect<void>
}

interface HeldBack {
  readonly held: (frame: ProxiedFrame) => boolean
  readonly until: (frame: ProxiedFrame) => boolean
  data?: [WebSocket.RawData, boolean]
}

interface Link {
  readonly id: number
  readonly client: WebSocket
  readonly server: WebSocket
  held: boolean
}

const parse = (data: WebSocket.RawData): any => {
  const text = Buffer.isBuffer(data) ? data.toString("utf8") : Buffer.from(data as ArrayBuffer).toString("utf8")
  try {
    return JSON.parse(text)
  } catch {
    return { unparsable: text }
  }
}

const describeFrames = (frames: ReadonlyArray<ProxiedFrame>) =>
  frames.slice(-15).map((f) => `  [${f.link} ${f.from}] ${JSON.stringify(f.message).slice(0, 300)}`).join("\n")

/** A proxy on 127.0.0.1 to the exec-server at `initialTarget`, for the scope. */
export const start = (initialTarget: string): Effect.Effect<WebSocketProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    let target = initialTarget
    const frames: Array<ProxiedFrame> = []
    const listeners = new Set<() => void>()
    const links = new Set<Link>()
    let accepting = true
    let linkCount = 0
    const holdsBack = new Set<HeldBack>()

    const record = (frame: ProxiedFrame) => {
      frames.push(frame)
      for (const listener of [...listeners]) listener()
    }

    const connect = (client: WebSocket, request: IncomingMessage) => {
      const authorization = request.headers.authorization
      const server = new WebSocket(target, {
        maxPayload: 1 << 30,
        ...(authorization === undefined ? {} : { headers: { authorization } })
      })
      const link: Link = { id: ++linkCount, client, server, held: false }
      links.add(link)
      const waiting: Array<[WebSocket.RawData, boolean]> = []
      server.on("open", () => {
        for (const [data, isBinary] of waiting.splice(0)) server.send(data, { binary: isBinary })
      })
      client.on("message", (data, isBinary) => {
        record({ link: link.id, from: "client", message: parse(data), delivered: true, binary: isBinary })
        if (server.readyState === WebSocket.OPEN) server.send(data, { binary: isBinary })
        else waiting.push([data, isBinary])
      })
      server.on("message", (data, isBinary) => {
        const deliver = !link.held && client.readyState === WebSocket.OPEN
        const frame: ProxiedFrame = {
          link: link.id,
          from: "server",
          message: parse(data),
          delivered: deliver,
          binary: isBinary
        }
        record(frame)
        if (!deliver) return
        const holding = [...holdsBack].find((rule) => rule.data === undefined && rule.held(frame))
        if (holding !== undefined) {
          holding.data = [data, isBinary]
          return
        }
        client.send(data, { binary: isBinary })
        for (const rule of holdsBack) {
          if (rule.data === undefined || !rule.until(frame)) continue
          holdsBack.delete(rule)
          client.send(rule.data[0], { binary: rule.data[1] })
        }
      })
      client.on("close", () => {
        if (!link.held) server.terminate()
      })
      server.on("close", () => {
        links.delete(link)
        client.terminate()
      })
      client.on("error", () => {})
      server.on("error", () => client.terminate())
    }

    const { url } = yield* Effect.acquireRelease(
      Effect.callback<{ readonly url: string; readonly close: () => void }>((resume) => {
        const wss = new WebSocketServer({
          host: "127.0.0.1",
          port: 0,
          maxPayload: 1 << 30,
          verifyClient: (_info, callback) => (accepting ? callback(true) : callback(false, 503, "refused by the test"))
        })
        wss.on("connection", connect)
        wss.on("listening", () => {
          const { port } = wss.address() as AddressInfo
          resume(Effect.succeed({
            url: `ws://127.0.0.1:${port}`,
            close: () => {
              for (const link of links) {
                link.client.terminate()
                link.server.terminate()
              }
              wss.close()
            }
          }))
        })
      }),
      ({ close }) => Effect.sync(close)
    )

    const waitFor: WebSocketProxy["waitFor"] = (description, predicate, timeoutMs = 30_000) =>
      Effect.callback<ProxiedFrame>((resume) => {
        const check = () => {
          const found = frames.find(predicate)
          if (found === undefined) return
          listeners.delete(check)
          clearTimeout(timer)
          resume(Effect.succeed(found))
        }
        const timer = setTimeout(() => {
          listeners.delete(check)
          resume(Effect.die(
            new Error(`no ${description} within ${timeoutMs} ms; the last frames:\n${describeFrames(frames)}`)
          ))
        }, timeoutMs)
        listeners.add(check)
        check()
        return Effect.sync(() => {
          listeners.delete(check)
          clearTimeout(timer)
        })
      })

    return {
      url,
      frames,
      waitFor,
      cut: (options = {}) =>
        Effect.sync(() => {
          for (const link of links) {
            if (options.holdServerSide) link.held = true
            link.client.terminate()
            if (!link.held) link.server.terminate()
          }
        }),
      releaseServerSide: Effect.sync(() => {
        for (const link of links) if (link.held) link.server.terminate()
      }),
      setTarget: (next) =>
        Effect.sync(() => {
          target = next
        }),
      setAccepting: (value) =>
        Effect.sync(() => {
          accepting = value
        }),
      holdBack: (held, until) =>
        Effect.sync(() => {
          holdsBack.add({ held, until })
        })
    }
  })
