/**
 * The health of environments: a probe (a connection of its own and an
 * `initialize` round trip, timed), what each environment was last seen as,
 * and the probes that look again at an environment marked unhealthy, less
 * and less often, until it answers.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { ConnectionLost } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import type { ChangeSignal } from "../changeSignal.ts"
import { makeClient } from "../rpc/client.ts"
import type { Transport } from "../rpc/transport.ts"

/** What an environment was last seen as. */
export type Health =
  /** Not checked yet, and nothing went wrong with it. */
  | { readonly _tag: "Unknown" }
  | {
    readonly _tag: "Healthy"
    /** The last probe's `initialize` round trip; `undefined` when no probe measured it (this machine). */
    readonly latency: Duration.Duration | undefined
    /** When it was last seen answering (epoch ms). */
    readonly checkedAt: number
  }
  | {
    readonly _tag: "Unhealthy"
    /** Why: the lost connection, or the last probe's failure. */
    readonly reason: string
    /** Since when it is unhealthy (epoch ms). */
    readonly since: number
    /** When it was last probed (epoch ms). */
    readonly checkedAt: number
  }

/**
 * Opens a connection of its own with `connect`, sends `initialize`, and
 * returns how long the answer took; fails with why, after `timeout` at most.
 * The connection is closed whatever happens.
 */
export const probe = (
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: { readonly clientName: string; readonly timeout: Duration.Duration }
): Effect.Effect<Duration.Duration, string> =>
  Effect.scoped(Effect.gen(function*() {
    const transport = yield* Effect.acquireRelease(connect, (transport) => transport.close)
    const client = makeClient(transport, () => {})
    const sent = yield* Clock.currentTimeNanos
    const answer = yield* client.request("initialize", { clientName: options.clientName })
    const answered = yield* Clock.currentTimeNanos
    yield* Schema.decodeUnknownEffect(Protocol.InitializeResult)(answer)
    return Duration.nanos(answered - sent)
  })).pipe(
    Effect.timeoutOrElse({
      duration: options.timeout,
      orElse: () => Effect.fail(`no answer to initialize within ${Duration.format(options.timeout)}`)
    }),
    Effect.mapError((error) => typeof error === "string" ? error : error.message)
  )

/** How often an unhealthy environment is probed: `interval`, doubling up to `maxInterval`. */
export interface ProbeSchedule {
  readonly interval: Duration.Duration
  readonly maxInterval: Duration.Duration
}

/** The health of every environment, and the probes of those marked unhealthy. */
export class HealthBook {
  private readonly states = new Map<string, Health>()
  private readonly changes: ChangeSignal
  private readonly recoveries: FiberMap.FiberMap<string>
  private readonly probeOf: (id: string) => Effect.Effect<Duration.Duration, string>
  private readonly schedule: ProbeSchedule

  constructor(options: {
    /** Told of every change (admissions wait on it for a healthy environment). */
    readonly changes: ChangeSignal
    /** Where recovery probes run: interrupted when the registry closes. */
    readonly recoveries: FiberMap.FiberMap<string>
    readonly probe: (id: string) => Effect.Effect<Duration.Duration, string>
    readonly schedule: ProbeSchedule
  }) {
    this.changes = options.changes
    this.recoveries = options.recoveries
    this.probeOf = options.probe
    this.schedule = options.schedule
  }

  /** What `id` was last seen as. */
  of(id: string): Health {
    return this.states.get(id) ?? { _tag: "Unknown" }
  }

  isUnhealthy(id: string): boolean {
    return this.of(id)._tag === "Unhealthy"
  }

  private set(id: string, health: Health): void {
    this.states.set(id, health)
    this.changes.notify()
  }

  /** `id` answered: healthy (keeping the last latency when this answer was not timed); its probes stop. */
  healthy(id: string, latency?: Duration.Duration): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const now = yield* Clock.currentTimeMillis
      const previous = this.of(id)
      this.set(id, {
        _tag: "Healthy",
        latency: latency ?? (previous._tag === "Healthy" ? previous.latency : undefined),
        checkedAt: now
      })
      yield* FiberMap.remove(this.recoveries, id)
    })
  }

  /** `id` failed (a lost connection, a failed probe): unhealthy until a probe gets an answer again. */
  unhealthy(id: string, reason: string): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const now = yield* Clock.currentTimeMillis
      const previous = this.of(id)
      this.set(id, {
        _tag: "Unhealthy",
        reason,
        since: previous._tag === "Unhealthy" ? previous.since : now,
        checkedAt: now
      })
      yield* FiberMap.run(this.recoveries, id, this.recover(id), { onlyIfMissing: true })
    })
  }

  /** Probes `id` now and records what it found. */
  check(id: string): Effect.Effect<Health> {
    return Effect.gen({ self: this }, function*() {
      const result = yield* Effect.result(this.probeOf(id))
      if (Result.isSuccess(result)) yield* this.healthy(id, result.success)
      else yield* this.unhealthy(id, result.failure)
      return this.of(id)
    })
  }

  /** Probes `id` after `interval`, then less and less often, until it answers. */
  private recover(id: string): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      let wait = this.schedule.interval
      while (true) {
        yield* Effect.sleep(wait)
        const result = yield* Effect.result(this.probeOf(id))
        const now = yield* Clock.currentTimeMillis
        if (Result.isSuccess(result)) {
          // set here, not through `healthy`: that would interrupt this very fiber
          return this.set(id, { _tag: "Healthy", latency: result.success, checkedAt: now })
        }
        const previous = this.of(id)
        this.set(id, {
          _tag: "Unhealthy",
          reason: result.failure,
          since: previous._tag === "Unhealthy" ? previous.since : now,
          checkedAt: now
        })
        wait = Duration.min(Duration.times(wait, 2), this.schedule.maxInterval)
      }
    })
  }
}
