/**
 * A transport: a bidirectional pipe of JSON-RPC text frames, and the error it
 * fails with once the link is gone.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
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
  /**
   * Sends a text frame (a string, or its UTF-8 bytes); completes once it is
   * handed to the OS (so a slow peer slows the sender).
   */
  readonly send: (frame: string | Uint8Array) => Effect.Effect<void, TransportClosed>
  /**
   * Queues a frame without waiting for the peer to take it (notifications:
   * what is produced must not wait on a slow reader, or it is lost to
   * retention). Fails, and drops the link, once the peer has left more than
   * the transport's budget unread.
   */
  readonly post: (frame: string) => Effect.Effect<void, TransportClosed>
  /**
   * Queues a binary frame as `post` does, at once (no effect to run: the hot
   * path of pushed output); returns why not when the link is gone. `written`
   * runs once the OS took the frame (or it never will), after which `frame`
   * may be reused. Present only where frames can be binary (WebSocket),
   * absent on a text-only transport (stdio).
   */
  readonly postBinary?: ((frame: Uint8Array, written: () => void) => TransportClosed | undefined) | undefined
  readonly listen: (handlers: {
    readonly onFrame: (frame: string) => void
    /**
     * A binary frame; without this handler, or when it returns false (not a
     * frame it knows), the frame's bytes are taken as JSON text.
     */
    readonly onBinaryFrame?: ((frame: Uint8Array) => boolean) | undefined
    /**
     * Where a binary frame's payload is assembled, where the transport can:
     * memory of the listener's, written by the transport and then handed to
     * `onBinaryFrame`, which owns it from then on (a frame it does not claim
     * is read as JSON before the listener is asked for more); a frame the
     * connection's end cut off is given back.
     */
    readonly binaryMemory?: BinaryMemory | undefined
    readonly onClose: (reason: string) => void
  }) => void
  /**
   * Stops reading the peer's frames until `resume`: backpressure, the peer's
   * writes wait in its own buffers and the OS's. Frames already received may
   * still arrive (at most what one read from the OS held).
   */
  readonly pause: () => void
  /** Reads the peer's frames again after `pause`. */
  readonly resume: () => void
  /** The peer's IP address, when the transport has one (per-address limits). */
  readonly remoteAddress?: string | undefined
  readonly close: Effect.Effect<void>
}

/**
 * Memory a transport assembles binary frames in: `reserve` room for one,
 * `release` one that never reached the listener (cut off).
 *
 * @category models
 * @since 0.1.0
 */
export interface BinaryMemory {
  readonly reserve: (length: number) => Buffer
  readonly release: (frame: Uint8Array) => void
}

/**
 * Bounds on what a transport queues for its peer.
 *
 * @category models
 * @since 0.1.0
 */
export interface OutgoingLimits {
  /** Outgoing bytes queued for a peer that does not read, before the link is dropped (default: no limit). */
  readonly maxBufferedBytes?: number | undefined
  /** A frame the peer has not taken within this long drops the link (default: never). */
  readonly stallTimeoutMillis?: number | undefined
}

/**
 * The outgoing half of a transport: `send` and `post` over a `write(frame,
 * done)` that hands a frame to the OS, with the budget and stall rules of
 * `limits`. `buffered` says how many bytes wait for the peer; `drop` ends the
 * link with a reason.
 *
 * @category constructors
 * @since 0.1.0
 */
export const outgoing = (options: {
  readonly limits: OutgoingLimits
  readonly closedReason: () => string | undefined
  readonly buffered: () => number
  readonly write: (frame: string | Uint8Array, done: (error?: Error | null) => void) => void
  readonly drop: (reason: string) => void
}): Pick<Transport, "send" | "post"> & {
  readonly postBytes: (frame: Uint8Array, written: () => void) => TransportClosed | undefined
} => {
  const maxBufferedBytes = options.limits.maxBufferedBytes ?? Infinity
  const stallTimeoutMillis = options.limits.stallTimeoutMillis
  /** Hands `frame` over; `written` runs once the OS took it (or it failed). */
  const write = (
    frame: string | Uint8Array,
    written: (error: TransportClosed | undefined) => void
  ): TransportClosed | undefined => {
    const closed = options.closedReason()
    if (closed !== undefined) return new TransportClosed({ description: closed })
    const buffered = options.buffered()
    if (buffered > maxBufferedBytes) {
      const reason = `the peer left ${buffered} bytes unread (limit ${maxBufferedBytes}): dropped`
      options.drop(reason)
      return new TransportClosed({ description: reason })
    }
    const stalled = stallTimeoutMillis === undefined
      ? undefined
      : setTimeout(
        () => options.drop(`the peer took nothing for ${stallTimeoutMillis} ms: dropped`),
        stallTimeoutMillis
      )
    options.write(frame, (error) => {
      clearTimeout(stalled)
      written(
        error ? new TransportClosed({ description: options.closedReason() ?? error.message }) : undefined
      )
    })
    return undefined
  }
  return {
    send: (frame) =>
      Effect.callback<void, TransportClosed>((resume) => {
        const refused = write(frame, (error) => resume(error === undefined ? Effect.void : Effect.fail(error)))
        if (refused !== undefined) resume(Effect.fail(refused))
      }),
    post: (frame) =>
      Effect.suspend(() => {
        const refused = write(frame, () => {})
        return refused === undefined ? Effect.void : Effect.fail(refused)
      }),
    postBytes: (frame, written) => {
      const refused = write(frame, () => written())
      if (refused !== undefined) written()
      return refused
    }
  }
}
