/**
 * A JSON-RPC client over one transport: ids, pending replies, notifications
 * handed on; once the link is gone, pending and later requests fail at once.
 * Only a response (a `result` or an `error`, no `method`) answers a request:
 * a request from the peer that happens to carry a pending id is not taken
 * for its answer.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { encode, parseFrame, type RequestId } from "./message.ts"
import { type BinaryMemory, type Transport, TransportClosed } from "./transport.ts"

/**
 * The peer answered a request with a JSON-RPC error.
 *
 * @category errors
 * @since 0.1.0
 */
export class RpcError extends Schema.TaggedError<RpcError>()("RpcError", {
  code: Schema.Int,
  message: Schema.String,
  data: Schema.optionalKey(Schema.Unknown)
}) {}

/**
 * A JSON-RPC client over one transport.
 *
 * @category models
 * @since 0.1.0
 */
export interface Client {
  readonly request: (method: string, params: unknown) => Effect.Effect<unknown, RpcError | TransportClosed>
  /** Queues a notification behind what was sent before, without waiting for the peer to take it. */
  readonly notify: (method: string, params: unknown) => Effect.Effect<void, TransportClosed>
  /** Completes with the reason once the link is gone. */
  readonly closed: Deferred.Deferred<string>
  readonly close: Effect.Effect<void>
}

/**
 * Drives `transport` as a client: ids, pending replies, notifications to
 * `onNotification`, binary frames to `onBinaryFrame` (those it does not claim
 * are read as JSON), assembled in `binaryMemory` where the transport can. Once
 * the link is gone, pending and later requests fail with `TransportClosed` at
 * once.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeClient = (
  transport: Transport,
  onNotification: (method: string, params: unknown) => void,
  onBinaryFrame?: (frame: Uint8Array) => boolean,
  binaryMemory?: BinaryMemory
): Client => {
  const pending = new Map<RequestId, Deferred.Deferred<unknown, RpcError | TransportClosed>>()
  const closed = Deferred.makeUnsafe<string>()
  let nextId = 1
  let closedReason: string | undefined
  transport.listen({
    onBinaryFrame,
    binaryMemory,
    onFrame: (frame) => {
      const parsed = parseFrame(frame)
      if (!parsed.ok) return
      const message = parsed.message
      if (message.method !== undefined) {
        // A request from the peer carries an id too, maybe one of ours: it is
        // never the answer to our request. This client serves no methods, so
        // such a request is ignored (as an unparsable frame is).
        if (message.id === undefined) onNotification(message.method, message.params)
        return
      }
      // parseFrame let it through as a response: an id, and a result or an error
      if (message.id === undefined) return
      const deferred = pending.get(message.id)
      if (deferred === undefined) return
      pending.delete(message.id)
      if (message.error !== undefined) {
        Deferred.doneUnsafe(deferred, Exit.fail(new RpcError(message.error)))
      } else {
        Deferred.doneUnsafe(deferred, Exit.succeed(message.result))
      }
    },
    onClose: (reason) => {
      if (closedReason !== undefined) return
      closedReason = reason
      for (const deferred of pending.values()) {
        Deferred.doneUnsafe(deferred, Exit.fail(new TransportClosed({ description: reason })))
      }
      pending.clear()
      Deferred.doneUnsafe(closed, Exit.succeed(reason))
    }
  })
  return {
    request: (method, params) =>
      Effect.suspend(() => {
        if (closedReason !== undefined) return Effect.fail(new TransportClosed({ description: closedReason }))
        const id = nextId++
        const deferred = Deferred.makeUnsafe<unknown, RpcError | TransportClosed>()
        pending.set(id, deferred)
        return transport.send(encode({ id, method, params })).pipe(
          Effect.andThen(Deferred.await(deferred)),
          Effect.ensuring(Effect.sync(() => pending.delete(id)))
        )
      }),
    // queued behind what went before, not awaited: a notification has no answer to wait for
    notify: (method, params) =>
      Effect.suspend(() =>
        closedReason !== undefined
          ? Effect.fail(new TransportClosed({ description: closedReason }))
          : transport.post(encode({ method, params }))
      ),
    closed,
    close: transport.close
  }
}
