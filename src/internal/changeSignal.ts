/**
 * Wake-ups for fibers that wait on state changed by Node callbacks: a fiber
 * waits until a condition holds; the condition is checked in the same step
 * that registers the waiter, so a change can never slip in between the check
 * and the wait.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

export class ChangeSignal {
  private readonly waiters = new Set<() => void>()

  /** Tells every waiter to look again. */
  notify(): void {
    if (this.waiters.size === 0) return
    for (const waiter of [...this.waiters]) waiter()
  }

  /** Completes once `ready()` holds: at once, or at the first change after which it does. */
  until(ready: () => boolean): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (ready()) return resume(Effect.void)
      const waiter = () => {
        if (!ready()) return
        this.waiters.delete(waiter)
        resume(Effect.void)
      }
      this.waiters.add(waiter)
      return Effect.sync(() => void this.waiters.delete(waiter))
    })
  }
}
