/**
 * `events` of a remote process, as the local executor's: its output, exit and
 * close in seq order from a cursor, ending after the close; `UnknownProcess`
 * for an id the server does not know.
 *
 * The events are those the server's notifications brought. Seqs none brought
 * (output the server does not push: the process was started with
 * `outputNotifications: false`, or it was pushed while the session was
 * detached) are read from the server before the event that follows them is
 * taken, so a follower still sees every byte the server retains; what it no
 * longer retains is a `Dropped` event. Such a read acknowledges output up to
 * the follower's cursor, as any read does.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { ExecutorError, type ProcessEvent, UnknownProcess, Unsupported } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import type { Link } from "./link.ts"
import type { NotifiedEvents, ProcessRecords } from "./processRecords.ts"

type ServerRead = (request: Protocol.ReadParams) => Effect.Effect<Protocol.ReadResult, ExecutorError>

/** The first of `events` up to the first gap in their seqs (at least one). */
const gapFree = (events: ReadonlyArray<ProcessEvent>): Array<ProcessEvent> => {
  let end = 1
  while (end < events.length && events[end]!.seq === events[end - 1]!.seq + 1) end++
  return events.slice(0, end)
}

/**
 * The output between `cursor` and `before` that no notification brought,
 * read from the server: its chunks, after a `Dropped` for what it no longer
 * retains.
 */
const missedOutput = (serverRead: ServerRead, processId: string, cursor: number, before: number) =>
  Effect.map(serverRead({ processId, afterSeq: cursor, maxBytes: null, waitMs: 0 }), (read) => {
    const events: Array<ProcessEvent> = []
    const chunks = read.chunks.filter((chunk) => chunk.seq < before)
    if (read.dropped !== undefined && read.dropped.chunks > 0) {
      events.push({ _tag: "Dropped", seq: (chunks[0]?.seq ?? before) - 1, ...read.dropped })
    }
    for (const { chunk, seq, stream } of chunks) events.push({ _tag: "Output", seq, stream, chunk })
    return events
  })

/** The next events after `cursor`, waiting for one when none is known yet (reconnecting if need be). */
const nextEvents = (link: Link, serverRead: ServerRead, processId: string, log: NotifiedEvents, cursor: number) =>
  Effect.gen(function*() {
    let batch = log.after(cursor)
    while (batch.length === 0) {
      // forgotten before its close (another process took its id, or its start failed): nothing more comes
      if (log.ended) return yield* Effect.fail(new ExecutorError({ reason: new UnknownProcess({ processId }) }))
      if (link.live === undefined) yield* link.client
      yield* Effect.raceFirst(
        log.untilAfter(cursor),
        Effect.flatMap(link.client, (rpc) => Deferred.await(rpc.closed))
      )
      batch = log.after(cursor)
    }
    const known = gapFree(batch)
    const first = known[0]!
    return first.seq === cursor + 1
      ? known
      : [...(yield* missedOutput(serverRead, processId, cursor, first.seq)), ...known]
  })

/** `Executor.events` over the records of a remote executor. */
export const remoteEvents = (link: Link, records: ProcessRecords, serverRead: ServerRead) =>
(
  processId: string,
  options?: { readonly afterSeq?: number }
): Stream.Stream<ProcessEvent, ExecutorError> =>
  Stream.unwrap(Effect.gen(function*() {
    if (records.get(processId) === undefined) {
      // not started by this client: the server says whether it knows it (`UnknownProcess` when not)
      yield* serverRead({ processId, afterSeq: 0, maxBytes: 1, waitMs: 0 })
      return yield* Effect.fail(
        new ExecutorError({
          reason: new Unsupported({
            feature: `the events of process ${processId}, which this client did not start (or no longer remembers)`
          })
        })
      )
    }
    // followed for as long as the stream runs: its record is not forgotten to the bound of records while open
    const record = yield* Effect.acquireRelease(
      Effect.sync(() => records.follow(processId)!),
      (record) => Effect.sync(() => record.followers--)
    )
    return Stream.paginate(options?.afterSeq ?? 0, (cursor) =>
      Effect.map(nextEvents(link, serverRead, processId, record.events, cursor), (events) => {
        const last = events[events.length - 1]!
        return [events, last._tag === "Closed" ? Option.none() : Option.some(last.seq)] as const
      }))
  }))
