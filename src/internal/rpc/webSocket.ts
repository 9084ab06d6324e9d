/**
 * A transport over a WebSocket (a `ws` one, or our own client's), with a bound
 * on what a peer that does not read may leave queued, and on how long it may
 * take nothing.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type WebSocket from "ws"
import { outgoing, type OutgoingLimits, type Transport } from "./transport.ts"
import type { Connection } from "./webSocketClient.ts"

/**
 * A transport over an open `ws` WebSocket. Binary frames go to
 * `onBinaryFrame` when it claims them; the others hold JSON, as text frames do.
 *
 * @category transports
 * @since 0.1.0
 */
export const fromWebSocket = (
  socket: WebSocket,
  limits: OutgoingLimits = {},
  remoteAddress?: string | undefined
): Transport => {
  let closedReason: string | undefined
  const link = {
    limits,
    closedReason: () => closedReason ?? (socket.readyState === socket.OPEN ? undefined : "the WebSocket is not open"),
    buffered: () => socket.bufferedAmount,
    drop: (reason: string) => {
      closedReason ??= reason
      socket.terminate()
    }
  }
  // bytes are the UTF-8 of a text frame: sent as text, without a copy
  const text = outgoing({ ...link, write: (frame, done) => socket.send(frame, { binary: false }, done) })
  // a binary frame's bytes are sent as they are: the caller keeps them until `written`
  const binary = outgoing({ ...link, write: (frame, done) => socket.send(frame, { binary: true }, done) })
  return {
    remoteAddress,
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    send: text.send,
    post: text.post,
    postBinary: binary.postBytes,
    listen: ({ onBinaryFrame, onClose, onFrame }) => {
      socket.on("message", (data, isBinary) => {
        const bytes = Buffer.isBuffer(data)
          ? data
          : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data)
        if (isBinary && onBinaryFrame?.(bytes) === true) return
        // text frames, and binary frames nobody claimed, hold JSON: decode the bytes once, without copying them first
        onFrame(bytes.toString("utf8"))
      })
      socket.on("close", (code, reason) => {
        closedReason ??= `the WebSocket closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ""})`
        onClose(closedReason)
      })
      socket.on("error", (error) => {
        closedReason ??= error.message
      })
    },
    close: Effect.sync(() => {
      closedReason ??= "closed by this side"
      socket.close()
    })
  }
}

/**
 * A transport over a connection of our own client (`webSocketClient.ts`):
 * what `fromWebSocket` is for a `ws` socket. Binary frames go to
 * `onBinaryFrame` when it claims them; the others hold JSON.
 */
export const fromConnection = (connection: Connection): Transport => {
  const link = {
    limits: {},
    closedReason: connection.closedReason,
    buffered: connection.buffered,
    drop: connection.terminate
  }
  const text = outgoing({ ...link, write: connection.sendText })
  // only `postBytes` writes through it: its frames are bytes
  const binary = outgoing({ ...link, write: (frame, done) => connection.sendBinary(frame as Uint8Array, done) })
  return {
    pause: connection.pause,
    resume: connection.resume,
    send: text.send,
    post: text.post,
    postBinary: binary.postBytes,
    listen: ({ binaryMemory, onBinaryFrame, onClose, onFrame }) =>
      connection.listen({
        binaryMemory,
        onText: onFrame,
        onBinary: (bytes) => {
          if (onBinaryFrame?.(bytes) === true) return
          onFrame(bytes.toString("utf8"))
        },
        onClose
      }),
    close: Effect.sync(connection.close)
  }
}
