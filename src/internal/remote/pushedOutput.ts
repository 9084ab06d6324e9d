/**
 * The remote executor's cache of what an exec-server pushed for one process
 * (output, exit, close), so that a read whose next chunks already arrived is
 * answered without a round trip. The server bounds it: with backpressure it
 * pushes at most a window beyond what the client acknowledged; the client
 * bounds it too (`ProcessRecords` stops caching past a count of entries or
 * bytes).
 *
 * A server pushes one process's events in seq order on one connection, so an
 * entry is kept only when it is newer than everything seen: a repeat (after a
 * resume) or anything at or before the reader's cursor is ignored. Every
 * operation costs O(log n) or amortised O(1), whatever the seqs are.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type { ProcessEvent } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import { ChangeSignal } from "../changeSignal.ts"
import * as Defaults from "../defaults.ts"
import type { OutputMemory } from "../outputMemory.ts"
import { SeqQueue } from "./seqQueue.ts"

export class PushedOutput {
  private readonly entries = new SeqQueue<ProcessEvent>()
  /**
   * The memory pushed frames were assembled in (slabs that cycle): a chunk of
   * it goes back once the reader read past it, is lent to a lending reader
   * (`Exec.run`) and copied for any other.
   */
  private readonly memory: OutputMemory | undefined

  constructor(memory?: OutputMemory) {
    this.memory = memory
  }

  /** The newest seq taken in or trimmed: anything at or before it is a repeat. */
  private newestSeq = 0
  private exit:
    | { readonly exitCode: number; readonly signal: string | null; readonly sandboxDenied: boolean }
    | undefined
  /** The close's seq, once pushed: nothing comes after it. */
  private closedSeq: number | undefined
  private readonly changes = new ChangeSignal()
  /** A wake-up of the waiting reader is due at the end of this turn of the event loop. */
  private wakeQueued = false
  /** The highest cursor already acknowledged to the server. */
  acknowledged = 0
  /** Output bytes the reader took since the last acknowledgement. */
  takenSinceAcknowledged = 0
  /** The server's window (`windowBytes` of the start), when it said. */
  windowBytes: number | undefined

  /** The output bytes this cache holds at most before it gives up: twice the server's window, within bounds. */
  get maxBytes(): number {
    const { maxCachedBytesPerProcess, maxCachedBytesPerProcessCeiling } = Defaults.client
    return Math.min(maxCachedBytesPerProcessCeiling, Math.max(maxCachedBytesPerProcess, 2 * (this.windowBytes ?? 0)))
  }
  /** Output bytes held. */
  bytes = 0

  /** Entries held (output, exit, close). */
  get size(): number {
    return this.entries.length
  }

  /** Takes in a pushed event; false when it was not kept (a repeat), its chunk then still the caller's. */
  add(event: ProcessEvent): boolean {
    if (event.seq <= this.newestSeq) return false
    this.newestSeq = event.seq
    if (event._tag === "Exited") {
      this.exit = { exitCode: event.exitCode, signal: event.signal, sandboxDenied: event.sandboxDenied }
    }
    if (event._tag === "Closed") this.closedSeq = event.seq
    this.entries.insert(event, 0)
    if (event._tag === "Output") this.bytes += event.chunk.length
    this.wakeSoon()
    return true
  }

  /**
   * Copies every chunk held in the memory into memory of its own, letting the
   * slabs go (never to be reused: the last answer's chunks may still be in the
   * reader's hands).
   */
  ownChunks(): void {
    const memory = this.memory
    if (memory === undefined) return
    this.entries.replaceAll((entry) => {
      if (entry._tag !== "Output" || !memory.holds(entry.chunk)) return entry
      memory.drop(entry.chunk, false)
      return { ...entry, chunk: Buffer.copyBytesFrom(entry.chunk) }
    })
  }

  /**
   * The cache is given up (its reader is done, or it holds too much): what it
   * holds goes back to the memory, never to be reused (the last answer's
   * chunks may still be in the reader's hands).
   */
  release(): void {
    for (let first = this.entries.shift(); first !== undefined; first = this.entries.shift()) {
      if (first._tag === "Output") this.memory?.drop(first.chunk, false)
    }
    this.bytes = 0
  }

  /**
   * Wakes the waiting reader once this turn of the event loop has taken in
   * every frame it read: a burst of frames makes one read, not one each.
   */
  private wakeSoon(): void {
    if (this.wakeQueued) return
    this.wakeQueued = true
    setImmediate(() => {
      this.wakeQueued = false
      this.changes.notify()
    })
  }

  /** Wakes the waiting reader now, to look again (the link was lost). */
  wake(): void {
    this.changes.notify()
  }

  /** Forgets everything up to `afterSeq`: the reader has it. */
  trim(afterSeq: number): void {
    for (let first = this.entries.first; first !== undefined && first.seq <= afterSeq; first = this.entries.first) {
      this.entries.shift()
      if (first._tag === "Output") {
        // the reader read past it: lent (or copied), nobody holds it any more
        this.memory?.drop(first.chunk, true)
        this.bytes -= first.chunk.length
        this.takenSinceAcknowledged += first.chunk.length
      }
    }
    this.newestSeq = Math.max(this.newestSeq, afterSeq)
  }

  /**
   * Whether the reader should tell the server how far it got: when it took a
   * quarter of the server's window since it last did (a paused server holds
   * more than half a window unread, so that much always comes before the
   * reader runs dry); at every read when the window is unknown.
   */
  get acknowledgementDue(): boolean {
    return this.windowBytes === undefined || this.takenSinceAcknowledged >= this.windowBytes / 4
  }

  /** Whether the entry after `afterSeq` (output, exit or close) arrived. */
  knowsNext(afterSeq: number): boolean {
    return this.entries.indexOf(afterSeq + 1) !== -1
  }

  /**
   * The read answer for `afterSeq` if the next entry (output, exit or close)
   * already arrived, with every seq accounted for (no gap); otherwise
   * `undefined`: ask the server.
   * Its `nextSeq` follows the last entry it went through, an exit or a close
   * included, as a server's answer that reaches the end of its log does; one
   * that `maxBytes` cut short ends after its last chunk. A cursor at or past
   * the close gets the server's answer at once: nothing more, closed.
   * `lent`: the reader copies what it keeps before it reads again, so it gets
   * views of the memory; any other reader gets chunks of its own.
   */
  read(afterSeq: number, maxBytes: number | null, lent = false): Protocol.ReadResult | undefined {
    if (this.closedSeq !== undefined && afterSeq >= this.closedSeq && this.exit !== undefined) {
      return { chunks: [], nextSeq: this.closedSeq + 1, ...this.ending(true) }
    }
    let index = this.entries.indexOf(afterSeq + 1)
    if (index === -1) return undefined
    const chunks: Array<Protocol.ProcessChunk> = []
    let bytes = 0
    let through = afterSeq
    let closed = false
    for (;; index++) {
      const entry = this.entries.at(index)
      if (entry === undefined || entry.seq !== through + 1) break
      if (entry._tag === "Output") {
        if (maxBytes !== null && chunks.length > 0 && bytes + entry.chunk.length > maxBytes) {
          // output left for the next read: the reader stays before the exit, as it would on the server
          through = chunks[chunks.length - 1]!.seq
          break
        }
        const chunk = lent || this.memory?.holds(entry.chunk) !== true ? entry.chunk : Buffer.copyBytesFrom(entry.chunk)
        chunks.push({ seq: entry.seq, stream: entry.stream, chunk })
        bytes += entry.chunk.length
      }
      through = entry.seq
      if (entry._tag === "Closed") {
        closed = true
        break
      }
    }
    // how it ended is the exit's to say: a close pushed without one (no server of ours does that) is the server's to answer
    if (closed && this.exit === undefined) return undefined
    return { chunks, nextSeq: through + 1, ...this.ending(closed) }
  }

  /** What a read answer says of the process's end. */
  private ending(closed: boolean) {
    return {
      exited: this.exit !== undefined,
      exitCode: this.exit?.exitCode ?? null,
      closed,
      failure: null,
      signal: this.exit?.signal ?? null,
      sandboxDenied: this.exit?.sandboxDenied ?? false
    }
  }

  /** `true` once the entry after `afterSeq` arrived or `stop()` holds (checked at each wake-up); `false` after `waitMs`. */
  untilNext(afterSeq: number, stop: () => boolean, waitMs: number): Effect.Effect<boolean> {
    return this.changes.untilWithin(() => this.knowsNext(afterSeq) || stop(), waitMs)
  }
}
