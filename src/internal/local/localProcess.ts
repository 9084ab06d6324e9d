/**
 * What the local executor asks of one process, whether it runs on pipes
 * (`childProcess`) or on a pseudo-terminal (`ptyProcess`), and the parts both
 * kinds share: flow control of their output into a backpressured log,
 * de-duplicated writes that answer once the child took the bytes, and signals
 * to the process group the child leads.
 *
 * @internal
 */
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type { Writable } from "node:stream"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import type { ProcessLog } from "./processLog.ts"

/** A running (or exited, not yet forgotten) process of the local executor. */
export interface LocalProcess {
  /** Its output, exit and close, numbered. */
  readonly log: ProcessLog
  /** Completes once it exited and its output reached its end. */
  readonly closed: Deferred.Deferred<void>
  /** When a reader last came (for the idle-reader fallback). */
  readonly lastReadAt: number
  /** Whether the leader has not exited yet. */
  readonly running: boolean
  /** How it is confined (`none`: not at all). */
  readonly sandboxType: Protocol.SandboxType
  /** Signals its whole process group (it leads its own session). */
  signalGroup(signal: NodeJS.Signals): void
  /** Kills the group and stops reading its output (the executor is going away). */
  destroy(): void
  /** A reader has seen everything up to `afterSeq` at `now`: this may let a paused process go on. */
  acknowledge(afterSeq: number, now: number): void
  /** Drops backpressure: from now on the oldest output is evicted rather than the output paused. */
  releaseBackpressure(): void
  /** Writes to its input; answers once the child's side took the bytes, so memory stays bounded. */
  write(chunk: Uint8Array, writeId: string | undefined): Effect.Effect<Protocol.WriteStatus>
  /** Sets the size of its terminal; `false` when it has none. */
  resize(size: Protocol.TerminalSize): boolean
}

/** Where a process's output comes from, as flow control sees it. */
export interface OutputSource {
  pause(): void
  resume(): void
}

/**
 * Pauses a process's output while its backpressured log holds a full unread
 * window, and resumes it once a reader made room (or backpressure was dropped).
 */
export class OutputFlow {
  /** When a reader last came. */
  lastReadAt: number
  private paused = false
  private readonly log: ProcessLog
  private readonly sources: ReadonlyArray<OutputSource>

  constructor(log: ProcessLog, sources: ReadonlyArray<OutputSource>, now: number) {
    this.log = log
    this.sources = sources
    this.lastReadAt = now
  }

  acknowledge(afterSeq: number, now: number): void {
    this.lastReadAt = now
    this.log.acknowledge(afterSeq)
    this.resumeIfRoom()
  }

  releaseBackpressure(): void {
    this.log.releaseBackpressure()
    this.resumeIfRoom()
  }

  /** Called after output was appended to the log. */
  pauseIfFull(): void {
    if (this.log.backpressure && !this.paused && this.log.unreadBytes >= this.log.capacityBytes) {
      this.paused = true
      for (const source of this.sources) source.pause()
    }
  }

  /**
   * Resumes once half the window is free, not as soon as one chunk fits: the
   * process then writes a burst, and its reader takes bursts, rather than one
   * chunk per acknowledgement.
   */
  private resumeIfRoom(): void {
    if (this.paused && (!this.log.backpressure || this.log.unreadBytes <= this.log.capacityBytes / 2)) {
      this.paused = false
      for (const source of this.sources) source.resume()
    }
  }
}

/**
 * Writes to a process's input in order, at most once per `writeId` (a retried
 * write is answered `accepted` and not written again, as Codex does).
 */
export class InputWriter {
  /** The last `writeId`s written, oldest first. */
  private readonly writeIds = new Set<string>()

  /**
   * Writes `chunk` to `target`; `stdinClosed` when there is none, it ended, or
   * the process exited. Answers once `target` took the bytes.
   */
  write(
    target: Writable | null | undefined,
    exited: boolean,
    chunk: Uint8Array,
    writeId: string | undefined
  ): Effect.Effect<Protocol.WriteStatus> {
    return Effect.suspend(() => {
      if (target === null || target === undefined || target.destroyed || target.writableEnded || exited) {
        return Effect.succeed("stdinClosed" as const)
      }
      // a retried write (same id) was accepted already: answer the same, write nothing
      if (writeId !== undefined && this.writeIds.has(writeId)) return Effect.succeed("accepted" as const)
      if (writeId !== undefined) {
        this.writeIds.add(writeId)
        if (this.writeIds.size > Defaults.processTable.rememberedWriteIds) {
          this.writeIds.delete(this.writeIds.values().next().value!)
        }
      }
      if (target.write(chunk)) return Effect.succeed("accepted" as const)
      // the child reads slower than it is written to: wait for it
      return Effect.as(
        Effect.callback<void>((resume) => {
          const done = () => resume(Effect.void)
          target.once("drain", done)
          target.once("close", done)
          return Effect.sync(() => {
            target.removeListener("drain", done)
            target.removeListener("close", done)
          })
        }),
        "accepted" as const
      )
    })
  }
}

/** Signals the process group `pid` leads; `fallback` when there is no such group (any more). */
export const signalGroup = (pid: number, signal: NodeJS.Signals, fallback: () => void): void => {
  try {
    process.kill(-pid, signal)
  } catch {
    fallback()
  }
}
