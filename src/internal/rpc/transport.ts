/**
 * A transport: a bidirectional pipe of JSON-RPC text frames, and the error it
 * fails with once the link is gone.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/**
 * The link closed or failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class TransportClosed extends Schema.TaggedError<TransportClosed>()("TransportClosed", {
  description: Schema.String
}) {
  override get message(): string {
    return this.description
  }
}

/**
 * A bidirectional pipe of text frames. `onFrame` and `onClose` are set once by
 * whoever drives the link.
 *
 * @category models
 * @since 0.1.0
 */
export interface Transport {
  /** Sends a frame; completes once it is handed to the OS (so a slow peer slows the sender). */
  readonly send: (frame: string) => Effect.Effect<void, TransportClosed>
  readonly listen: (handlers: {
    readonly onFrame: (frame: string) => void
    readonly onClose: (reason: string) => void
  }) => void
  readonly close: Effect.Effect<void>
}
