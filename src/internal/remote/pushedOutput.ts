/**
 * The remote executor's cache of what an exec-server pushed for one process
 * (output, exit, close), so that a read whose next chunks already arrived is
 * answered without a round trip. The server bounds it: with backpressure it
 * pushes at most a window beyond what the client acknowledged.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type { ProcessEvent } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import { ChangeSignal } from "../changeSignal.ts"

export class PushedOutput {
  private readonly entries = new Map<number, ProcessEvent>()
  private trimmedTo = 0
  private exit:
    | { readonly exitCode: number; readonly signal: string | null; readonly sandboxDenied: boolean }
    | undefined
  private readonly changes = new ChangeSignal()
  /** The highest cursor already acknowledged to the server. */
  acknowledged = 0
  /** Output bytes held. */
  bytes = 0

  add(event: ProcessEvent): void {
    if (event._tag === "Exited") {
      this.exit = { exitCode: event.exitCode, signal: event.signal, sandboxDenied: event.sandboxDenied }
    }
    if (event.seq <= this.trimmedTo || this.entries.has(event.seq)) return
    this.entries.set(event.seq, event)
    if (event._tag === "Output") this.bytes += event.chunk.length
    this.changes.notify()
  }

  /** Forgets everything up to `afterSeq`: the reader has it. */
  trim(afterSeq: number): void {
    for (let seq = this.trimmedTo + 1; seq <= afterSeq; seq++) {
      const entry = this.entries.get(seq)
      if (entry?._tag === "Output") this.bytes -= entry.chunk.length
      this.entries.delete(seq)
    }
    this.trimmedTo = Math.max(this.trimmedTo, afterSeq)
  }

  /** Whether the entry after `afterSeq` (output, exit or close) arrived. */
  knowsNext(afterSeq: number): boolean {
    return this.entries.has(afterSeq + 1)
  }

  /**
   * The read answer for `afterSeq` if the next output already arrived, with
   * every seq accounted for (no gap); otherwise `undefined`: ask the server.
   */
  read(afterSeq: number, maxBytes: number | null): Protocol.ReadResult | undefined {
    if (this.entries.get(afterSeq + 1)?._tag !== "Output") return undefined
    const chunks: Array<Protocol.ProcessChunk> = []
    let bytes = 0
    let closed = false
    for (let seq = afterSeq + 1;; seq++) {
      const entry = this.entries.get(seq)
      if (entry === undefined) break
      if (entry._tag === "Closed") {
        closed = true
        break
      }
      if (entry._tag !== "Output") continue
      if (maxBytes !== null && chunks.length > 0 && bytes + entry.chunk.length > maxBytes) break
      chunks.push({ seq: entry.seq, stream: entry.stream, chunk: entry.chunk })
      bytes += entry.chunk.length
    }
    return {
      chunks,
      nextSeq: chunks[chunks.length - 1]!.seq + 1,
      exited: this.exit !== undefined,
      exitCode: this.exit?.exitCode ?? null,
      closed,
      failure: null,
      signal: this.exit?.signal ?? null,
      sandboxDenied: this.exit?.sandboxDenied ?? false
    }
  }

  /** Completes once the entry after `afterSeq` arrived. */
  untilNext(afterSeq: number): Effect.Effect<void> {
    return this.changes.until(() => this.knowsNext(afterSeq))
  }
}
