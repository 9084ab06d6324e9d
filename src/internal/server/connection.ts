/**
 * One client connection: frames in, answers out. Requests and notifications
 * pass its `RequestGate` (turns, a bounded queue, a byte budget that pauses
 * the socket). Each request gets exactly one answer, a defect in its handler
 * included (-32603, and the cause in the log). When the connection closes its
 * session is detached, to be resumed or to expire.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Latch from "effect/Latch"
import * as Scope from "effect/Scope"
import { type Envelope, ErrorCode, parseFrame, type RequestId, type Transport } from "../../JsonRpc.ts"
import * as Protocol from "../../Protocol.ts"
import { Handshake, type MethodsOf } from "./handshake.ts"
import { makeOutputPush } from "./outputPush.ts"
import { RawJson, type Reply } from "./reply.ts"
import { RequestGate } from "./requestGate.ts"
import { type AnyHandler, routeNotification, routeRequest } from "./router.ts"
import type { Connection, SessionRegistry } from "./sessions.ts"

/** Sends the answer to request `id`: its result, its error, or -32603 for a defect (logged). */
const answerWith = (
  send: (message: Envelope) => Effect.Effect<void>,
  sendJson: (json: string | Uint8Array) => Effect.Effect<void>
) =>
(id: RequestId, method: string, outcome: Effect.Effect<unknown, Reply>): Effect.Effect<void> =>
  Effect.matchCauseEffect(outcome, {
    onSuccess: (result) =>
      result instanceof RawJson
        ? sendJson(result.frame(`{"id":${JSON.stringify(id)},"result":`, "}"))
        : send({ id, result }),
    onFailure: (cause) => {
      const failure = cause.reasons.find(Cause.isFailReason)
      if (failure !== undefined) return send({ id, error: failure.error.wire })
      return Effect.logError(`${method} failed unexpectedly`, cause).pipe(
        Effect.andThen(send({ id, error: { code: ErrorCode.internalError, message: `internal error in ${method}` } }))
      )
    }
  })

/**
 * Serves one client on `transport` until it closes; returns why it closed.
 * `methodsOf` builds what a session serves once the handshake is done.
 */
export const serveConnection = Effect.fnUntraced(function*(
  registry: SessionRegistry,
  transport: Transport,
  methodsOf: MethodsOf
) {
  const scope = yield* Scope.make()
  const run = yield* FiberSet.makeRuntime<never>().pipe(Scope.provide(scope))
  const sendJson = (json: string | Uint8Array) => Effect.ignore(transport.send(json))
  const send = (message: Envelope) => sendJson(JSON.stringify(message))
  // what the session pushes waits for the `initialize` answer: a resumed
  // session's notifications never reach the client before it knows the session
  const initializeAnswered = Latch.makeUnsafe(false)
  /** Whether the latch is open (what the pushes that do not wait need to know). */
  let answered = false
  const output = makeOutputPush(transport, () => handshake.binaryOutput)
  const connection: Connection = {
    send: (message) => Effect.andThen(initializeAnswered.await, send(message)),
    sendJson: (json) => Effect.andThen(initializeAnswered.await, sendJson(json)),
    postJson: (json) => Effect.andThen(initializeAnswered.await, Effect.ignore(transport.post(json))),
    postOutput: (process, chunk) => Effect.andThen(initializeAnswered.await, output.push(process, chunk)),
    postOutputNow: (process, chunk) => answered && output.pushBinary(process, chunk),
    close: (reason) => Effect.andThen(Effect.logWarning(`closing a connection: ${reason}`), transport.close),
    address: transport.remoteAddress
  }
  const handshake = new Handshake(registry, connection, methodsOf, { binaryOutput: transport.postBinary !== undefined })

  const resolve = (method: Protocol.RequestMethod): Effect.Effect<AnyHandler, Reply> =>
    method === "initialize"
      ? Effect.succeed((params: Protocol.ParamsOf<"initialize">) => handshake.initialize(params))
      : Effect.map(handshake.ready(method), (methods) => methods.requests[method])

  const answer = answerWith(send, sendJson)

  // requests run concurrently up to a limit; a bounded number wait, the rest are refused
  const gate = new RequestGate(registry.limits, transport)
  /** A request takes a turn until its answer is handed to the OS: answers waiting to go out are bounded too. */
  const respond = (id: RequestId, method: string, params: unknown, frameBytes: number) =>
    Effect.suspend(() =>
      gate.full
        ? answer(id, method, gate.refusal())
        : gate.pass(
          frameBytes,
          Effect.andThen(
            answer(id, method, routeRequest(method, params, resolve)),
            Effect.suspend(() =>
              method === "initialize" && handshake.session !== undefined
                ? Effect.andThen(Effect.sync(() => (answered = true)), initializeAnswered.open)
                : Effect.void
            )
          )
        )
    )
  /**
   * Notifications take turns as requests do; past the limit they are dropped
   * (nothing answers them). A defect in one is logged.
   */
  const accept = (method: string, params: unknown, frameBytes: number) =>
    Effect.suspend(() => {
      const methods = handshake.readyMethods
      if (
        !Protocol.isClientNotificationMethod(method) || method === "initialized" || methods === undefined || gate.full
      ) return Effect.void
      return gate.pass(
        frameBytes,
        routeNotification(methods.notifications, method, params).pipe(
          Effect.ignore,
          Effect.catchDefect((defect) =>
            Effect.logError(`${method} notification failed unexpectedly`, Cause.die(defect))
          )
        )
      )
    })

  const closed = yield* Effect.callback<string>((resume) => {
    transport.listen({
      onFrame: (frame) => {
        const parsed = parseFrame(frame)
        if (!parsed.ok) {
          run(send({ id: -1, error: { code: ErrorCode.invalidRequest, message: parsed.error } }))
          return
        }
        const { id, method, params } = parsed.message
        if (method === undefined) return // a response from the client: nothing asked for it
        if (id === undefined) {
          // `initialized` is handled here and now: a request right behind it must find it done
          if (method === "initialized") handshake.markInitialized(params)
          else run(accept(method, params, frame.length))
          return
        }
        run(respond(id, method, params, frame.length))
      },
      onClose: (reason) => resume(Effect.succeed(reason))
    })
  })

  // a notification still waiting for the answer goes nowhere now: let it finish
  answered = true
  initializeAnswered.openUnsafe()
  yield* Scope.close(scope, undefined as never).pipe(Effect.ignore)
  if (handshake.session !== undefined) yield* registry.detach(handshake.session, connection)
  return closed
})
