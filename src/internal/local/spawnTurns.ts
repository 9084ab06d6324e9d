/**
 * Turns for spawning. Node's `spawn` (and the terminal's `fork`) forks this
 * whole process on its only thread, copying its page tables: tens of
 * milliseconds at a few hundred MiB, during which nothing else runs. Spawns
 * therefore go one at a time, and once they have held the thread for
 * `Defaults.spawn.budgetMillis` they let the event loop poll for I/O before the next:
 * however many processes start at once, everyone else's requests, reads and
 * writes are served between them, while spawns that fit in the budget
 * together take one turn rather than one each. One for the process, since
 * every executor in it shares its thread.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import * as Defaults from "../defaults.ts"

const turns = Semaphore.makeUnsafe(1)
/**
 * Milliseconds spawns held the thread since they last let the event loop poll
 * between two of them. A turn the loop took for another reason meanwhile is
 * not seen, so this only ever makes spawns yield early, never late.
 */
let spent = 0

/** Completes in the next turn of the event loop, after it polled for I/O. */
const nextTurn: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

/** Counts what `spawn` took; past the budget, waits for the event loop to poll before the next spawn may go. */
const account = (startedAt: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    spent += performance.now() - startedAt
    if (spent < Defaults.spawn.budgetMillis) return Effect.void
    spent = 0
    return nextTurn
  })

/** Runs `spawn` (which forks, and waits on nothing slow) in the process's turn for spawning. */
export const spawnTurn = <A, E, R>(spawn: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  turns.withPermits(1)(Effect.suspend(() => Effect.ensuring(spawn, account(performance.now()))))
