/**
 * The `process/*` methods of one session: each translates the client's
 * process id to the executor's, calls the executor, and maps its failures to
 * the JSON-RPC answers Codex gives.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Protocol from "../../Protocol.ts"
import { notifyEvents } from "./notifier.ts"
import { fromExecutorError, RawJson } from "./reply.ts"
import type { NotificationHandlers, RequestHandlers } from "./router.ts"
import type { Session, SessionRegistry } from "./sessions.ts"

type ProcessMethod = Extract<Protocol.RequestMethod, `process/${string}`>

/** The `process/*` requests and notifications of `session`. */
export const processHandlers = (registry: SessionRegistry, session: Session): {
  readonly requests: Pick<RequestHandlers, ProcessMethod>
  readonly notifications: NotificationHandlers
} => {
  const { executor } = registry

  const start = Effect.fn("ExecServer.process/start")(function*(request: Protocol.ParamsOf<"process/start">) {
    const release = yield* registry.reserveProcess(session)
    const internalId = session.internalIdOf(request.processId)
    const started = yield* executor.start({ ...request, processId: internalId }).pipe(
      Effect.mapError(fromExecutorError(request.processId)),
      Effect.onError(() => release)
    )
    session.processes.set(request.processId, { internalId })
    yield* FiberSet.run(
      registry.fibers,
      notifyEvents(
        registry,
        session,
        { processId: request.processId, internalId, output: request.outputNotifications !== false },
        release
      )
    )
    return {
      processId: request.processId,
      sandboxType: started.sandboxType ?? "none",
      ...(started.windowBytes === undefined ? {} : { windowBytes: started.windowBytes })
    }
  })

  const read = Effect.fn("ExecServer.process/read")(function*(request: Protocol.ParamsOf<"process/read">) {
    const result = yield* executor.read({ ...request, processId: session.internalIdOf(request.processId) }).pipe(
      Effect.mapError(fromExecutorError(request.processId))
    )
    return new RawJson(Protocol.readResultJsonPieces({ ...result, sandboxDenied: result.sandboxDenied ?? false }))
  })

  const write = Effect.fn("ExecServer.process/write")(function*(request: Protocol.ParamsOf<"process/write">) {
    const status = yield* executor.write({ ...request, processId: session.internalIdOf(request.processId) }).pipe(
      Effect.mapError(fromExecutorError(request.processId))
    )
    return { status }
  })

  const terminate = Effect.fn("ExecServer.process/terminate")(
    function*(request: Protocol.ParamsOf<"process/terminate">) {
      return yield* executor.terminate(session.internalIdOf(request.processId)).pipe(
        Effect.mapError(fromExecutorError(request.processId))
      )
    }
  )

  const signal = Effect.fn("ExecServer.process/signal")(function*(request: Protocol.ParamsOf<"process/signal">) {
    yield* executor.signal(session.internalIdOf(request.processId), request.signal).pipe(
      Effect.mapError(fromExecutorError(request.processId))
    )
    return {}
  })

  const resize = Effect.fn("ExecServer.process/resize")(function*(request: Protocol.ParamsOf<"process/resize">) {
    yield* executor.resize(session.internalIdOf(request.processId), request.size).pipe(
      Effect.mapError(fromExecutorError(request.processId))
    )
    return {}
  })

  const closeStdin = Effect.fn("ExecServer.process/closeStdin")(
    function*(request: Protocol.ParamsOf<"process/closeStdin">) {
      const status = yield* executor.closeStdin(session.internalIdOf(request.processId)).pipe(
        Effect.mapError(fromExecutorError(request.processId))
      )
      return { status }
    }
  )

  /**
   * A client that reads pushed output says how far it got, as a read at that
   * cursor would, without asking for the chunks again (our extension).
   */
  const acknowledge = (request: Protocol.ParamsOf<"process/acknowledge">) => {
    const processId = session.internalIdOf(request.processId)
    return (executor.acknowledge === undefined
      ? Effect.asVoid(executor.read({ processId, afterSeq: request.afterSeq, maxBytes: 1, waitMs: 0 }))
      : executor.acknowledge(processId, request.afterSeq)).pipe(Effect.mapError(fromExecutorError(request.processId)))
  }

  return {
    requests: {
      "process/start": start,
      "process/read": read,
      "process/write": write,
      "process/terminate": terminate,
      "process/signal": signal,
      "process/resize": resize,
      "process/closeStdin": closeStdin
    },
    notifications: { "process/acknowledge": acknowledge }
  }
}
