/**
 * The local executor's process table: ids reserved while a process starts,
 * running and closed processes by id, and how long a closed one is kept (its
 * id stays taken until it is forgotten). Memory is bounded by count as well
 * as by time: past `maxClosedRetained` closed processes, the oldest whose
 * reader has seen its end is forgotten early.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { ExecutorError, InvalidRequest, UnknownProcess } from "../../Executor.ts"
import type { LocalProcess } from "./localProcess.ts"

type Entry = { readonly state: "starting" } | { readonly state: "running"; readonly process: LocalProcess }

export class ProcessTable {
  private readonly entries = new Map<string, Entry>()
  /** Closed processes still retained, oldest first (a Set keeps insertion order). */
  private readonly closedOrder = new Set<string>()
  private readonly maxClosedRetained: number

  constructor(maxClosedRetained: number) {
    this.maxClosedRetained = maxClosedRetained
  }

  /** Takes `processId` for a process about to start; `false` when it is taken (running, starting or retained). */
  reserve(processId: string): boolean {
    if (this.entries.has(processId)) return false
    this.entries.set(processId, { state: "starting" })
    return true
  }

  /** Gives back a reservation whose start failed. */
  unreserve(processId: string): void {
    if (this.entries.get(processId)?.state === "starting") this.entries.delete(processId)
  }

  /** The started process takes its reserved id. */
  started(processId: string, process: LocalProcess): void {
    this.entries.set(processId, { state: "running", process })
  }

  /** The entry of `processId`: starting, running (or closed and retained), or absent. */
  get(processId: string): Entry | undefined {
    return this.entries.get(processId)
  }

  /** The process of `processId`, or why there is none to talk to. */
  lookup(processId: string): Effect.Effect<LocalProcess, ExecutorError> {
    return Effect.suspend(() => {
      const entry = this.entries.get(processId)
      if (entry === undefined) return Effect.fail(new ExecutorError({ reason: new UnknownProcess({ processId }) }))
      if (entry.state === "starting") {
        return Effect.fail(
          new ExecutorError({ reason: new InvalidRequest({ description: `process id ${processId} is starting` }) })
        )
      }
      return Effect.succeed(entry.process)
    })
  }

  /**
   * Counts `processId` among the closed ones; past the bound, forgets the
   * oldest whose reader has seen its end (a read answered `closed` with nothing
   * more): one whose reader may still come for its output or its close is
   * kept until its retention ends. (Acknowledged output alone is not enough:
   * a reader that has every byte still reads once more to learn of the close.)
   */
  closed(processId: string): void {
    this.closedOrder.add(processId)
    if (this.closedOrder.size <= this.maxClosedRetained) return
    for (const candidate of this.closedOrder) {
      const entry = this.entries.get(candidate)
      if (entry === undefined || entry.state !== "running") {
        this.closedOrder.delete(candidate)
        return
      }
      if (entry.process.log.endSeen) {
        this.forget(candidate, entry.process)
        return
      }
    }
  }

  /** Forgets a closed process (its retention ended); its id is free again. */
  forget(processId: string, process: LocalProcess): void {
    const entry = this.entries.get(processId)
    if (entry?.state === "running" && entry.process === process) this.entries.delete(processId)
    this.closedOrder.delete(processId)
  }

  /**
   * Kills every process still running and forgets them all (the executor's
   * scope closes); done once what they held on the host is given back.
   */
  destroyAll(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const processes = [...this.entries.values()].flatMap((entry) => entry.state === "running" ? [entry.process] : [])
      this.entries.clear()
      this.closedOrder.clear()
      return Effect.forEach(processes, (process) => process.destroy(), { concurrency: "unbounded", discard: true })
    })
  }
}
