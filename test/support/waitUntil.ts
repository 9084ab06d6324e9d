/**
 * Waiting in a test for state a socket's events change: checked now and at
 * each wake-up, given up after 10 s of real time (a Node timer, whatever
 * clock the test runs), so a broken peer fails a test instead of hanging it.
 */
import * as Effect from "effect/Effect"

/** `ready()` once it is defined; dies naming `what` after 10 s. */
export const waitUntil = <A>(
  what: string,
  ready: () => A | undefined,
  listen: (wake: () => void) => () => void
): Effect.Effect<A> =>
  Effect.callback<A>((resume) => {
    const now = ready()
    if (now !== undefined) return resume(Effect.succeed(now))
    const timer = setTimeout(() => {
      unlisten()
      resume(Effect.die(new Error(`waited 10 s for ${what}`)))
    }, 10_000)
    const unlisten = listen(() => {
      const value = ready()
      if (value === undefined) return
      clearTimeout(timer)
      unlisten()
      resume(Effect.succeed(value))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      unlisten()
    })
  })
