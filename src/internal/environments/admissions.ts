/**
 * Runs admitted per environment: each environment admits at most its limit
 * at once (a run waits for a slot), and a choice among several admits to the
 * least busy one that is not unhealthy, ties going round-robin. A slot is
 * taken and its release registered in one synchronous step, so racing runs
 * never pass a limit together and an interrupted run never keeps a slot.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ChangeSignal } from "../changeSignal.ts"

/** Why no environment could be chosen now; the caller turns it into its error. */
export type Refusal = { readonly _tag: "AllUnhealthy" }

/** The in-flight runs of every environment, and their limits. */
export class Admissions {
  private readonly inFlight = new Map<string, number>()
  /** Where the next tie-break starts. */
  private cursor = 0
  private readonly changes: ChangeSignal
  private readonly limitOf: (id: string) => number
  private readonly isUnhealthy: (id: string) => boolean

  constructor(options: {
    /** Told when a slot frees; also told by health changes, which a choice waits on too. */
    readonly changes: ChangeSignal
    readonly limitOf: (id: string) => number
    readonly isUnhealthy: (id: string) => boolean
  }) {
    this.changes = options.changes
    this.limitOf = options.limitOf
    this.isUnhealthy = options.isUnhealthy
  }

  /** Runs admitted to `id` now. */
  count(id: string): number {
    return this.inFlight.get(id) ?? 0
  }

  limit(id: string): number {
    return this.limitOf(id)
  }

  private hasRoom(id: string): boolean {
    return this.count(id) < this.limitOf(id)
  }

  /** Takes a slot of `id` and registers its release in the current scope: one step, never interrupted between. */
  private take(id: string): Effect.Effect<string, never, Scope.Scope> {
    this.inFlight.set(id, this.count(id) + 1)
    return Effect.as(
      Effect.addFinalizer(() =>
        Effect.sync(() => {
          const left = this.count(id) - 1
          if (left === 0) this.inFlight.delete(id)
          else this.inFlight.set(id, left)
          this.changes.notify()
        })
      ),
      id
    )
  }

  /** Admits one run to `id`, waiting while it is full; the slot is held until the scope closes. */
  admit(id: string): Effect.Effect<void, never, Scope.Scope> {
    return Effect.uninterruptibleMask((restore) => {
      const attempt: Effect.Effect<void, never, Scope.Scope> = Effect.suspend(() =>
        this.hasRoom(id)
          ? Effect.asVoid(this.take(id))
          : Effect.andThen(restore(this.changes.until(() => this.hasRoom(id))), attempt)
      )
      return attempt
    })
  }

  /**
   * Admits one run to the least busy of `ids` that is not unhealthy (fewest
   * runs in flight; ties round-robin), waiting while all of them are full.
   * Fails at once when every one is unhealthy.
   */
  admitAny(ids: ReadonlyArray<string>): Effect.Effect<string, Refusal, Scope.Scope> {
    return Effect.uninterruptibleMask((restore) => {
      const attempt: Effect.Effect<string, Refusal, Scope.Scope> = Effect.suspend(() => {
        const eligible = ids.filter((id) => !this.isUnhealthy(id))
        if (eligible.length === 0) return Effect.fail({ _tag: "AllUnhealthy" } as const)
        const chosen = this.leastBusy(eligible)
        if (chosen !== undefined) return this.take(chosen)
        // every one is full: wait for a slot or for all to turn unhealthy, then look again
        const changed = () =>
          ids.every((id) => this.isUnhealthy(id)) || ids.some((id) => this.hasRoom(id) && !this.isUnhealthy(id))
        return Effect.andThen(restore(this.changes.until(changed)), attempt)
      })
      return attempt
    })
  }

  /** The one of `ids` with room and the fewest runs; among equals, the first from the cursor on. */
  private leastBusy(ids: ReadonlyArray<string>): string | undefined {
    let chosen: string | undefined
    for (let offset = 0; offset < ids.length; offset++) {
      const id = ids[(this.cursor + offset) % ids.length]!
      if (this.hasRoom(id) && (chosen === undefined || this.count(id) < this.count(chosen))) chosen = id
    }
    if (chosen !== undefined) this.cursor = (ids.indexOf(chosen) + 1) % ids.length
    return chosen
  }
}
