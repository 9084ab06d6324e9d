/**
 * How a handler answers besides a plain result: a JSON-RPC error (`Reply`), or
 * a result already serialized to JSON (`RawJson`, the read fast path).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import {
  type ExecutorError,
  type ExecutorErrorReason,
  ProcessIdInUse,
  SessionLost,
  UnknownProcess
} from "../../Executor.ts"
import { ErrorCode } from "../../JsonRpc.ts"
import * as Protocol from "../../Protocol.ts"

/** A JSON-RPC error answer. */
export class Reply extends Schema.TaggedError<Reply>()("Reply", {
  code: Schema.Int,
  message: Schema.String,
  data: Schema.optionalKey(Schema.Unknown)
}) {
  /** The `error` member of the answer. */
  get wire(): Protocol.WireError {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data }
  }
}

/** Fails with a JSON-RPC error answer. */
export const reply = (code: number, message: string): Effect.Effect<never, Reply> =>
  Effect.fail(new Reply({ code, message }))

/**
 * Fails with the answer to a request refused for one of the server's limits:
 * `-32000`, and which limit in `data.limit` (our extension), so that a client
 * can tell a refusal it may ask again after a while (nothing ran) from any
 * other error.
 */
export const limitReached = (limit: Protocol.LimitName, message: string): Effect.Effect<never, Reply> =>
  Effect.fail(new Reply({ code: ErrorCode.limitExceeded, message, data: { limit } }))

/** Input bytes per base64 slice: a multiple of 3, so the slices' base64 joins into one without padding. */
const base64SliceBytes = 3 * 64 * 1024

/**
 * A result already serialized to JSON, in pieces: text, and bytes that stand
 * for their standard base64 (which needs no escaping). The answer's frame is
 * written once into one buffer, the base64 a slice at a time: a large result
 * (a 1 MiB read, a 64 MiB file) is never also a large string, nor copied from
 * one to bytes on the way to the socket.
 */
export class RawJson {
  readonly pieces: ReadonlyArray<string | Uint8Array>
  constructor(pieces: ReadonlyArray<string | Uint8Array>) {
    this.pieces = pieces
  }

  /** The UTF-8 bytes of `before`, this JSON, then `after`. */
  frame(before: string, after: string): Buffer {
    let length = Buffer.byteLength(before) + Buffer.byteLength(after)
    for (const piece of this.pieces) {
      length += typeof piece === "string" ? Buffer.byteLength(piece) : Math.ceil(piece.length / 3) * 4
    }
    const frame = Buffer.allocUnsafe(length)
    let offset = frame.write(before, 0)
    for (const piece of this.pieces) {
      if (typeof piece === "string") {
        offset += frame.write(piece, offset)
        continue
      }
      const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.length)
      for (let start = 0; start < bytes.length; start += base64SliceBytes) {
        offset += frame.write(bytes.subarray(start, start + base64SliceBytes).toString("base64"), offset, "latin1")
      }
    }
    frame.write(after, offset)
    return frame
  }
}

/**
 * The executor knows a process by its session-scoped id; the client by its
 * own. Reasons that name a process name the client's.
 */
const inClientTerms = (reason: ExecutorErrorReason, processId: string): ExecutorErrorReason => {
  switch (reason._tag) {
    case "UnknownProcess":
      return new UnknownProcess({ processId })
    case "ProcessIdInUse":
      return new ProcessIdInUse({ processId })
    case "SessionLost":
      return new SessionLost({ processId })
    default:
      return reason
  }
}

/** Maps an executor failure to its JSON-RPC answer, naming the client's process id. */
export const fromExecutorError = (processId: string) => (error: ExecutorError): Reply =>
  new Reply(Protocol.errorToWire(inClientTerms(error.reason, processId)))
