/**
 * What the local executor asks of one process, whether it runs on pipes
 * (`childProcess`) or on a pseudo-terminal (`ptyProcess`), and the parts both
 * kinds share: flow control of their output into a backpressured log,
 * de-duplicated writes within a stdin window that answer once the OS took the
 * bytes, signals to the process group the child leads, and what a start holds
 * on the host until its process is gone.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Writable } from "node:stream"
import type { InvalidRequest, SandboxRefused, SpawnFailed, Unsupported } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import type { OutputPipes } from "./outputPipes.ts"
import type { ProcessLog } from "./processLog.ts"

/** A running (or exited, not yet forgotten) process of the local executor. */
export interface LocalProcess {
  /** The child's pid: it leads its own process group (and session). */
  readonly pid: number
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
  /**
   * Kills the group and stops reading its output (the executor is going
   * away); what it holds on the host is given back once it is gone, waited
   * for a bounded time.
   */
  destroy(): Effect.Effect<void>
  /** A reader has seen everything up to `afterSeq` at `now`: this may let a paused process go on. */
  acknowledge(afterSeq: number, now: number): void
  /** Drops backpressure: from now on the oldest output is evicted rather than the output paused. */
  releaseBackpressure(): void
  /**
   * Writes to its input: `accepted` once the OS took every byte, waiting
   * while earlier writes fill the stdin window; `stdinClosed` if the input
   * closes first.
   */
  write(chunk: Uint8Array, writeId: string | undefined): Effect.Effect<Protocol.WriteStatus>
  /** Sets the size of its terminal; `false` when it has none. */
  resize(size: Protocol.TerminalSize): boolean
  /**
   * Ends its stdin after the writes before it; `undefined` when its input is a
   * terminal (which has no end but the Ctrl-D typed into it).
   */
  closeStdin(): Protocol.WriteStatus | undefined
}

/** How a process is set up, on pipes or on a terminal. */
export interface SpawnOptions {
  /** Output retained by its log (and the window a backpressured reader gets). */
  readonly retainedBytes: number
  /** The environment an `envPolicy` starts from. */
  readonly baseEnvironment: Readonly<Record<string, string | undefined>>
  /** Bytes written to its input that it has not taken yet, at most (one larger write goes alone). */
  readonly stdinWindowBytes: number
  /**
   * Whether reads and event streams get views of the output's memory that
   * they copy before their next read or pull (the exec-server's way), so that
   * memory is reused; otherwise each chunk handed out is the reader's own.
   */
  readonly lendOutput?: boolean | undefined
  /** The backpressure window (default: `retainedBytes`). */
  readonly windowBytes?: number | undefined
  /** Where a child on pipes gets real pipes for its output (none: Node's socket pairs). */
  readonly outputPipes?: OutputPipes | undefined
}

/**
 * A start whose checks passed (its working directory, its program, its
 * sandbox): what remains is to spawn it, which waits on nothing slow.
 */
export interface PreparedStart {
  readonly spawn: (
    now: number
  ) => Effect.Effect<LocalProcess, SpawnFailed | InvalidRequest | SandboxRefused | Unsupported>
}

/**
 * What a start holds on the host until its process is gone (a sandbox's mount
 * points): each release is taken as soon as there is something to give
 * back, and all are given back once, when the process is gone or did not
 * start.
 */
export class Holdings {
  private readonly releases: Array<() => void> = []

  /** Takes one more release. */
  readonly hold = (release: () => void): void => {
    this.releases.push(release)
  }

  /** Whether nothing is held. */
  get isEmpty(): boolean {
    return this.releases.length === 0
  }

  /** Gives everything back (once). */
  releaseAll(): void {
    for (const release of this.releases.splice(0)) release()
  }
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
    if (this.log.backpressure && !this.paused && this.log.unacknowledgedBytes >= this.log.windowBytes) {
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
    if (this.paused && (!this.log.backpressure || this.log.unacknowledgedBytes <= this.log.windowBytes / 2)) {
      this.paused = false
      for (const source of this.sources) source.resume()
    }
  }
}

/** A write waiting for room in the window, or handed to the OS and waiting for it to take the bytes. */
interface PendingWrite {
  readonly chunk: Uint8Array
  readonly outcome: Deferred.Deferred<Protocol.WriteStatus>
  readonly writeId: string | undefined
  /** Requests waiting for this outcome (a retried write waits for the first attempt's). */
  awaiters: number
  /** Handed to the OS: it can no longer be withdrawn. */
  handedOver: boolean
}

/**
 * Writes to a process's input in order, at most once per `writeId`, holding
 * at most a window of bytes the process has not taken yet: a write that does
 * not fit waits for room (as Codex's bounded writer queue makes it wait). A
 * write is answered `accepted` once the OS took every byte of it (they are in
 * the pipe or the terminal), `stdinClosed` when the input closed first: never
 * `accepted` for bytes that were then dropped. One `close` listener per
 * process, whatever the number of writes.
 */
export class InputWriter {
  private readonly target: Writable | null | undefined
  private readonly windowBytes: number
  /** Writes not handed to the OS yet, oldest first. */
  private readonly waiting: Array<PendingWrite> = []
  /** The last `writeId`s written, oldest first, with their writes. */
  private readonly byWriteId = new Map<string, PendingWrite>()
  private inputClosed = false

  constructor(target: Writable | null | undefined, windowBytes: number) {
    this.target = target
    this.windowBytes = windowBytes
    target?.once("close", () => {
      this.inputClosed = true
      for (const pending of this.waiting.splice(0)) this.settle(pending, "stdinClosed")
    })
  }

  /**
   * Writes `chunk`; `stdinClosed` when there is no input, it ended, or the
   * process exited. A retried `writeId` is not written again: it is answered
   * as the first attempt is.
   */
  write(chunk: Uint8Array, writeId: string | undefined, exited: boolean): Effect.Effect<Protocol.WriteStatus> {
    return Effect.suspend(() => {
      const target = this.target
      if (
        this.inputClosed || target === null || target === undefined || target.destroyed || target.writableEnded ||
        exited
      ) {
        return Effect.succeed("stdinClosed" as const)
      }
      const earlier = writeId === undefined ? undefined : this.byWriteId.get(writeId)
      if (earlier !== undefined) return this.awaitOutcome(earlier)
      const pending: PendingWrite = {
        chunk,
        outcome: Deferred.makeUnsafe(),
        writeId,
        awaiters: 0,
        handedOver: false
      }
      if (writeId !== undefined) {
        this.byWriteId.set(writeId, pending)
        if (this.byWriteId.size > Defaults.processTable.rememberedWriteIds) {
          this.byWriteId.delete(this.byWriteId.keys().next().value!)
        }
      }
      this.waiting.push(pending)
      this.handOver()
      return this.awaitOutcome(pending)
    })
  }

  /** Waits for `pending`'s outcome; a request that goes away withdraws a write nobody else waits for. */
  private awaitOutcome(pending: PendingWrite): Effect.Effect<Protocol.WriteStatus> {
    pending.awaiters++
    return Deferred.await(pending.outcome).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          pending.awaiters--
          if (pending.awaiters > 0 || pending.handedOver) return
          const index = this.waiting.indexOf(pending)
          if (index !== -1) this.waiting.splice(index, 1)
          // never written: a retry with the same id writes it
          if (pending.writeId !== undefined && this.byWriteId.get(pending.writeId) === pending) {
            this.byWriteId.delete(pending.writeId)
          }
        })
      )
    )
  }

  /** Hands waiting writes to the OS, in order, while they fit in the window (one alone when it is larger). */
  private handOver(): void {
    const target = this.target!
    while (this.waiting.length > 0 && !this.inputClosed) {
      const next = this.waiting[0]!
      const buffered = target.writableLength
      if (buffered > 0 && buffered + next.chunk.length > this.windowBytes) return
      this.waiting.shift()
      next.handedOver = true
      // the callback comes once the OS took every byte, or with the error that ended the input
      target.write(next.chunk, (error) => {
        this.settle(next, error === null || error === undefined ? "accepted" : "stdinClosed")
        this.handOver()
      })
    }
  }

  private settle(pending: PendingWrite, status: Protocol.WriteStatus): void {
    Deferred.doneUnsafe(pending.outcome, Exit.succeed(status))
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
