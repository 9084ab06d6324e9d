/**
 * JSON-RPC 2.0 as the Codex exec-server speaks it: one JSON message per frame,
 * with or without the `"jsonrpc"` member; error codes; the frame transports
 * (WebSocket, newline-delimited JSON on a pair of streams); and a client that
 * matches replies to requests and hands notifications on.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import WebSocket from "ws"

// =============================================================================
// Messages
// =============================================================================

/**
 * The error codes the exec-server uses.
 *
 * @category constants
 * @since 0.1.0
 */
export const ErrorCode = {
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  sessionAlreadyAttached: -32010,
  /** Ours (implementation-defined range): a limit of the server was reached; retry later. */
  limitExceeded: -32000
} as const

/**
 * The envelope of any message: request, notification, response or error.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Envelope = Schema.Struct({
  jsonrpc: Schema.optionalKey(Schema.Literal("2.0")),
  id: Schema.optionalKey(Schema.Union([Schema.String, Schema.Int])),
  method: Schema.optionalKey(Schema.String),
  params: Schema.optionalKey(Schema.Unknown),
  result: Schema.optionalKey(Schema.Unknown),
  error: Schema.optionalKey(Schema.Struct({
    code: Schema.Int,
    message: Schema.String,
    data: Schema.optionalKey(Schema.Unknown)
  }))
})

/**
 * @category models
 * @since 0.1.0
 */
export type Envelope = typeof Envelope.Type

/**
 * @category models
 * @since 0.1.0
 */
export type RequestId = string | number

const decodeEnvelope = Schema.decodeUnknownExit(Envelope)

/**
 * Parses one frame. `Left`-like failure carries a message fit for the `-32600`
 * answer to an unparsable frame.
 *
 * @category parsing
 * @since 0.1.0
 */
export const parseFrame = (frame: string): { readonly ok: true; readonly message: Envelope } | {
  readonly ok: false
  readonly error: string
} => {
  let json: unknown
  try {
    json = JSON.parse(frame)
  } catch (error) {
    return { ok: false, error: `failed to parse JSON-RPC message: ${(error as Error).message}` }
  }
  const decoded = decodeEnvelope(json)
  if (Exit.isFailure(decoded)) {
    return { ok: false, error: "failed to parse JSON-RPC message: not a JSON-RPC 2.0 object (id must be a string or an integer)" }
  }
  const message = decoded.value
  const isRequestOrNotification = message.method !== undefined
  const isResponse = message.method === undefined && message.id !== undefined &&
    (message.result !== undefined) !== (message.error !== undefined)
  return isRequestOrNotification || isResponse
    ? { ok: true, message }
    : { ok: false, error: "failed to parse JSON-RPC message: expected a request, a notification or a response" }
}

/**
 * Encodes a message. Like Codex, no `"jsonrpc"` member: Codex peers accept
 * messages without it, and so do we.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encode = (message: Envelope): string => JSON.stringify(message)

// =============================================================================
// Transports
// =============================================================================

/**
 * The link closed or failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class TransportClosed extends Schema.TaggedError<TransportClosed>()("TransportClosed", {
  reason: Schema.String
}) {}

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
          return resume(Effect.fail(new TransportClosed({ reason: closedReason ?? "the WebSocket is not open" })))
        }
        if (socket.bufferedAmount > maxBufferedBytes) {
          closedReason = `the peer left ${socket.bufferedAmount} bytes unread (limit ${maxBufferedBytes}): dropped`
          socket.terminate()
          return resume(Effect.fail(new TransportClosed({ reason: closedReason })))
        }
        const stalled = stallTimeoutMillis === undefined ? undefined : setTimeout(() => {
          closedReason ??= `the peer took nothing for ${stallTimeoutMillis} ms: dropped`
          socket.terminate()
        }, stallTimeoutMillis)
        socket.send(frame, (error) => {
          clearTimeout(stalled)
          resume(error ? Effect.fail(new TransportClosed({ reason: closedReason ?? error.message })) : Effect.void)
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

/**
 * A transport of newline-delimited JSON over a pair of streams (a child's
 * stdio, or this process's).
 *
 * @category transports
 * @since 0.1.0
 */
export const fromStreams = (input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Transport => {
  let closedReason: string | undefined
  return {
    send: (frame) =>
      Effect.callback<void, TransportClosed>((resume) => {
        if (closedReason !== undefined) return resume(Effect.fail(new TransportClosed({ reason: closedReason })))
        output.write(frame + "\n", (error) =>
          resume(error ? Effect.fail(new TransportClosed({ reason: error.message })) : Effect.void))
      }),
    listen: ({ onClose, onFrame }) => {
      let pending = ""
      input.setEncoding?.("utf8")
      input.on("data", (data: string) => {
        pending += data
        let newline = pending.indexOf("\n")
        while (newline !== -1) {
          const line = pending.slice(0, newline).trim()
          pending = pending.slice(newline + 1)
          if (line.length > 0) onFrame(line)
          newline = pending.indexOf("\n")
        }
      })
      const end = () => {
        closedReason ??= "the stream ended"
        onClose(closedReason)
      }
      input.on("end", end)
      input.on("close", end)
      output.on?.("error", () => {
        closedReason ??= "the output stream failed"
      })
    },
    close: Effect.sync(() => {
      closedReason ??= "closed by this side"
      output.end?.()
    })
  }
}

// =============================================================================
// Client
// =============================================================================

/**
 * The peer answered a request with a JSON-RPC error.
 *
 * @category errors
 * @since 0.1.0
 */
export class RpcError extends Schema.TaggedError<RpcError>()("RpcError", {
  code: Schema.Int,
  message: Schema.String
}) {}

/**
 * A JSON-RPC client over one transport.
 *
 * @category models
 * @since 0.1.0
 */
export interface Client {
  readonly request: (method: string, params: unknown) => Effect.Effect<unknown, RpcError | TransportClosed>
  readonly notify: (method: string, params: unknown) => Effect.Effect<void, TransportClosed>
  /** Completes with the reason once the link is gone. */
  readonly closed: Deferred.Deferred<string>
  readonly close: Effect.Effect<void>
}

/**
 * Drives `transport` as a client: ids, pending replies, notifications to
 * `onNotification`. Once the link is gone, pending and later requests fail
 * with `TransportClosed` at once.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeClient = (
  transport: Transport,
  onNotification: (method: string, params: unknown) => void
): Client => {
  const pending = new Map<RequestId, Deferred.Deferred<unknown, RpcError | TransportClosed>>()
  const closed = Deferred.makeUnsafe<string>()
  let nextId = 1
  let closedReason: string | undefined
  transport.listen({
    onFrame: (frame) => {
      const parsed = parseFrame(frame)
      if (!parsed.ok) return
      const message = parsed.message
      if (message.method !== undefined && message.id === undefined) {
        onNotification(message.method, message.params)
        return
      }
      if (message.id === undefined) return
      const deferred = pending.get(message.id)
      if (deferred === undefined) return
      pending.delete(message.id)
      if (message.error !== undefined) {
        Deferred.doneUnsafe(deferred, Exit.fail(new RpcError({ code: message.error.code, message: message.error.message })))
      } else {
        Deferred.doneUnsafe(deferred, Exit.succeed(message.result))
      }
    },
    onClose: (reason) => {
      if (closedReason !== undefined) return
      closedReason = reason
      for (const deferred of pending.values()) {
        Deferred.doneUnsafe(deferred, Exit.fail(new TransportClosed({ reason })))
      }
      pending.clear()
      Deferred.doneUnsafe(closed, Exit.succeed(reason))
    }
  })
  return {
    request: (method, params) =>
      Effect.suspend(() => {
        if (closedReason !== undefined) return Effect.fail(new TransportClosed({ reason: closedReason }))
        const id = nextId++
        const deferred = Deferred.makeUnsafe<unknown, RpcError | TransportClosed>()
        pending.set(id, deferred)
        return transport.send(encode({ id, method, params })).pipe(
          Effect.andThen(Deferred.await(deferred)),
          Effect.ensuring(Effect.sync(() => pending.delete(id)))
        )
      }),
    notify: (method, params) =>
      Effect.suspend(() =>
        closedReason !== undefined
          ? Effect.fail(new TransportClosed({ reason: closedReason }))
          : transport.send(encode({ method, params }))
      ),
    closed,
    close: transport.close
  }
}
