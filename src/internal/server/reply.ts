/**
 * How a handler answers besides a plain result: a JSON-RPC error (`Reply`), or
 * a result already serialized to JSON (`RawJson`, the read fast path).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { type ExecutorError, type ExecutorErrorReason, ProcessIdInUse, UnknownProcess } from "../../Executor.ts"
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

/** A result already serialized to JSON. */
export class RawJson {
  readonly json: string
  constructor(json: string) {
    this.json = json
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
    default:
      return reason
  }
}

/** Maps an executor failure to its JSON-RPC answer, naming the client's process id. */
export const fromExecutorError = (processId: string) => (error: ExecutorError): Reply =>
  new Reply(Protocol.errorToWire(inClientTerms(error.reason, processId)))
