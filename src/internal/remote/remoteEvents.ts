/**
 * `events` of a remote process, as the local executor's: its output, exit and
 * close in seq order from a cursor, ending after the close; `UnknownProcess`
 * for an id the server does not know, `SessionLost` for a process of a
 * session the server no longer has.
 *
 * The events are those the server's notifications brought. Seqs none brought
 * (output the server does not push: the process was started with
 * `outputNotifications: false`, or it was pushed while the session was
 * detached) are read from the server before the event that follows them is
 * taken, so a follower still sees every byte the server retains; what it no
 * longer retains is a `Dropped` event. Such a read acknowledges output up to
 * the follower's cursor, as any read does.
 *
 * A notification written into a dying connection is lost, and a resumed
 * session does not send it again. So once on each connection after the one
 * the process started on, a follower waiting for more asks the server where
 * the process stands (the same read at its cursor): closed, what it missed is
 * taken into the record (the output, the exit unless held, the close), and
 * the followers end as after the close's notification; unknown, the record
 * is forgotten and its followers fail with `UnknownProcess`.
 *
 * A session that ended while the client was away (past the server's TTL), or
 * that a restarted server never had, is replaced by a new one, which does not
 * know the process: its followers take the events already held up to the
 * first gap, then fail with `SessionLost` (the read that would ask fails so,
 * without asking), and the record stays, so that a later follower or read
 * learns the same.
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
import type { ProcessRecord, ProcessRecords } from "./processRecords.ts"
import { inLostSession, sessionLost } from "./sessionLost.ts"

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
 * retains. Where `before` is the close and no exit is held (the close's
 * notification overtook the exit's: Codex's server sends them from separate
 * tasks), the exit the read reports goes in its place as well.
 */
const missedOutput = (
  serverRead: ServerRead,
  processId: string,
  cursor: number,
  before: number,
  exitBeforeClose: boolean
) =>
  Effect.map(serverRead({ processId, afterSeq: cursor, maxBytes: null, waitMs: 0 }), (read) => {
    const events: Array<ProcessEvent> = []
    const chunks = read.chunks.filter((chunk) => chunk.seq < before)
    if (read.dropped !== undefined && read.dropped.chunks > 0) {
      events.push({ _tag: "Dropped", seq: (chunks[0]?.seq ?? before) - 1, ...read.dropped })
    }
    const output: Array<ProcessEvent> = chunks.map(({ chunk, seq, stream }) => ({ _tag: "Output", seq, stream, chunk }))
    if (exitBeforeClose && read.exited) placeExit(output, chunks, read, cursor, before)
    events.push(...output)
    return events
  })

/**
 * Puts the exit of a closed process into `output` (its events for `chunks`),
 * in the place the server's seqs give it: the newest seq before the close
 * that no chunk holds (output after the exit is retained, newest kept, so
 * what precedes it is the output the server no longer retains), when that is
 * after `cursor`.
 */
const placeExit = (
  output: Array<ProcessEvent>,
  chunks: ReadonlyArray<Protocol.ProcessChunk>,
  read: Protocol.ReadResult,
  cursor: number,
  closeSeq: number
): void => {
  let seq = closeSeq - 1
  let index = chunks.length - 1
  for (; index >= 0 && chunks[index]!.seq === seq; index--) seq--
  if (seq <= cursor) return
  output.splice(index + 1, 0, {
    _tag: "Exited",
    seq,
    exitCode: read.exitCode ?? -1,
    signal: read.signal ?? null,
    sandboxDenied: read.sandboxDenied ?? false
  })
}

/**
 * What a read answer of a closed process says came after `cursor`, in seq
 * order: its output, its exit (unless `exitHeld`) and its close. The seqs are
 * the server's: one counter numbers the output, the exit and the close (ours
 * and Codex's), and an unbounded read's `nextSeq` is one past the close; the
 * exit goes where `placeExit` says; `dropped` output goes to the gap reads.
 */
export const closedEvents = (read: Protocol.ReadResult, cursor: number, exitHeld: boolean): Array<ProcessEvent> => {
  const chunks = read.chunks.filter((chunk) => chunk.seq > cursor)
  // a server that numbered `nextSeq` after its last chunk even so: the close follows that chunk
  const closeSeq = Math.max(read.nextSeq - 1, (chunks[chunks.length - 1]?.seq ?? cursor) + 1)
  const events: Array<ProcessEvent> = chunks.map(({ chunk, seq, stream }) => ({ _tag: "Output", seq, stream, chunk }))
  if (!exitHeld && read.exited) placeExit(events, chunks, read, cursor, closeSeq)
  events.push({ _tag: "Closed", seq: closeSeq })
  return events
}

/**
 * Asks the server where `record`'s process stands after `cursor` (see the
 * module header): a closed one's events go into the records; an unknown one's
 * record is forgotten and this fails with `UnknownProcess`.
 */
const checkProcess = (
  records: ProcessRecords,
  serverRead: ServerRead,
  processId: string,
  record: ProcessRecord,
  cursor: number
) =>
  Effect.gen(function*() {
    const ask = (afterSeq: number) => serverRead({ processId, afterSeq, maxBytes: null, waitMs: 0 })
    let read = yield* ask(cursor).pipe(
      Effect.tapError((error) =>
        Effect.sync(() => {
          if (error.reason._tag === "UnknownProcess" && records.get(processId) === record) records.forget(processId)
        })
      )
    )
    if (!read.closed || records.get(processId) !== record) return
    // a server that numbers `nextSeq` after the last chunk it sends (Codex's before it answered unbounded reads to
    // the end) leaves the close's seq open: the read after that chunk names it
    const last = read.chunks[read.chunks.length - 1]
    if (last !== undefined && last.seq >= read.nextSeq - 1) {
      const rest = yield* ask(last.seq)
      read = { ...rest, chunks: [...read.chunks, ...rest.chunks.filter((chunk) => chunk.seq > last.seq)] }
    }
    if (records.get(processId) !== record) return
    for (const event of closedEvents(read, cursor, record.events.exited)) records.add(processId, event)
  })

/** The next events after `cursor`, waiting for one when none is known yet (reconnecting if need be). */
const nextEvents = (
  link: Link,
  records: ProcessRecords,
  serverRead: ServerRead,
  processId: string,
  record: ProcessRecord,
  cursor: number
) =>
  Effect.gen(function*() {
    const log = record.events
    let batch = log.after(cursor)
    while (batch.length === 0) {
      // forgotten before its close (another process took its id, or its start failed): nothing more comes
      if (log.ended) return yield* Effect.fail(new ExecutorError({ reason: new UnknownProcess({ processId }) }))
      const rpc = yield* link.client
      // its session is gone from the server (the link began a new one): nothing more comes, nor can be asked for
      if (inLostSession(link, record)) return yield* Effect.fail(sessionLost(processId))
      if (record.checkedConnection !== link.connections) {
        // on a later connection than the one its notifications came on: the server says where it stands
        record.checkedConnection = link.connections
        yield* checkProcess(records, serverRead, processId, record, cursor)
      } else {
        yield* Effect.raceFirst(log.untilAfter(cursor), Deferred.await(rpc.closed))
      }
      batch = log.after(cursor)
    }
    const known = gapFree(batch)
    const first = known[0]!
    return first.seq === cursor + 1
      ? known
      : [
        ...(yield* missedOutput(serverRead, processId, cursor, first.seq, first._tag === "Closed" && !log.exited)),
        ...known
      ]
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
      Effect.map(nextEvents(link, records, serverRead, processId, record, cursor), (events) => {
        const last = events[events.length - 1]!
        return [events, last._tag === "Closed" ? Option.none() : Option.some(last.seq)] as const
      }))
  }))
