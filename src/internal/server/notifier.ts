/**
 * Forwards a process's events (output, exit, close) to whichever connection
 * its session has, as `process/output`, `process/exited` and `process/closed`
 * notifications.
 *
 * Pushed output never has a silent gap: notifications are queued on the
 * connection without waiting for the client to take them (a client that
 * leaves too much unread is dropped by the transport, as any slow reader is),
 * and the executor keeps output the notifier has not taken yet. If the
 * notifier still falls too far behind, it closes the connection: the client
 * resumes and reads what it missed (`process/read`, which reports what
 * retention lost as `dropped`).
 *
 * While the session is detached, output is not queued (as with Codex, a
 * client that resumes reads what it missed); the exit and the close wait for
 * the client to come back, so it still hears of them.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { ProcessEvent } from "../../Executor.ts"
import { PushedProcess } from "./outputPush.ts"
import type { Connection, Session, SessionProcess, SessionRegistry } from "./sessions.ts"

/** What the notifier of one process needs to know. */
export interface NotifiedProcess {
  /** The client's id for it. */
  readonly processId: string
  /** Its entry in the session (the executor's id for it): this start's, not a later one's with the same id. */
  readonly entry: SessionProcess
  /** Whether output is pushed too (`outputNotifications`), or only the exit and the close. */
  readonly output: boolean
}

const notify = (
  connection: Connection,
  process: NotifiedProcess,
  pushed: PushedProcess,
  event: ProcessEvent
): Effect.Effect<void> => {
  const { processId } = process
  switch (event._tag) {
    case "Output":
      return process.output ? connection.postOutput(pushed, event) : Effect.void
    case "Exited":
      return connection.postJson(JSON.stringify({
        method: "process/exited",
        params: {
          processId,
          seq: event.seq,
          exitCode: event.exitCode,
          signal: event.signal,
          sandboxDenied: event.sandboxDenied
        }
      }))
    case "Closed":
      return connection.postJson(JSON.stringify({ method: "process/closed", params: { processId, seq: event.seq } }))
    case "Dropped":
      return process.output
        ? connection.close(
          `the output of process ${processId} up to seq ${event.seq} (${event.bytes} bytes) was lost before it ` +
            `could be pushed: the client reads too slowly; it may resume and read`
        )
        : Effect.void
  }
}

/**
 * Pushes the output events at the front of `events` that need no waiting:
 * those of a process whose output is not pushed, those of a detached session
 * (not queued, as ever), and those the connection takes at once. Returns how
 * many it took.
 */
const pushNow = (
  session: Session,
  process: NotifiedProcess,
  pushed: PushedProcess,
  events: ReadonlyArray<ProcessEvent>
): number => {
  const connection = session.attached
  let taken = 0
  for (; taken < events.length; taken++) {
    const event = events[taken]!
    if (event._tag !== "Output") break
    if (process.output && connection !== undefined && !connection.postOutputNow(pushed, event)) break
  }
  return taken
}

/** Waits for the session to have a connection, except for output, which a detached session does not queue. */
const whenAttached = (session: Session, event: ProcessEvent): Effect.Effect<Connection | undefined> =>
  event._tag === "Output" || event._tag === "Dropped"
    ? Effect.sync(() => session.attached)
    : Effect.map(session.changes.until(() => session.attached !== undefined || session.ended), () => session.attached)

/**
 * Notifies `session`'s client of the process's events until it closes, then
 * runs `closed` and takes the process out of the session: there is nothing
 * left to terminate, and the executor's retention alone keeps its id taken.
 * A later process started with the same id has an entry of its own, which
 * stays.
 */
export const notifyEvents = (
  registry: SessionRegistry,
  session: Session,
  process: NotifiedProcess,
  closed: Effect.Effect<void>
): Effect.Effect<void> => {
  const pushed = new PushedProcess(process.processId)
  const one = (event: ProcessEvent) =>
    Effect.flatMap(
      whenAttached(session, event),
      (connection) => connection === undefined ? Effect.void : notify(connection, process, pushed, event)
    )
  return registry.executor.events(process.entry.internalId).pipe(
    Stream.runForEachArray((events) =>
      Effect.suspend(() => {
        if (events[events.length - 1]?._tag === "Closed") process.entry.closed = true
        // the output at the front of a batch goes out at once where it can (no effect per chunk: a large
        // output is thousands of them); the rest, and what must wait, one by one
        const taken = pushNow(session, process, pushed, events)
        return taken === events.length ? Effect.void : Effect.forEach(events.slice(taken), one, { discard: true })
      })
    ),
    Effect.ignore,
    Effect.ensuring(closed),
    Effect.andThen(Effect.sync(() => {
      if (session.processes.get(process.processId) === process.entry) session.processes.delete(process.processId)
    }))
  )
}
