/**
 * Calls about a process of a session the server no longer has. When the link
 * cannot resume its session (the server expired it while the client was
 * away, or the server restarted) it begins a new one (`Link.sessions`), and
 * every process of the old session is gone from the server, which answers for
 * it as for an id it never saw: `UnknownProcess` to a read, `unknownProcess`
 * to a write, `running: false` to a terminate. A call about a process this
 * client started in such a session fails with `SessionLost` instead: at once,
 * without asking, once the new session is known; in place of the server's
 * answer for an unknown process when the call itself was the one that
 * connected to the new session. What the link learns is the fact it began a
 * new session, never the words of an answer.
 *
 * Processes started in the new session are the server's as any others. What
 * the client already holds of an old one is still handed out: its pushed
 * output to reads, its notified events to followers (up to the first gap),
 * before the failure; a history complete to its close, whole, without one.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { ExecutorError, SessionLost } from "../../Executor.ts"
import type { Link } from "./link.ts"
import type { ProcessRecord, ProcessRecords } from "./processRecords.ts"

/** The failure of a call about `processId`, a process of a session the server no longer has. */
export const sessionLost = (processId: string): ExecutorError =>
  new ExecutorError({ reason: new SessionLost({ processId }) })

/** Whether `record`'s process ran in a session the link no longer has (it began another since). */
export const inLostSession = (link: Link, record: ProcessRecord | undefined): boolean =>
  record !== undefined && link.isLostSession(record.session)

/**
 * `call` about `processId`, a `SessionLost` failure when the process ran in a
 * session the server no longer has (see the module header). `unknown` says
 * which answers are the server's words for a process it does not know (a
 * write's `unknownProcess`, a terminate's `running: false`).
 */
export const withinSession = (link: Link, records: ProcessRecords) =>
<A>(
  processId: string,
  call: Effect.Effect<A, ExecutorError>,
  unknown: (answer: A) => boolean = () => false
): Effect.Effect<A, ExecutorError> =>
  Effect.suspend(() => {
    // the record asked about: a start of the id in the new session replaces it with one of its own
    const record = records.get(processId)
    if (inLostSession(link, record)) return Effect.fail(sessionLost(processId))
    const lost = () => inLostSession(link, record)
    return call.pipe(
      Effect.catchIf(
        (error) => error.reason._tag === "UnknownProcess" && lost(),
        () => Effect.fail(sessionLost(processId))
      ),
      Effect.flatMap((answer) =>
        unknown(answer) && lost() ? Effect.fail(sessionLost(processId)) : Effect.succeed(answer)
      )
    )
  })
