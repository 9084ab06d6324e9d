/**
 * What the remote client knows of each process from the server's
 * notifications: one record per process, holding the events `events` replays
 * and, for a process whose output the server pushes for our reads, the cache
 * those reads are answered from. Bounded: closed histories and streamed
 * caches are kept up to a count, and a cache nobody reads stops growing.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type { ProcessEvent } from "../../Executor.ts"
import { ChangeSignal } from "../changeSignal.ts"
import * as Defaults from "../defaults.ts"
import { PushedOutput } from "./pushedOutput.ts"

/** The events of one process known from notifications, in seq order; output bounded in bytes (oldest dropped). */
export class NotifiedEvents {
  readonly events: Array<ProcessEvent> = []
  private outputBytes = 0
  private readonly changes = new ChangeSignal()

  add(event: ProcessEvent): void {
    let index = this.events.length
    while (index > 0 && this.events[index - 1]!.seq > event.seq) index--
    if (this.events[index - 1]?.seq === event.seq) return
    this.events.splice(index, 0, event)
    if (event._tag === "Output") {
      this.outputBytes += event.chunk.length
      while (this.outputBytes > Defaults.client.notifiedOutputBytes) {
        const oldest = this.events.findIndex((e) => e._tag === "Output")
        this.outputBytes -= (this.events[oldest] as { chunk: Uint8Array }).chunk.length
        this.events.splice(oldest, 1)
      }
    }
    this.changes.notify()
  }

  after(seq: number): Array<ProcessEvent> {
    return this.events.filter((event) => event.seq > seq)
  }

  /** Completes once an event after `seq` arrived. */
  untilAfter(seq: number): Effect.Effect<void> {
    return this.changes.until(() => this.events.some((event) => event.seq > seq))
  }
}

/** One process as this client knows it. */
export class ProcessRecord {
  readonly events = new NotifiedEvents()
  /** Whether pushed output belongs in `events` (the process was started without `outputNotifications: false`). */
  showsOutput = false
  /** Pushed output our reads are answered from, while the process streams. */
  pushed: PushedOutput | undefined
}

/** Every process record of one remote executor. */
export class ProcessRecords {
  private readonly records = new Map<string, ProcessRecord>()
  /** Closed processes, oldest first: past the limit the oldest record is forgotten. */
  private readonly closed = new Set<string>()
  /** Processes with a pushed-output cache, the one read least recently first. */
  private readonly streaming = new Set<string>()

  /** The record of `processId`, made on first use. */
  of(processId: string): ProcessRecord {
    let record = this.records.get(processId)
    if (record === undefined) {
      record = new ProcessRecord()
      this.records.set(processId, record)
    }
    return record
  }

  /**
   * Records a process about to start: whether its output shows in `events`, and
   * whether its output streams to a cache for our reads (the least recently
   * read stream falls back to plain reads past the limit).
   */
  starting(processId: string, options: { readonly showsOutput: boolean; readonly streams: boolean }): void {
    const record = this.of(processId)
    if (options.showsOutput) record.showsOutput = true
    if (options.streams) {
      record.pushed = new PushedOutput()
      this.touch(processId)
      if (this.streaming.size > Defaults.client.maxStreamed) this.stopStreaming(this.streaming.values().next().value!)
    }
  }

  /** Forgets a process that did not start. */
  forget(processId: string): void {
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
    if (record !== undefined) record.pushed = undefined
    this.streaming.delete(processId)
  }

  /** Takes in one event notified by the server. */
  add(processId: string, event: ProcessEvent): void {
    const record = this.of(processId)
    if (record.pushed !== undefined) {
      record.pushed.add(event)
      // nobody reads it any more (the loop gave up on a pipe held open): stop caching, reads ask the server
      if (record.pushed.bytes > Defaults.client.maxCachedBytesPerProcess) this.stopStreaming(processId)
    }
    if (event._tag !== "Output" || record.showsOutput) record.events.add(event)
    if (event._tag === "Closed") {
      this.closed.add(processId)
      if (this.closed.size > Defaults.client.keptHistories) {
        const oldest = this.closed.values().next().value!
        this.closed.delete(oldest)
        this.records.delete(oldest)
        this.streaming.delete(oldest)
      }
    }
  }

  private touch(processId: string): void {
    this.streaming.delete(processId)
    this.streaming.add(processId)
  }
}
