/**
 * What the remote client knows of each process from the server's
 * notifications: one record per process this client started, holding the events `events` replays and, for a process whose
 * output the server pushes for our reads, the cache those reads are answered
 * from. Notifications for any other process are dropped: a server cannot
 * make this client hold records it never asked for.
 *
 * Bounded in entries and bytes, at O(log n) or amortised O(1) a notification:
 * notified output per process (oldest dropped), one exit and one close per
 * process (the first wins), closed histories and records by count (oldest
 * forgotten, but not an open one an `events` stream follows: the records
 * exceed their bound by those at most), streamed caches by count, entries and
 * bytes (past them reads ask the server), and the notifications held while an
 * id of an open process is started again (until the answer says whose they
 * are).
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type { ProcessEvent } from "../../Executor.ts"
import { ChangeSignal } from "../changeSignal.ts"
import * as Defaults from "../defaults.ts"
import { OutputMemory } from "../outputMemory.ts"
import type { BinaryMemory } from "../rpc/transport.ts"
import { PushedOutput } from "./pushedOutput.ts"
import { SeqQueue } from "./seqQueue.ts"

type Output = Extract<ProcessEvent, { readonly _tag: "Output" }>
type Exited = Extract<ProcessEvent, { readonly _tag: "Exited" }>
type Closed = Extract<ProcessEvent, { readonly _tag: "Closed" }>

/**
 * The events of one process known from notifications, in seq order: its
 * output (bounded in chunks and bytes, oldest dropped; empty chunks are not
 * kept), its exit and its close.
 */
export class NotifiedEvents {
  private readonly outputs = new SeqQueue<Output>()
  private exit: Exited | undefined
  /** Once known, the newest event: nothing at or after its seq is taken in. */
  private close: Closed | undefined
  /** The newest seq of output dropped to the bounds: older output is not taken in again. */
  private droppedThrough = 0
  /** Output bytes held. */
  bytes = 0
  /** Whether the record was forgotten before the close: nothing more comes. */
  private forgotten = false
  private readonly changes = new ChangeSignal()

  /** Whether the close is held: nothing more comes. */
  get closed(): boolean {
    return this.close !== undefined
  }

  /** Whether the exit is held. */
  get exited(): boolean {
    return this.exit !== undefined
  }

  /** Whether nothing more comes while no close is held: the record was forgotten (its followers fail). */
  get ended(): boolean {
    return this.forgotten && this.close === undefined
  }

  /** The record was forgotten: wakes the followers, which fail once they took what is held. */
  end(): void {
    this.forgotten = true
    this.changes.notify()
  }

  /** Entries held (output chunks, exit, close). */
  get size(): number {
    return this.outputs.length + (this.exit === undefined ? 0 : 1) + (this.close === undefined ? 0 : 1)
  }

  /** The newest seq known, 0 when none. */
  get newestSeq(): number {
    return Math.max(this.outputs.last?.seq ?? 0, this.exit?.seq ?? 0, this.close?.seq ?? 0)
  }

  /**
   * Takes in one event, unless it repeats or contradicts what is held (each
   * seq is one event, nothing comes at or after the close; a `Dropped` is
   * not kept); then the followers look again whether what they wait for came.
   */
  add(event: ProcessEvent): void {
    switch (event._tag) {
      case "Exited":
        // an output held at its seq, or the close at or before it, was the event of that seq
        if (this.exit === undefined && this.outputs.indexOf(event.seq) === -1 && !this.afterClose(event.seq)) {
          this.exit = event
        }
        break
      case "Closed":
        // the close is a process's last event: it follows everything held
        if (this.close === undefined && event.seq > this.newestSeq) this.close = event
        break
      case "Output":
        this.addOutput(event)
        break
    }
    this.changes.notify()
  }

  /** Whether `seq` is at or after the close: nothing comes after a process's close. */
  private afterClose(seq: number): boolean {
    return this.close !== undefined && seq >= this.close.seq
  }

  private addOutput(event: Output): void {
    if (event.chunk.length === 0 || event.seq <= this.droppedThrough) return
    if (this.exit?.seq === event.seq || this.afterClose(event.seq)) return
    if (!this.outputs.insert(event, Defaults.client.notifiedReorderWindow)) return
    this.bytes += event.chunk.length
    while (
      this.bytes > Defaults.client.notifiedOutputBytes ||
      this.outputs.length > Defaults.client.notifiedOutputChunks
    ) {
      const oldest = this.outputs.shift()!
      this.bytes -= oldest.chunk.length
      this.droppedThrough = oldest.seq
    }
  }

  /** The events after `seq`, in seq order (the close, once known, last). */
  after(seq: number): Array<ProcessEvent> {
    const events: Array<ProcessEvent> = this.outputs.after(seq)
    for (const terminal of [this.exit, this.close]) {
      if (terminal === undefined || terminal.seq <= seq) continue
      // at most two, and nearly always at the end: a backwards step is cheap
      let index = events.length
      while (index > 0 && events[index - 1]!.seq > terminal.seq) index--
      events.splice(index, 0, terminal)
    }
    return events
  }

  /** Completes once an event after `seq` arrived, or the record was forgotten. */
  untilAfter(seq: number): Effect.Effect<void> {
    return this.changes.until(() => this.newestSeq > seq || this.forgotten)
  }
}

/** One process as this client knows it. */
export class ProcessRecord {
  readonly events = new NotifiedEvents()
  /** Whether pushed output belongs in `events` (the process was started without `outputNotifications: false`). */
  showsOutput = false
  /** Pushed output our reads are answered from, while the process streams. */
  pushed: PushedOutput | undefined
  /** Streams of `events` following it now. */
  followers = 0
  /**
   * The link's connection (`Link.connections`) its notifications are known
   * complete on: the one it started on, or the one on which the server last
   * said where it stands. On a later one its followers ask once.
   */
  checkedConnection: number
  /**
   * The link's session (`Link.sessions`) the server answered its start in; 0
   * until then. Once the link began another, the server no longer has it.
   */
  session = 0

  constructor(connection: number) {
    this.checkedConnection = connection
  }

  /** Whether it is kept past the bound of records: followed, and not closed (its followers wait for more). */
  get pinned(): boolean {
    return this.followers > 0 && !this.events.closed
  }
}

/** How a process is recorded as it starts. */
export interface StartOptions {
  /** Whether its output shows in `events`. */
  readonly showsOutput: boolean
  /** Whether its output streams to a cache for our reads. */
  readonly streams: boolean
  /** The link's connection it starts on (`Link.connections`; 0 when none is named). */
  readonly connection?: number | undefined
}

/**
 * The notifications of a process id held while a start of that id is under
 * way and a process of ours under it is open: until the answer, they may be
 * the old process's (the server refuses the start) or the new one's (it
 * accepts: it forgot the old one, whose close this client never saw).
 */
interface HeldNotifications {
  /** Starts of the id under way. */
  starts: number
  readonly events: Array<ProcessEvent>
  /** Output bytes held. */
  bytes: number
}

/**
 * What the client holds, in entries and bytes: what a test asserts to show
 * that no server can make it grow without bound.
 */
export interface RecordsFootprint {
  readonly records: number
  readonly closedHistories: number
  readonly streamed: number
  readonly notifiedEntries: number
  readonly notifiedBytes: number
  readonly pushedEntries: number
  readonly pushedBytes: number
  /** Notifications held while ids are started again (`startingAgain`). */
  readonly heldEntries: number
  readonly heldBytes: number
}

/**
 * An output event's chunk in memory of its own when it is a small view of a
 * larger buffer (a frame `ws` assembled from a socket read of up to 64 KiB, a
 * frame in a slab): a history or a pushed cache of a thousand 1-byte chunks
 * must not keep a thousand of those alive. The bounds count
 * chunk bytes; this makes them what is held. A chunk that is most of its
 * buffer (a stream's output) is kept as it is.
 */
const ownBytes = (event: Output): Uint8Array =>
  event.chunk.byteLength * 4 < event.chunk.buffer.byteLength ? new Uint8Array(event.chunk) : event.chunk

/** Every process record of one remote executor. */
export class ProcessRecords {
  /** Records kept at all, running or closed (`Defaults.client.maxRecords`; tests lower it). */
  private readonly maxRecords: number

  constructor(options: { readonly maxRecords?: number | undefined } = {}) {
    this.maxRecords = options.maxRecords ?? Defaults.client.maxRecords
  }

  /**
   * Where binary frames are assembled: slabs a stream's frames cycle through,
   * a frame's chunk going back once its reader read past it (or at once when
   * nobody keeps it). Nothing outside the pushed caches holds a view of it:
   * histories and readers that keep get copies. A small frame gets memory of
   * its own, and should the slabs ever hold much more than the caches count
   * (chunks of a slow reader pinning slabs the streams around them left),
   * the caches take copies and the slabs go.
   */
  private readonly memory = new OutputMemory("always")
  private readonly frames = this.memory.pipe()
  /** The slabs held when the caches were last weighed against them. */
  private weighedSlabs = 0
  /** The memory a transport assembles binary frames in. */
  readonly frameMemory: BinaryMemory = {
    reserve: (length) =>
      length < Defaults.client.minSlabFrameBytes ? Buffer.allocUnsafeSlow(length) : this.frames.reserve(length),
    release: (frame) => this.releaseFrame(frame)
  }
  /** A frame from `frameMemory` that nothing keeps (not output, or output nobody caches). */
  releaseFrame(frame: Uint8Array): void {
    this.memory.drop(frame, true)
  }

  /**
   * Once a slab more is held: when the slabs hold over twice what the caches
   * count (and more than a few), every cache copies its chunks out of them.
   */
  private weighSlabs(): void {
    const slabs = this.memory.slabCount
    if (slabs <= this.weighedSlabs) return
    this.weighedSlabs = slabs
    const { pooledSlabs, slabBytes } = Defaults.pipes
    if (slabs <= pooledSlabs / 2) return
    let cached = 0
    for (const processId of this.streaming) cached += this.records.get(processId)?.pushed?.bytes ?? 0
    if (slabs * slabBytes <= 2 * cached + 2 * slabBytes) return
    for (const processId of this.streaming) this.records.get(processId)?.pushed?.ownChunks()
    this.weighedSlabs = this.memory.slabCount
  }

  /** Oldest first: past `maxRecords` the oldest is forgotten. */
  private readonly records = new Map<string, ProcessRecord>()
  /** Closed processes, oldest first: past the limit the oldest record is forgotten. */
  private readonly closed = new Set<string>()
  /** Processes with a pushed-output cache, the one read least recently first. */
  private readonly streaming = new Set<string>()
  /** Ids started again while a process of ours under them is open: their notifications, until the answer. */
  private readonly held = new Map<string, HeldNotifications>()

  /** The record of `processId`, if this client started it (and did not forget it since). */
  get(processId: string): ProcessRecord | undefined {
    return this.records.get(processId)
  }

  /**
   * Records a process about to start, in a record of its own (one of a
   * previous process with the same id goes): whether its output shows in
   * `events`, and whether its output streams to a cache for our reads (the
   * least recently read stream falls back to plain reads past the limit).
   */
  starting(processId: string, options: StartOptions): void {
    this.forget(processId)
    const record = new ProcessRecord(options.connection ?? 0)
    this.records.set(processId, record)
    if (this.records.size > this.maxRecords) this.forgetOldest()
    if (options.showsOutput) record.showsOutput = true
    if (options.streams) {
      record.pushed = new PushedOutput(this.memory)
      this.touch(processId)
      if (this.streaming.size > Defaults.client.maxStreamed) this.stopStreaming(this.streaming.values().next().value!)
    }
  }

  /** Whether `processId` names a process this client started and has not seen close. */
  isOpen(processId: string): boolean {
    return this.records.has(processId) && !this.closed.has(processId)
  }

  /**
   * Forgets the oldest record that nobody follows while it is open (a
   * follower expects every event to the close). Followed ones are passed
   * over and moved to the end, so the next look starts past them; the
   * records exceed their bound by the followed ones at most.
   */
  private forgetOldest(): void {
    const passed: Array<[string, ProcessRecord]> = []
    for (const entry of this.records) {
      if (entry[1].pinned) {
        passed.push(entry)
        continue
      }
      this.forget(entry[0])
      break
    }
    for (const [processId, record] of passed) {
      this.records.delete(processId)
      this.records.set(processId, record)
    }
  }

  /** Registers a follower of `processId`'s events: its record is not forgotten to the bound while it is open. */
  follow(processId: string): ProcessRecord | undefined {
    const record = this.records.get(processId)
    if (record !== undefined) record.followers++
    return record
  }

  /**
   * A start of `processId` is under way while a process of ours under it is
   * open: its notifications are held until the answer says whose they are.
   */
  startingAgain(processId: string): void {
    const held = this.held.get(processId)
    if (held !== undefined) held.starts++
    else this.held.set(processId, { starts: 1, events: [], bytes: 0 })
  }

  /**
   * A start of `startingAgain` answered: accepted (the server forgot the old
   * process), the new process gets a record of its own (the old one's
   * followers fail); refused (or unknown), the old record stays. Once no such
   * start is under way, what was held goes to the record that is left.
   */
  startAnswered(processId: string, accepted: StartOptions | undefined): void {
    const held = this.held.get(processId)
    if (accepted !== undefined) this.starting(processId, accepted)
    if (held === undefined || --held.starts > 0) return
    this.held.delete(processId)
    for (const event of held.events) this.add(processId, event)
  }

  /** Holds a notification of an id started again; past the bounds it is dropped (readers ask the server). */
  private hold(held: HeldNotifications, notified: ProcessEvent, framed: boolean): void {
    const output = notified._tag === "Output" ? notified : undefined
    const fits = held.events.length < Defaults.client.maxHeldNotifications &&
      held.bytes + (output?.chunk.length ?? 0) <= Defaults.client.maxHeldNotificationBytes
    if (fits) {
      held.events.push(
        output !== undefined && framed ? { ...output, chunk: Buffer.copyBytesFrom(output.chunk) } : notified
      )
      held.bytes += output?.chunk.length ?? 0
    }
    if (framed) this.releaseFrame(output!.chunk)
  }

  /** Forgets a process (it did not start, it is the oldest past a bound, or another took its id): followers end. */
  forget(processId: string): void {
    const record = this.records.get(processId)
    record?.events.end()
    record?.pushed?.release()
    this.records.delete(processId)
    this.streaming.delete(processId)
    this.closed.delete(processId)
  }

  /** The pushed-output cache of `processId`, if it streams; marks it as read most recently. */
  pushedFor(processId: string): PushedOutput | undefined {
    const pushed = this.records.get(processId)?.pushed
    if (pushed !== undefined) this.touch(processId)
    return pushed
  }

  /** Reads of `processId` go to the server from now on. */
  stopStreaming(processId: string): void {
    const record = this.records.get(processId)
    record?.pushed?.release()
    if (record !== undefined) record.pushed = undefined
    this.streaming.delete(processId)
  }

  /** A reader has everything of `processId`: its record counts as a closed history. */
  drained(processId: string): void {
    this.stopStreaming(processId)
    if (this.records.has(processId)) this.closedHistory(processId)
  }

  /** The link was lost: every reader waiting for a push looks again (it reads from the server now). */
  linkLost(): void {
    for (const processId of this.streaming) this.records.get(processId)?.pushed?.wake()
  }

  /**
   * Takes in one event the server notified; a process this client does not
   * know is not recorded. An output chunk in frame memory is the pushed
   * cache's alone: a history gets a copy, and a chunk nothing caches goes back
   * at once.
   */
  add(processId: string, notified: ProcessEvent): void {
    const record = this.records.get(processId)
    const framed = notified._tag === "Output" && this.memory.holds(notified.chunk)
    const held = this.held.get(processId)
    if (held !== undefined) this.hold(held, notified, framed)
    else if (record !== undefined) this.record(processId, record, notified, framed)
    else if (framed) this.releaseFrame(notified.chunk)
  }

  private record(processId: string, record: ProcessRecord, notified: ProcessEvent, framed: boolean): void {
    // what the cache keeps: a frame's memory, or a chunk as `ownBytes` leaves it
    const kept = notified._tag === "Output" && !framed ? { ...notified, chunk: ownBytes(notified) } : notified
    if (notified._tag !== "Output") record.events.add(notified)
    else if (record.showsOutput) {
      record.events.add(framed ? { ...notified, chunk: Buffer.copyBytesFrom(notified.chunk) } : kept)
    }
    const pushed = record.pushed
    const cached = pushed !== undefined && pushed.add(kept)
    if (framed && !cached) this.releaseFrame((notified as Output).chunk)
    if (framed && cached) this.weighSlabs()
    // nobody reads it any more (the loop gave up on a pipe held open), or the
    // server pushes more than any window: stop caching, reads ask the server
    if (
      pushed !== undefined &&
      (pushed.bytes > pushed.maxBytes || pushed.size > Defaults.client.maxCachedEntriesPerProcess)
    ) this.stopStreaming(processId)
    if (notified._tag === "Closed") this.closedHistory(processId)
  }

  /** What the records hold now. */
  footprint(): RecordsFootprint {
    let notifiedEntries = 0
    let notifiedBytes = 0
    let pushedEntries = 0
    let pushedBytes = 0
    for (const record of this.records.values()) {
      notifiedEntries += record.events.size
      notifiedBytes += record.events.bytes
      pushedEntries += record.pushed?.size ?? 0
      pushedBytes += record.pushed?.bytes ?? 0
    }
    let heldEntries = 0
    let heldBytes = 0
    for (const held of this.held.values()) {
      heldEntries += held.events.length
      heldBytes += held.bytes
    }
    return {
      records: this.records.size,
      closedHistories: this.closed.size,
      streamed: this.streaming.size,
      notifiedEntries,
      notifiedBytes,
      pushedEntries,
      pushedBytes,
      heldEntries,
      heldBytes
    }
  }

  /** Counts `processId` among the closed histories (once: a set keeps its first place). */
  private closedHistory(processId: string): void {
    this.closed.add(processId)
    if (this.closed.size > Defaults.client.keptHistories) this.forget(this.closed.values().next().value!)
  }

  private touch(processId: string): void {
    this.streaming.delete(processId)
    this.streaming.add(processId)
  }
}
