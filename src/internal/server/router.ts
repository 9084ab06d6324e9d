/**
 * Routes a request by the method table in `Protocol`: decodes its params with
 * the method's schema, runs its handler, and encodes the result with the
 * method's result schema (a handler may hand back JSON it built itself, for
 * the hot path). An unknown method is `-32601`; params that do not decode are
 * `-32602` naming the field.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { ErrorCode } from "../../JsonRpc.ts"
import * as Protocol from "../../Protocol.ts"
import { RawJson, Reply, reply } from "./reply.ts"

/** A handler per method a session serves (every request but `initialize`): decoded params in, a result (or its JSON) out. */
export type RequestHandlers = {
  readonly [M in Exclude<Protocol.RequestMethod, "initialize">]: (
    params: Protocol.ParamsOf<M>
  ) => Effect.Effect<Protocol.ResultOf<M> | RawJson, Reply>
}

/** A handler per notification a client may send, but `initialized` (the handshake's). */
export type NotificationHandlers = {
  readonly [M in Exclude<Protocol.ClientNotificationMethod, "initialized">]: (
    params: Protocol.ParamsOf<M>
  ) => Effect.Effect<void, Reply>
}

// Effect compiles a schema's parser once and keeps it with the schema's AST: a decoder or encoder made per
// request costs a closure and a lookup, not a compilation.

/** Decodes params by `schema`: a mismatch is `-32602` with the schema's message (it names the field). */
export const decodeParams = <S extends Protocol.WireSchema>(
  schema: S,
  params: unknown
): Effect.Effect<S["Type"], Reply> =>
  Schema.decodeUnknownEffect(schema)(params ?? {}).pipe(
    Effect.mapError((error) =>
      new Reply({ code: ErrorCode.invalidParams, message: `invalid params: ${error.message}` })
    )
  )

const encodeResult = (schema: Protocol.WireSchema, result: unknown): Effect.Effect<unknown, Reply> =>
  result instanceof RawJson
    ? Effect.succeed(result)
    : Schema.encodeUnknownEffect(schema)(result).pipe(
      Effect.mapError((error) =>
        new Reply({ code: ErrorCode.internalError, message: `the server built an invalid answer: ${error.message}` })
      )
    )

/** A handler with its types erased, as the router calls it. */
export type AnyHandler = (params: any) => Effect.Effect<unknown, Reply>

/**
 * Runs request `method` with `params`: `resolve` finds its handler (or refuses
 * the method in the connection's state, before its params are looked at), the
 * params are decoded, and the result encoded, by the method's schemas.
 */
export const routeRequest = (
  method: string,
  params: unknown,
  resolve: (method: Protocol.RequestMethod) => Effect.Effect<AnyHandler, Reply>
): Effect.Effect<unknown, Reply> => {
  if (!Protocol.isRequestMethod(method)) return reply(ErrorCode.methodNotFound, `method not found: ${method}`)
  const spec = Protocol.requests[method]
  return resolve(method).pipe(
    Effect.flatMap((handler) => Effect.flatMap(decodeParams(spec.params, params), handler)),
    Effect.flatMap((result) => encodeResult(spec.result, result))
  )
}

/** Runs client notification `method` with `params` by `handlers`. */
export const routeNotification = (
  handlers: NotificationHandlers,
  method: Exclude<Protocol.ClientNotificationMethod, "initialized">,
  params: unknown
): Effect.Effect<void, Reply> =>
  Effect.flatMap(decodeParams(Protocol.clientNotifications[method].params, params), handlers[method] as AnyHandler)
    .pipe(Effect.asVoid)
