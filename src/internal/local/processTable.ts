/**
 * The local executor's process table: ids reserved while a process starts,
 * running and closed processes by id, and how long a closed one is kept (its
 * id stays taken until it is forgotten). Memory is bounded by count as well
 * as by time: past `maxClosedRetained` closed processes, one is forgotten
 * early (the oldest whose reader has seen its end, else the oldest).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { ExecutorError, InvalidRequest, UnknownProcess } from "../../Executor.ts"
import type { LocalProcess } from "./localProcess.ts"

/** A reserved id: `terminate` set when the process must be killed as soon as it runs. */
interface Starting {
  readonly state: "starting"
  terminate: boolean
}

type Entry = Starting | { readonly state: "running"; readonly process: LocalProcess }

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
    this.entries.set(processId, { state: "starting", terminate: false })
    return true
  }

  /** Gives back a reservation whose start failed. */
  unreserve(processId: string): void {
    if (this.entries.get(processId)?.state === "starting") this.entries.delete(processId)
  }

  /**
   * Asks that the process starting under `processId` be killed as soon as it
   * runs; `false` when no process is starting under that id.
   */
  terminateWhenStarted(processId: string): boolean {
    const entry = this.entries.get(processId)
    if (entry?.state !== "starting") return false
    entry.terminate = true
    return true
  }

  /** The started process takes its reserved id; `true` when it was asked to terminate meanwhile. */
  started(processId: string, process: LocalProcess): boolean {
    const entry = this.entries.get(processId)
    this.entries.set(processId, { state: "running", process })
    return entry?.state === "starting" && entry.terminate
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
   * more; acknowledged output alone is not enough: a reader that has every
   * byte still reads once more to learn of the close), or when none has, the
   * oldest all the same: a reader that comes later finds it unknown.
   */
  closed(processId: string): void {
    this.closedOrder.add(processId)
    while (this.closedOrder.size > this.maxClosedRetained) this.forgetOneClosed()
  }

  private forgetOneClosed(): void {
    let oldest: { readonly processId: string; readonly process: LocalProcess } | undefined
    for (const candidate of this.closedOrder) {
      const entry = this.entries.get(candidate)
      if (entry?.state !== "running") {
        this.closedOrder.delete(candidate)
        return
      }
      if (entry.process.log.endSeen) return this.forget(candidate, entry.process)
      oldest ??= { processId: candidate, process: entry.process }
    }
    if (oldest !== undefined) this.forget(oldest.processId, oldest.process)
  }

  /**
   * Forgets a closed process (its retention ended, or the bound reached it);
   * its id is free again. A process started since under the same id is not
   * this one: it stays, and so does its place among the closed.
   */
  forget(processId: string, process: LocalProcess): void {
    const entry = this.entries.get(processId)
    if (entry?.state !== "running" || entry.process !== process) return
    this.entries.delete(processId)
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
