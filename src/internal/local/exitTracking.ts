/**
 * When a local process's exit and close are written into its log, whether it
 * runs on pipes or on a terminal. The exit is numbered once its output reached
 * its end, or after a grace period when a background child keeps the output
 * open: Node often reports the exit before the output the child wrote just
 * before it, and a reader that sees the exit first starts its drain clock too
 * early. The process is closed once it exited and its output ended.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Exit from "effect/Exit"
import * as Defaults from "../defaults.ts"
import type { ProcessLog } from "./processLog.ts"

/** How the leader ended: its exit code (128 + the signal's number when killed) and the signal's name. */
export interface ExitStatus {
  readonly code: number
  readonly signal: string | null
}

/** What the process that owns an `ExitTracker` tells it, and does at its close. */
export interface ExitTracking {
  readonly log: ProcessLog
  /** Completed at the close. */
  readonly closed: Deferred.Deferred<void>
  /** Whether all of the process's output reached its end. */
  readonly outputEnded: () => boolean
  /** Whether an exit with `code` is likely a sandbox's denial (default: never). */
  readonly sandboxDenied?: (code: number) => boolean
  /** Done at the close, before the log says closed: a reader that sees it may look for what the process held. */
  readonly beforeClose?: () => void
}

/** Writes one process's exit and close into its log, in that order, each once. */
export class ExitTracker {
  private status: ExitStatus | undefined
  private grace: NodeJS.Timeout | undefined
  private readonly tracking: ExitTracking

  constructor(tracking: ExitTracking) {
    this.tracking = tracking
  }

  /** The leader exited: numbered now if the output ended, else once it does or the grace runs out. */
  leaderExited(status: ExitStatus): void {
    this.status = status
    if (this.tracking.outputEnded()) this.recordExit()
    // past the grace, the exit waits one more turn of the event loop: a loop held up (a busy server) runs
    // its timers before it reads the output, and what that holds was written before the exit
    else this.grace = setTimeout(() => setImmediate(this.recordExit), Defaults.processTable.exitGraceMillis)
  }

  /** The output reached its end: the exit (if the leader exited) is numbered, then the process closes. */
  outputEnd(): void {
    this.recordExit()
    this.closeIfDone()
  }

  private readonly recordExit = (): void => {
    const { log, sandboxDenied } = this.tracking
    if (this.status === undefined || log.exited) return
    clearTimeout(this.grace)
    const { code, signal } = this.status
    log.markExited(code, signal, sandboxDenied?.(code) ?? false)
    this.closeIfDone()
  }

  private closeIfDone(): void {
    const { beforeClose, closed, log, outputEnded } = this.tracking
    if (outputEnded() && log.exited && !log.closed) {
      beforeClose?.()
      log.markClosed()
      Deferred.doneUnsafe(closed, Exit.void)
    }
  }
}
