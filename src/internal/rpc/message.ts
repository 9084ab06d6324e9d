/**
 * JSON-RPC 2.0 messages as the Codex exec-server speaks them: one JSON message
 * per frame, with or without the `"jsonrpc"` member; the error codes.
 *
 * @internal
 */
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"

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
  /** Codex's answer to an `fs/*` call on a path that does not exist. */
  notFound: -32004,
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
 * A parsed frame, or why it is not a JSON-RPC message.
 *
 * @category models
 * @since 0.1.0
 */
export type ParsedFrame =
  | { readonly ok: true; readonly message: Envelope }
  | { readonly ok: false; readonly error: string }

/**
 * Parses one frame into a request, a notification or a response; anything else
 * is a failure whose message fits the `-32600` answer to an unparsable frame.
 *
 * @category parsing
 * @since 0.1.0
 */
export const parseFrame = (frame: string): ParsedFrame => {
  let json: unknown
  try {
    json = JSON.parse(frame)
  } catch (error) {
    return { ok: false, error: `failed to parse JSON-RPC message: ${(error as Error).message}` }
  }
  const decoded = decodeEnvelope(json)
  if (Exit.isFailure(decoded)) {
    return {
      ok: false,
      error: "failed to parse JSON-RPC message: not a JSON-RPC 2.0 object (id must be a string or an integer)"
    }
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
