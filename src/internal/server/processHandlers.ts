/**
 * The `process/*` methods of one session: each translates the client's
 * process id to the executor's, calls the executor, and maps its failures to
 * the JSON-RPC answers Codex gives.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import { ExecutorError, ProcessIdInUse } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { notifyEvents } from "./notifier.ts"
import { fromExecutorError, RawJson } from "./reply.ts"
import type { NotificationHandlers, RequestHandlers } from "./router.ts"
import type { Session, SessionProcess, SessionRegistry } from "./sessions.ts"

type ProcessMethod = Extract<Protocol.RequestMethod, `process/${string}`>

/**
 * `process/start` in `session`: in one of the session's turns, a slot taken
 * before the spawn; interruptible until the spawn, all or nothing after it.
 */
const startHandler = (registry: SessionRegistry, session: Session) => {
  const { executor } = registry

  /**
   * A started process becomes the session's: ended with it, its slot held
   * until it closes. A session that ended while the process started (its TTL
   * ran out meanwhile) ends the process at once.
   */
  const adopt = (request: Protocol.ParamsOf<"process/start">, entry: SessionProcess, release: Effect.Effect<void>) =>
    Effect.gen(function*() {
      session.processes.set(request.processId, entry)
      yield* FiberSet.run(
        registry.fibers,
        notifyEvents(
          registry,
          session,
          { processId: request.processId, entry, output: request.outputNotifications !== false },
          release
        )
      )
      if (session.ended) yield* Effect.ignore(executor.terminate(entry.internalId))
    })

  /**
   * A start that did not succeed gives its slot back. One the executor
   * answered with an interruption may have spawned the process all the same:
   * it is terminated, so nothing runs that no session knows of.
   */
  const abandon = (exit: Exit.Exit<unknown, unknown>, internalId: string, release: Effect.Effect<void>) =>
    Effect.andThen(release, Exit.hasInterrupts(exit) ? Effect.ignore(executor.terminate(internalId)) : Effect.void)

  /** Reserves a slot, then starts in the executor: interruptible until the spawn, all or nothing after it. */
  const startInTurn = Effect.fn("ExecServer.process/start")(
    function*(request: Protocol.ParamsOf<"process/start">) {
      const release = yield* registry.reserveProcess(session)
      // the session's own running process under this id is refused here, after the limit as Codex orders them: an
      // executor that answers later (one that relays) could be interrupted first, and abandoning that start would
      // end the process that holds the id
      if (session.processes.get(request.processId)?.closed === false) {
        yield* release
        return yield* Effect.fail(
          fromExecutorError(request.processId)(
            new ExecutorError({ reason: new ProcessIdInUse({ processId: request.processId }) })
          )
        )
      }
      const entry: SessionProcess = { internalId: session.internalIdOf(request.processId), closed: false }
      const started = yield* Effect.uninterruptibleMask((restore) =>
        restore(executor.start({ ...request, processId: entry.internalId })).pipe(
          Effect.mapError(fromExecutorError(request.processId)),
          Effect.onExit((exit) =>
            Exit.isSuccess(exit) ? adopt(request, entry, release) : abandon(exit, entry.internalId, release)
          )
        )
      )
      return {
        processId: request.processId,
        sandboxType: started.sandboxType ?? "none",
        ...(started.windowBytes === undefined ? {} : { windowBytes: started.windowBytes })
      }
    },
    session.starts.withPermits(1)
  )

  // Known as under way from the moment it arrives, before it waits for its turn: a terminate (or any request for
  // the process) sent right behind it waits for its answer instead of finding no process. A connection that closes
  // interrupts it: before the spawn nothing is left; after it, `abandon` ends the process it did start.
  return (request: Protocol.ParamsOf<"process/start">) =>
    Effect.uninterruptibleMask((restore) => {
      const answered = Deferred.makeUnsafe<void>()
      const underWay = session.startsUnderWay.get(request.processId) ?? new Set()
      session.startsUnderWay.set(request.processId, underWay.add(answered))
      return restore(startInTurn(request)).pipe(Effect.ensuring(Effect.suspend(() => {
        // a set is the id's entry from its first start to its last answer: once empty, it is no one's
        underWay.delete(answered)
        if (underWay.size === 0) session.startsUnderWay.delete(request.processId)
        return Deferred.done(answered, Exit.void)
      })))
    })
}

/**
 * Runs a request for the client's `processId` once every start of that id
 * received before it is answered (at once when there is none), as a server
 * that serves one request at a time would.
 */
const afterStart =
  (session: Session, processId: string) => <A, E, R>(request: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const underWay = session.startsUnderWay.get(processId)
      if (underWay === undefined) return request
      return Effect.gen(function*() {
        for (const answered of [...underWay]) yield* Deferred.await(answered)
        return yield* request
      })
    })

/** The `process/*` requests and notifications of `session`. */
export const processHandlers = (registry: SessionRegistry, session: Session): {
  readonly requests: Pick<RequestHandlers, ProcessMethod>
  readonly notifications: NotificationHandlers
} => {
  const { executor } = registry

  const start = startHandler(registry, session)

  const read = Effect.fn("ExecServer.process/read")(function*(request: Protocol.ParamsOf<"process/read">) {
    const result = yield* executor.read({
      ...request,
      processId: session.internalIdOf(request.processId),
      waitMs: Math.min(request.waitMs ?? 0, Defaults.server.maxReadWaitMillis)
    }).pipe(
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
      "process/read": (request) => afterStart(session, request.processId)(read(request)),
      "process/write": (request) => afterStart(session, request.processId)(write(request)),
      "process/terminate": (request) => afterStart(session, request.processId)(terminate(request)),
      "process/signal": (request) => afterStart(session, request.processId)(signal(request)),
      "process/resize": (request) => afterStart(session, request.processId)(resize(request)),
      "process/closeStdin": (request) => afterStart(session, request.processId)(closeStdin(request))
    },
    notifications: { "process/acknowledge": acknowledge }
  }
}
