/**
 * A transport over a `ws` WebSocket, with a bound on what a peer that does not
 * read may leave queued, and on how long it may take nothing.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import WebSocket from "ws"
import { type Transport, TransportClosed } from "./transport.ts"

/**
 * A transport over an open `ws` WebSocket. Binary frames holding JSON are
 * accepted as text.
 *
 * @category transports
 * @since 0.1.0
 */
export const fromWebSocket = (
  socket: WebSocket,
  options: {
    /** Outgoing bytes queued for a peer that does not read, before the link is dropped (default: no limit). */
    readonly maxBufferedBytes?: number
    /** A frame the peer has not taken within this long drops the link (default: never). */
    readonly stallTimeoutMillis?: number
  } = {}
): Transport => {
  let closedReason: string | undefined
  const maxBufferedBytes = options.maxBufferedBytes ?? Infinity
  const stallTimeoutMillis = options.stallTimeoutMillis
  return {
    send: (frame) =>
      Effect.callback<void, TransportClosed>((resume) => {
        if (closedReason !== undefined || socket.readyState !== WebSocket.OPEN) {
          return resume(Effect.fail(new TransportClosed({ description: closedReason ?? "the WebSocket is not open" })))
        }
        if (socket.bufferedAmount > maxBufferedBytes) {
          closedReason = `the peer left ${socket.bufferedAmount} bytes unread (limit ${maxBufferedBytes}): dropped`
          socket.terminate()
          return resume(Effect.fail(new TransportClosed({ description: closedReason })))
        }
        const stalled = stallTimeoutMillis === undefined ? undefined : setTimeout(() => {
          closedReason ??= `the peer took nothing for ${stallTimeoutMillis} ms: dropped`
          socket.terminate()
        }, stallTimeoutMillis)
        socket.send(frame, (error) => {
          clearTimeout(stalled)
          resume(error ? Effect.fail(new TransportClosed({ description: closedReason ?? error.message })) : Effect.void)
        })
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
