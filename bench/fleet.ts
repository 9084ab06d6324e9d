/**
 * The fleet benchmark (part of `npm run bench`; alone: `node bench/fleet.ts`):
 * four exec-servers, each in a network namespace of its own
 * (`test/support/netns.ts`), named by one `EnvironmentRegistry`, against the
 * same load on one of them alone. Runs go to the least busy healthy server
 * (`EnvironmentRegistry.leastBusy`: fewest runs in flight, ties round-robin).
 * Then one server is killed mid-load, and brought back.
 *
 * All the "hosts" share this machine's cores: the fleet adds capacity where
 * runs wait (on I/O, or on a per-host limit), not CPU. Needs root (`ip netns`);
 * elsewhere it says why and measures nothing. Prints markdown tables.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import { cpus } from "node:os"
import * as EnvironmentRegistry from "../src/EnvironmentRegistry.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"
import { type Host, makeFleet, netnsRefusal } from "../test/support/netns.ts"

const token = "bench-fleet-token"

interface Load {
  readonly name: string
  readonly command: ReadonlyArray<string>
  readonly runs: number
  /** Runs submitted at once. */
  readonly concurrency: number
  /** Runs a server admits at once (the registry's `maxConcurrentRuns`). */
  readonly perHost: number
}

interface Measured {
  readonly wallMs: number
  readonly latencies: ReadonlyArray<number>
  readonly errors: number
}

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

const registryOf = (hosts: ReadonlyArray<Host>, perHost: number) =>
  Effect.flatMap(
    EnvironmentRegistry.fromCode({
      includeLocal: false,
      environments: hosts.map((host) =>
        EnvironmentRegistry.WebSocket({ id: host.name, url: host.url, token: Redacted.make(token) })
      )
    }),
    (config) =>
      EnvironmentRegistry.make(config, {
        maxConcurrentRuns: perHost,
        probeInterval: "100 millis",
        maxProbeInterval: "500 millis"
      })
  )

/** Runs `load` through `registry` (each run to the least busy server), timing each run from submission. */
const measure = (registry: EnvironmentRegistry.EnvironmentRegistry["Service"], load: Load) =>
  Effect.gen(function*() {
    const latencies: Array<number> = []
    let errors = 0
    const started = performance.now()
    yield* Effect.forEach(
      Array.from({ length: load.runs }),
      () => {
        const submitted = performance.now()
        return Exec.run({ command: load.command, environment: EnvironmentRegistry.leastBusy(), timeout: "1 minute" })
          .pipe(
            Effect.tap((result) =>
              Effect.sync(() => {
                if (result.exitCode !== 0) errors++
                latencies.push(performance.now() - submitted)
              })
            ),
            Effect.catch(() => Effect.sync(() => void errors++))
          )
      },
      { concurrency: load.concurrency, discard: true }
    )
    return { wallMs: performance.now() - started, latencies, errors } satisfies Measured
  }).pipe(
    Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
    Effect.provide(OutputSink.layerDiscard)
  )

const loads: ReadonlyArray<Load> = [
  {
    name: "`sleep 0.2` (waits on I/O), 64 at once",
    command: ["sleep", "0.2"],
    runs: 640,
    concurrency: 64,
    perHost: 64
  },
  {
    name: "`true` (no work: the cost of a run), 64 at once",
    command: ["true"],
    runs: 800,
    concurrency: 64,
    perHost: 64
  },
  {
    name: "`sleep 0.2`, 64 at once, each host admitting 8 (a small sandbox)",
    command: ["sleep", "0.2"],
    runs: 320,
    concurrency: 64,
    perHost: 8
  }
]

/**
 * A steady load (256 runs of `start; sleep 1; end`, 64 at once) during which
 * one host is killed, once 64 runs have finished: what became of the runs, and
 * how soon the registry stopped choosing the host and took it back.
 */
const killMidLoad = (hosts: ReadonlyArray<Host>) =>
  Effect.gen(function*() {
    const registry = yield* registryOf(hosts, 64)
    const victim = hosts[1]!
    const outcomes = { exited: 0, lostWithOutput: 0, lostWithout: 0, failedToStart: 0, onVictimWhileDown: 0 }
    let finished = 0
    const load = yield* Effect.forkChild(Effect.forEach(
      Array.from({ length: 256 }),
      () =>
        Exec.run({
          command: ["sh", "-c", "printf 'start %s\\n' \"$HOST_NAME\"; sleep 1; echo end"],
          environment: EnvironmentRegistry.leastBusy(),
          timeout: "1 minute"
        }).pipe(
          Effect.tap((result) =>
            Effect.sync(() => {
              if (result.termination._tag === "Exited") outcomes.exited++
              else if (result.stdout.text.startsWith("start")) outcomes.lostWithOutput++
              else outcomes.lostWithout++
            })
          ),
          Effect.catch(() => Effect.sync(() => void outcomes.failedToStart++)),
          Effect.ensuring(Effect.sync(() => void finished++)),
          Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
          Effect.provide(OutputSink.layerDiscard)
        ),
      { concurrency: 64, discard: true }
    ))
    while (finished < 64) yield* Effect.sleep("5 millis")
    const killedAt = performance.now()
    yield* victim.kill
    while ((yield* registry.status)[1]!.state !== "unhealthy") yield* Effect.sleep("5 millis")
    const markMs = performance.now() - killedAt
    yield* Fiber.join(load)
    // a second wave while it is down
    const wave = yield* Effect.forEach(
      Array.from({ length: 64 }),
      () =>
        Exec.run({
          command: ["sh", "-c", "printf %s \"$HOST_NAME\""],
          environment: EnvironmentRegistry.leastBusy(),
          timeout: "1 minute"
        }).pipe(
          Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
          Effect.provide(OutputSink.layerDiscard)
        ),
      { concurrency: 64 }
    )
    outcomes.onVictimWhileDown = wave.filter((result) => result.stdout.text === victim.name).length
    const restartedAt = performance.now()
    yield* victim.restart
    while ((yield* registry.status)[1]!.state !== "healthy") yield* Effect.sleep("5 millis")
    return { ...outcomes, markMs, recoverMs: performance.now() - restartedAt }
  })

const fmt = (n: number, digits = 0) => n.toFixed(digits)

const main = Effect.gen(function*() {
  const hosts = yield* makeFleet(4, { token })
  const lines: Array<string> = []
  lines.push(
    "| **Fleet** (4 servers in network namespaces vs 1; least busy first) | servers | runs/s | p50 ms | p99 ms | errors |",
    "|---|---|---|---|---|---|"
  )
  for (const load of loads) {
    for (const fleet of [hosts.slice(0, 1), hosts]) {
      const registry = yield* registryOf(fleet, load.perHost)
      // a warm-up run per server opens its connection
      yield* measure(registry, { ...load, runs: fleet.length, concurrency: fleet.length })
      const measured = yield* measure(registry, load)
      lines.push(
        `| ${load.name} | ${fleet.length} | ${fmt(load.runs / (measured.wallMs / 1000))} | ` +
          `${fmt(percentile(measured.latencies, 0.5), 1)} | ${fmt(percentile(measured.latencies, 0.99), 1)} | ` +
          `${measured.errors} |`
      )
    }
  }
  const killed = yield* killMidLoad(hosts)
  lines.push(
    "",
    "| **One of 4 servers killed mid-load** (256 runs of `start; sleep 1; end`, 64 at once; SIGKILL once 64 finished) | |",
    "|---|---|",
    `| finished (\`Exited\`), on any server | ${killed.exited} |`,
    `| on the killed server: ended \`Lost\`, with the output they had | ${killed.lostWithOutput} |`,
    `| on the killed server: ended \`Lost\` before any output | ${killed.lostWithout} |`,
    `| start in flight on the killed server: failed (\`ExecutorError\` \`ConnectionLost\`) | ${killed.failedToStart} |`,
    `| kill → marked unhealthy | ${fmt(killed.markMs, 1)} ms |`,
    `| 64 more runs while it is down: on the killed server | ${killed.onVictimWhileDown} |`,
    `| restarted → healthy again (probes every 100 ms, backing off to 500 ms) | ${fmt(killed.recoverMs)} ms |`
  )
  return lines.join("\n")
})

const refusal = netnsRefusal()
if (refusal !== undefined) {
  console.log(`\n(fleet benchmark skipped: ${refusal})`)
} else {
  const table = await Effect.runPromise(Effect.scoped(main))
  console.log(`\nFleet — ${cpus().length} cores shared by every server\n\n${table}`)
}
