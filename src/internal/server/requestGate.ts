/**
 * What one connection's requests and notifications go through before they
 * run: turns (so many run at once, a long-poll read never delays a
 * `process/terminate` sent after it), a bounded number waiting for a turn
 * (past it the connection is full: a request is refused, a notification
 * dropped), and a byte budget: while what they hold passes it, the
 * transport is not read, so the client's writes wait and nothing piles up
 * here.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import type { Transport } from "../rpc/transport.ts"
import { limitReached, type Reply } from "./reply.ts"

/** The bounds of one connection's gate. */
export interface GateLimits {
  readonly concurrentRequests: number
  readonly queuedRequests: number
  readonly pendingRequestBytes: number
}

export class RequestGate {
  /** Requests and notifications running or waiting for a turn. */
  pending = 0
  private readonly turns: Semaphore.Semaphore
  private readonly bytes: ByteBudget
  private readonly limits: GateLimits

  constructor(limits: GateLimits, transport: Pick<Transport, "pause" | "resume">) {
    this.limits = limits
    this.turns = Semaphore.makeUnsafe(limits.concurrentRequests)
    this.bytes = new ByteBudget(limits.pendingRequestBytes, transport)
  }

  /** Whether one more would pass the count of those running and waiting. */
  get full(): boolean {
    return this.pending >= this.limits.concurrentRequests + this.limits.queuedRequests
  }

  /** The answer to a request that finds the connection full. */
  refusal(): Effect.Effect<never, Reply> {
    return limitReached(
      "requests",
      `too many requests in flight on this connection (${this.pending}); wait for answers before sending more`
    )
  }

  /**
   * Runs `work` in a turn, counted, its frame's bytes held from now until it
   * ends (an answer is handed to the OS before its turn is given back).
   */
  pass<A, E, R>(frameBytes: number, work: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      this.pending++
      this.bytes.hold(frameBytes)
      return this.turns.withPermits(1)(work).pipe(
        Effect.ensuring(Effect.sync(() => {
          this.pending--
          this.bytes.release(frameBytes)
        }))
      )
    })
  }
}

/**
 * The bytes a connection's requests in flight hold: past the budget the
 * transport is paused, and resumed once answers brought them under it again.
 * A frame larger than the whole budget is still read (alone), so no request is
 * too large to be served, only to be served alongside others.
 */
class ByteBudget {
  private held = 0
  private paused = false
  private readonly budget: number
  private readonly transport: Pick<Transport, "pause" | "resume">

  constructor(budget: number, transport: Pick<Transport, "pause" | "resume">) {
    this.budget = budget
    this.transport = transport
  }

  hold(bytes: number): void {
    this.held += bytes
    if (!this.paused && this.held >= this.budget) {
      this.paused = true
      this.transport.pause()
    }
  }

  release(bytes: number): void {
    this.held -= bytes
    if (this.paused && this.held < this.budget) {
      this.paused = false
      this.transport.resume()
    }
  }
}
