/**
 * Turns for spawning. Node's `spawn` (and the terminal's `fork`) forks this
 * whole process on its only thread, copying its page tables: tens of
 * milliseconds at a few hundred MiB, during which nothing else runs. Spawns
 * therefore go one at a time, and each lets the event loop poll for I/O
 * before the next: however many processes start at once, everyone else's
 * requests, reads and writes are served between two of them. One for the
 * process, since every executor in it shares its thread.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"

const turns = Semaphore.makeUnsafe(1)

/** Completes in the next turn of the event loop, after it polled for I/O. */
const nextTurn: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

/** Runs `spawn` (which forks, and waits on nothing slow) in the process's turn for spawning. */
export const spawnTurn = <A, E, R>(spawn: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  turns.withPermits(1)(Effect.ensuring(spawn, nextTurn))
