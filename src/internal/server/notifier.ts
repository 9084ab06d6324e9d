/**
 * Forwards a process's events (output, exit, close) to whichever connection
 * its session has, as `process/output`, `process/exited` and `process/closed`
 * notifications. While the session is detached it waits (the executor's log
 * keeps the events), so a client that resumes still hears of an exit or a
 * close that happened in between.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { ProcessEvent } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import type { Connection, Session, SessionRegistry } from "./sessions.ts"

/** What the notifier of one process needs to know. */
export interface NotifiedProcess {
  /** The client's id for it. */
  readonly processId: string
  /** The executor's id for it. */
  readonly internalId: string
  /** Whether output is pushed too (`outputNotifications`), or only the exit and the close. */
  readonly output: boolean
}

const notify = (connection: Connection, process: NotifiedProcess, event: ProcessEvent): Effect.Effect<void> => {
  const { processId } = process
  switch (event._tag) {
    case "Output":
      return process.output ? connection.sendJson(Protocol.outputNotificationJson(processId, event)) : Effect.void
    case "Exited":
      return connection.send({
        method: "process/exited",
        params: { processId, seq: event.seq, exitCode: event.exitCode, signal: event.signal, sandboxDenied: false }
      })
    case "Closed":
      return connection.send({ method: "process/closed", params: { processId, seq: event.seq } })
  }
}

/**
 * Notifies `session`'s client of the process's events until it closes, then
 * runs `closed`, and forgets the process's id in the session once the close
 * is older than the server's retention.
 */
export const notifyEvents = (
  registry: SessionRegistry,
  session: Session,
  process: NotifiedProcess,
  closed: Effect.Effect<void>
): Effect.Effect<void> =>
  registry.executor.events(process.internalId).pipe(
    Stream.runForEach((event) =>
      Effect.andThen(
        session.changes.until(() => session.attached !== undefined || session.ended),
        Effect.suspend(() => session.attached === undefined ? Effect.void : notify(session.attached, process, event))
      )
    ),
    Effect.ignore,
    Effect.ensuring(closed),
    Effect.andThen(Effect.sleep(registry.closedRetention)),
    Effect.andThen(Effect.sync(() => {
      if (session.processes.get(process.processId)?.internalId === process.internalId) {
        session.processes.delete(process.processId)
      }
    }))
  )
