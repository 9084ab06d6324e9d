/**
 * Wake-ups for fibers that wait on state changed by Node callbacks: a fiber
 * waits until a condition holds; the condition is checked in the same step
 * that registers the waiter, so a change can never slip in between the check
 * and the wait.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** The kind of clock a fiber has unless told otherwise: time is Node's own, a sleep is a `setTimeout`. */
const SystemClock = Clock.Clock.defaultValue().constructor

/** The longest delay a Node timer keeps (longer ones fire at once). */
const maxTimerMillis = 2 ** 31 - 1

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

  /**
   * `true` once `ready()` holds (at once, or at the first change after which
   * it does), `false` once `millis` passed first: a long poll. On the system
   * clock the wait and its timer share one callback, so a reader that waits
   * for every chunk of a large output costs no fibers; another clock (a
   * `TestClock`) gets its own `sleep`, raced against the change.
   */
  untilWithin(ready: () => boolean, millis: number): Effect.Effect<boolean> {
    return Clock.clockWith((clock) => {
      if (!(clock instanceof SystemClock) || !(millis > 0 && millis <= maxTimerMillis)) {
        return Effect.raceFirst(
          Effect.as(this.until(ready), true),
          Effect.as(clock.sleep(Duration.millis(millis)), false)
        )
      }
      return Effect.callback<boolean>((resume) => {
        if (ready()) return resume(Effect.succeed(true))
        const waiter = () => {
          if (!ready()) return
          clearTimeout(timer)
          this.waiters.delete(waiter)
          resume(Effect.succeed(true))
        }
        const timer = setTimeout(() => {
          this.waiters.delete(waiter)
          resume(Effect.succeed(false))
        }, millis)
        this.waiters.add(waiter)
        return Effect.sync(() => {
          clearTimeout(timer)
          this.waiters.delete(waiter)
        })
      })
    })
  }
}
