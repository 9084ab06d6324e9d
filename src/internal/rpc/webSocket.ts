/**
 * A transport over a `ws` WebSocket, with a bound on what a peer that does not
 * read may leave queued, and on how long it may take nothing.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type WebSocket from "ws"
import { outgoing, type OutgoingLimits, type Transport } from "./transport.ts"

/**
 * A transport over an open `ws` WebSocket. Binary frames holding JSON are
 * accepted as text.
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
  return {
    remoteAddress,
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    ...outgoing({
      limits,
      closedReason: () => closedReason ?? (socket.readyState === socket.OPEN ? undefined : "the WebSocket is not open"),
      buffered: () => socket.bufferedAmount,
      // bytes are the UTF-8 of a text frame: sent as text, without a copy
      write: (frame, done) => socket.send(frame, { binary: false }, done),
      drop: (reason) => {
        closedReason ??= reason
        socket.terminate()
      }
    }),
    listen: ({ onClose, onFrame }) => {
      socket.on("message", (data) => {
        // text and binary frames alike hold JSON; decode the bytes once, without copying them first
        onFrame(
          Buffer.isBuffer(data)
            ? data.toString("utf8")
            : Array.isArray(data)
            ? Buffer.concat(data).toString("utf8")
            : Buffer.from(data).toString("utf8")
        )
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
