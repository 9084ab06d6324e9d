/**
 * The sequence-numbered log of one process, as an exec-server keeps it: output
 * chunks, the exit and the close share one counter; output is retained up to a
 * byte budget (oldest whole chunks evicted first, and counted); readers
 * long-poll on changes. Platform-neutral: the local executor feeds it from
 * Node's child process events.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { ProcessEvent } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import { ChangeSignal } from "../changeSignal.ts"
import * as Defaults from "../defaults.ts"
import type { OutputMemory } from "../outputMemory.ts"

/** A reader of every event (the notifier): output past its cursor is kept for it, within a bound. */
export interface Follower {
  cursor: number
}

interface Eviction {
  readonly seq: number
  readonly bytes: number
}

/** Evictions remembered one by one; older ones are folded into one total. */
const evictionMemory = 4096

export class ProcessLog {
  private nextSeqValue = 1
  private readonly retained: Array<Protocol.ProcessChunk> = []
  private head = 0
  private retainedBytesValue = 0
  private readonly evictions: Array<Eviction> = []
  private foldedEvictions = { bytes: 0, chunks: 0, lastSeq: 0 }
  private exitEvent:
    | {
      readonly seq: number
      readonly exitCode: number
      readonly signal: string | null
      readonly sandboxDenied: boolean
    }
    | undefined
  private closedSeq: number | undefined
  /** A read answered `closed` with nothing more: its reader has the whole log. */
  private closeDelivered = false
  /** Wakes readers when output, the exit or the close arrive. */
  readonly changes = new ChangeSignal()
  /** Highest `afterSeq` a reader has presented: everything up to it was seen. */
  ackedSeq = 0
  /** Highest seq a reader or follower was shown: output after it may still join the newest chunk. */
  private shownSeq = 0
  private unacknowledgedBytesValue = 0

  readonly capacityBytes: number
  /** With backpressure: the unread output at which the producer is paused (it goes on once half is read). */
  readonly windowBytes: number
  /** When set, unread output is never evicted: the producer is paused instead. */
  backpressure: boolean
  private readonly followers = new Set<Follower>()
  private readonly followerLagBytes: number
  /** Where the output's bytes live, when they were read into reused memory. */
  private readonly memory: OutputMemory | undefined
  /**
   * Whether reads and followers get views of that memory they must not keep:
   * a read's chunks until a read acknowledges them, a follower's until it asks
   * for more. Otherwise every view handed out is theirs to keep.
   */
  private readonly lends: boolean

  constructor(
    capacityBytes: number,
    backpressure: boolean,
    options: {
      readonly followerLagBytes?: number
      readonly memory?: OutputMemory | undefined
      readonly lends?: boolean
      /** The backpressure window (default: the retention). */
      readonly windowBytes?: number | undefined
    } = {}
  ) {
    this.capacityBytes = capacityBytes
    this.windowBytes = options.windowBytes ?? capacityBytes
    this.backpressure = backpressure
    this.followerLagBytes = options.followerLagBytes ?? Defaults.processTable.followerLagBytes
    this.memory = options.memory
    this.lends = options.lends ?? false
  }

  /** Registers a follower at `afterSeq`: output it has not taken outlives the retention, up to a bound. */
  follow(afterSeq: number): Follower {
    const follower = { cursor: afterSeq }
    this.followers.add(follower)
    return follower
  }

  /** The follower took everything up to `cursor`: what it held may go. */
  advance(follower: Follower, cursor: number): void {
    follower.cursor = Math.max(follower.cursor, cursor)
    this.evict()
  }

  unfollow(follower: Follower): void {
    this.followers.delete(follower)
    this.evict()
  }

  private slowestFollower(): number {
    let slowest = Infinity
    for (const follower of this.followers) slowest = Math.min(slowest, follower.cursor)
    return slowest
  }

  get nextSeq(): number {
    return this.nextSeqValue
  }
  get exited(): boolean {
    return this.exitEvent !== undefined
  }
  get closed(): boolean {
    return this.closedSeq !== undefined
  }

  /** Whether a reader has seen the end: a read answered `closed` with no chunks, or acknowledged past the close. */
  get endSeen(): boolean {
    return this.closedSeq !== undefined && (this.closeDelivered || this.ackedSeq >= this.closedSeq)
  }

  /** Output bytes retained now. */
  get retainedBytes(): number {
    return this.retainedBytesValue
  }

  /**
   * Bytes retained that no reader has acknowledged yet (a `process/read` past
   * them, or a `process/acknowledge`); following the events acknowledges
   * nothing.
   */
  get unacknowledgedBytes(): number {
    return this.unacknowledgedBytesValue
  }

  /**
   * Output that arrives while nobody has been shown the newest chunk yet, and
   * lands right after it in the same slab (a fast writer read faster than it
   * is consumed), widens that chunk instead, up to one read buffer: a reader
   * that falls behind finds fewer, larger chunks, and everything done per
   * chunk (a wake-up, a frame, a turn of a consume loop) is done less often.
   */
  appendOutput(stream: Protocol.OutputStream, chunk: Uint8Array): void {
    if (!this.joinNewest(stream, chunk)) this.retained.push({ seq: this.nextSeqValue++, stream, chunk })
    this.retainedBytesValue += chunk.length
    this.unacknowledgedBytesValue += chunk.length
    this.evict()
    this.changes.notify()
  }

  private joinNewest(stream: Protocol.OutputStream, chunk: Uint8Array): boolean {
    const index = this.retained.length - 1
    if (index < this.head || this.memory === undefined) return false
    const newest = this.retained[index]!
    if (
      newest.stream !== stream || newest.seq !== this.nextSeqValue - 1 || newest.seq <= this.shownSeq ||
      newest.seq <= this.ackedSeq || newest.chunk.length + chunk.length > Defaults.pipes.readBufferBytes
    ) return false
    const joined = this.memory.join(newest.chunk, chunk)
    if (joined === undefined) return false
    this.retained[index] = { seq: newest.seq, stream, chunk: joined }
    return true
  }

  /** Whoever gets the chunks up to `seq` sees them as they are now: later output no longer joins them. */
  private shown(seq: number): void {
    if (seq > this.shownSeq) this.shownSeq = seq
  }

  markExited(exitCode: number, signal: string | null, sandboxDenied = false): void {
    if (this.exitEvent !== undefined) return
    this.exitEvent = { seq: this.nextSeqValue++, exitCode, signal, sandboxDenied }
    this.changes.notify()
  }

  markClosed(): void {
    if (this.closedSeq !== undefined || this.exitEvent === undefined) return
    this.closedSeq = this.nextSeqValue++
    this.keepRetainedApart()
    this.changes.notify()
  }

  /**
   * Copies what a closed process still retains out of the slabs it shares with
   * its past output, so that a few retained bytes do not pin a slab for as
   * long as the process is remembered.
   */
  private keepRetainedApart(): void {
    const memory = this.memory
    if (memory === undefined) return
    for (let i = this.head; i < this.retained.length; i++) {
      const entry = this.retained[i]!
      if (!memory.holds(entry.chunk)) continue
      this.retained[i] = { ...entry, chunk: Buffer.copyBytesFrom(entry.chunk) }
      memory.drop(entry.chunk, this.isLetGo(entry.seq))
    }
  }

  /** Whether no reader or follower can hold a view of the chunk `seq` any more. */
  private isLetGo(seq: number): boolean {
    return seq <= this.ackedSeq && seq <= this.slowestFollower()
  }

  /** `chunk` goes out to someone who may keep it (not a lending reader): its memory is never reused. */
  private handOut(chunk: Uint8Array, lent: boolean): void {
    if (!lent) this.memory?.escape(chunk)
  }

  /** The output retained now, in seq order. */
  retainedChunks(): ReadonlyArray<Protocol.ProcessChunk> {
    this.shown(this.nextSeqValue - 1)
    return this.retained.slice(this.head)
  }

  /** Records that a reader has seen everything up to `afterSeq`. */
  acknowledge(afterSeq: number): void {
    if (afterSeq > this.ackedSeq) {
      const acked = Math.min(afterSeq, this.nextSeqValue - 1)
      for (let i = this.firstIndexAfter(this.ackedSeq); i < this.retained.length; i++) {
        const chunk = this.retained[i]!
        if (chunk.seq > acked) break
        this.unacknowledgedBytesValue -= chunk.chunk.length
      }
      this.ackedSeq = acked
      if (this.backpressure) this.evict()
    }
  }

  /** Stops holding unread output back: from now on the oldest output is evicted. */
  releaseBackpressure(): void {
    this.backpressure = false
    this.evict()
  }

  /**
   * The `process/read` answer for a cursor, without waiting. `lent`: the
   * reader copies what it keeps before it reads again (as every reader of a
   * lending log does), so its chunks may be views of reused memory.
   */
  read(afterSeq: number, maxBytes: number | null, lent = false): Protocol.ReadResult {
    const lends = this.lends || lent
    const chunks: Array<Protocol.ProcessChunk> = []
    let bytes = 0
    let index = this.firstIndexAfter(afterSeq)
    for (; index < this.retained.length; index++) {
      const chunk = this.retained[index]!
      if (maxBytes !== null && chunks.length > 0 && bytes + chunk.chunk.length > maxBytes) break
      chunks.push(chunk)
      bytes += chunk.chunk.length
      // lent until acknowledged: what was acknowledged already may go at any time
      this.handOut(chunk.chunk, lends && chunk.seq > this.ackedSeq)
    }
    if (chunks.length > 0) this.shown(chunks[chunks.length - 1]!.seq)
    const reachedEnd = index === this.retained.length
    // an answer that reaches the end of the log moves its reader past the exit
    // and the close as well, as Codex's server does: its client, resuming,
    // takes `nextSeq - 1` of a closed process for the close's seq
    const nextSeq = reachedEnd ? this.nextSeqValue : chunks[chunks.length - 1]!.seq + 1
    const dropped = this.droppedAfter(afterSeq)
    // the reader's last read: it has the close and nothing more to take (one that still gets chunks reads again)
    if (reachedEnd && this.closedSeq !== undefined && chunks.length === 0) this.closeDelivered = true
    return {
      chunks,
      nextSeq,
      exited: this.exitEvent !== undefined,
      exitCode: this.exitEvent?.exitCode ?? null,
      // closed only when this answer reaches the end of the log: a reader that
      // stops at `closed` has then seen everything
      closed: this.closedSeq !== undefined && reachedEnd,
      failure: null,
      signal: this.exitEvent?.signal ?? null,
      sandboxDenied: this.exitEvent?.sandboxDenied ?? false,
      ...(dropped.bytes > 0 ? { dropped } : {})
    }
  }

  /**
   * Whether a read at `afterSeq` should answer now rather than long-poll: there
   * is output after it, the process is closed, or its exit is new to it.
   * Checked at every change while readers wait, so it builds nothing.
   */
  isReadyAfter(afterSeq: number): boolean {
    const newest = this.retained[this.retained.length - 1]
    return (this.retained.length > this.head && newest!.seq > afterSeq) || this.closedSeq !== undefined ||
      (this.exitEvent !== undefined && this.exitEvent.seq > afterSeq)
  }

  /** Every retained event (output, exit, close) with a seq above `afterSeq`, in seq order. */
  eventsAfter(afterSeq: number): Array<ProcessEvent> {
    const events: Array<ProcessEvent> = []
    const dropped = this.droppedAfter(afterSeq)
    if (dropped.chunks > 0) events.push({ _tag: "Dropped", seq: this.lastEvictedSeq(), ...dropped })
    for (let i = this.firstIndexAfter(afterSeq); i < this.retained.length; i++) {
      const { seq, stream, chunk } = this.retained[i]!
      // a follower holds what it was given until it asks for more
      this.handOut(chunk, this.lends)
      events.push({ _tag: "Output", seq, stream, chunk })
    }
    this.shown(this.nextSeqValue - 1)
    if (this.exitEvent !== undefined && this.exitEvent.seq > afterSeq) {
      const { exitCode, sandboxDenied, seq, signal } = this.exitEvent
      const index = events.findIndex((event) => event.seq > seq)
      events.splice(index === -1 ? events.length : index, 0, { _tag: "Exited", seq, exitCode, signal, sandboxDenied })
    }
    if (this.closedSeq !== undefined && this.closedSeq > afterSeq) {
      events.push({ _tag: "Closed", seq: this.closedSeq })
    }
    return events
  }

  private lastEvictedSeq(): number {
    return this.evictions[this.evictions.length - 1]?.seq ?? this.foldedEvictions.lastSeq
  }

  private firstIndexAfter(afterSeq: number): number {
    // chunks are in seq order: binary search the first with seq > afterSeq
    let low = this.head
    let high = this.retained.length
    while (low < high) {
      const mid = (low + high) >>> 1
      if (this.retained[mid]!.seq <= afterSeq) low = mid + 1
      else high = mid
    }
    return low
  }

  private evict(): void {
    const followed = this.slowestFollower()
    while (this.retainedBytesValue > this.capacityBytes && this.head < this.retained.length) {
      const oldest = this.retained[this.head]!
      if (this.backpressure && oldest.seq > this.ackedSeq) break
      // a follower has not taken it yet: kept, unless the follower fell too far behind
      if (oldest.seq > followed && this.retainedBytesValue <= this.capacityBytes + this.followerLagBytes) break
      this.retained[this.head] = undefined as never
      this.head++
      this.retainedBytesValue -= oldest.chunk.length
      if (oldest.seq > this.ackedSeq) this.unacknowledgedBytesValue -= oldest.chunk.length
      this.memory?.drop(oldest.chunk, oldest.seq <= this.ackedSeq && oldest.seq <= followed)
      this.recordEviction(oldest)
    }
    if (this.head > 1024 && this.head * 2 > this.retained.length) {
      this.retained.splice(0, this.head)
      this.head = 0
    }
  }

  private recordEviction(chunk: Protocol.ProcessChunk): void {
    this.evictions.push({ seq: chunk.seq, bytes: chunk.chunk.length })
    if (this.evictions.length > evictionMemory * 2) {
      for (const old of this.evictions.splice(0, evictionMemory)) {
        this.foldedEvictions.bytes += old.bytes
        this.foldedEvictions.chunks++
        this.foldedEvictions.lastSeq = old.seq
      }
    }
  }

  /**
   * Output evicted with a seq above `afterSeq`. Exact for a reader within the
   * last 4096 evictions; beyond that the older part counts whole (an upper bound).
   */
  private droppedAfter(afterSeq: number): Protocol.Dropped {
    let bytes = 0
    let chunks = 0
    for (let i = this.evictions.length - 1; i >= 0; i--) {
      const eviction = this.evictions[i]!
      if (eviction.seq <= afterSeq) return { bytes, chunks }
      bytes += eviction.bytes
      chunks++
    }
    if (afterSeq < this.foldedEvictions.lastSeq) {
      bytes += this.foldedEvictions.bytes
      chunks += this.foldedEvictions.chunks
    }
    return { bytes, chunks }
  }
}

/**
 * `process/read` on a log: answers at once when there is output, the close, or
 * an exit new to this cursor; otherwise waits for one of them up to `waitMs`.
 * `lent`: the reader copies what it keeps before it reads again.
 */
export const longPollRead = (
  log: ProcessLog,
  params: Protocol.ReadParams,
  lent = false
): Effect.Effect<Protocol.ReadResult> => {
  const afterSeq = params.afterSeq ?? 0
  const maxBytes = params.maxBytes ?? null
  const waitMs = params.waitMs ?? 0
  return Effect.suspend(() => {
    if (waitMs === 0 || log.isReadyAfter(afterSeq)) return Effect.succeed(log.read(afterSeq, maxBytes, lent))
    return log.changes.untilWithin(() => log.isReadyAfter(afterSeq), waitMs).pipe(
      Effect.andThen(Effect.sync(() => log.read(afterSeq, maxBytes, lent)))
    )
  })
}

/**
 * The log's events from `afterSeq` on, ending after the close. The stream
 * follows the log: output it has not pulled yet outlives the retention (up to
 * `followerLagBytes`; past that it gets a `Dropped` event). Following the
 * events is not reading: it acknowledges nothing, so it never releases
 * backpressure meant for the reader.
 */
export const eventStream = (log: ProcessLog, afterSeq: number): Stream.Stream<ProcessEvent> =>
  Stream.unwrap(Effect.map(
    Effect.acquireRelease(Effect.sync(() => log.follow(afterSeq)), (follower) =>
      Effect.sync(() => log.unfollow(follower))),
    (follower) =>
      followEvents(log, follower, afterSeq)
  ))

const followEvents = (log: ProcessLog, follower: Follower, afterSeq: number): Stream.Stream<ProcessEvent> =>
  Stream.paginate(afterSeq, (cursor) =>
    Effect.suspend(() => {
      // asked for more: everything up to the cursor was taken
      log.advance(follower, cursor)
      return nextPage(log, cursor)
    }))

/**
 * The events after `cursor`, once there are some, and the cursor to go on
 * from (none after the close). Written without a generator: a busy stream
 * takes a page per chunk of output.
 */
const nextPage = (
  log: ProcessLog,
  cursor: number
): Effect.Effect<readonly [Array<ProcessEvent>, Option.Option<number>]> => {
  const page = (batch: Array<ProcessEvent>) => {
    const last = batch[batch.length - 1]!
    return Effect.succeed([batch, last._tag === "Closed" ? Option.none() : Option.some(last.seq)] as const)
  }
  const batch = log.eventsAfter(cursor)
  if (batch.length > 0) return page(batch)
  return Effect.flatMap(log.changes.until(() => log.nextSeq - 1 > cursor), () => {
    const after = log.eventsAfter(cursor)
    // what came was evicted already: wait for what follows it
    return after.length > 0 ? page(after) : nextPage(log, log.nextSeq - 1)
  })
}
