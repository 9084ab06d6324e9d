/**
 * A fleet on this machine: four exec-servers, each in a network namespace of
 * its own (`support/netns.ts`), named by one registry, and a load of
 * concurrent runs spread over them by `EnvironmentRegistry.leastBusy`. One
 * host is killed mid-load: its runs end `Lost` with the output they had, the
 * other hosts' runs finish, and the registry passes the dead host over until
 * it answers again. Assertions on what happens, never on how long it takes
 * (`npm run bench` measures that).
 *
 * Skipped only where the machine refuses `ip netns` (not root, no iproute2).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import { rmSync, writeFileSync } from "node:fs"
import * as EnvironmentRegistry from "../src/EnvironmentRegistry.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"
import { makeFleet, netnsRefusal } from "./support/netns.ts"

const refusal = netnsRefusal()
if (refusal !== undefined) console.warn(`Fleet.netns.test.ts skipped: ${refusal}`)

const token = "fleet-token"

describe.skipIf(refusal !== undefined)("a fleet of exec-servers in network namespaces", () => {
  it.live(
    "a host killed mid-load: its runs end Lost with their output, the others finish, it is passed over until it answers",
    () =>
      Effect.gen(function*() {
        const hosts = yield* makeFleet(4, { token })
        const config = yield* EnvironmentRegistry.fromCode({
          includeLocal: false,
          environments: hosts.map((host) =>
            EnvironmentRegistry.WebSocket({ id: host.name, url: host.url, token: Redacted.make(token) })
          )
        })
        const registry = yield* EnvironmentRegistry.make(config, {
          probeInterval: "100 millis",
          maxProbeInterval: "500 millis"
        })
        const rows = yield* registry.check()
        assert.deepStrictEqual(rows.map((row) => row.state), ["healthy", "healthy", "healthy", "healthy"])

        const started = yield* Queue.unbounded<OutputSink.OutputDelta>()
        const run = (
          command: ReadonlyArray<string>,
          environment: EnvironmentRegistry.Selection = EnvironmentRegistry.leastBusy()
        ) =>
          Exec.run({ command, environment, timeout: "1 minute" }).pipe(
            Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
            Effect.provide(OutputSink.layerQueue(started))
          )
        // 16 runs spread over 4 hosts; each says where it runs, then waits for a file that appears after the kill
        const load = yield* Effect.forEach(
          Array.from({ length: 16 }),
          () =>
            Effect.forkChild(
              run([
                "sh",
                "-c",
                "printf 'started on %s\\n' \"$HOST_NAME\"; while [ ! -e /tmp/$1 ]; do sleep 0.05; done; echo finished",
                "sh",
                `go-${process.pid}`
              ])
            )
        )
        for (let i = 0; i < 16; i++) yield* Queue.take(started)
        assert.deepStrictEqual((yield* registry.status).map((row) => row.running), [4, 4, 4, 4])

        const victim = hosts[1]!
        yield* victim.kill
        // let the others finish: the file their loop waits for (the namespaces share this file system)
        yield* Effect.acquireRelease(
          Effect.sync(() => writeFileSync(`/tmp/go-${process.pid}`, "")),
          () => Effect.sync(() => rmSync(`/tmp/go-${process.pid}`, { force: true }))
        )
        const results = yield* Fiber.joinAll(load)
        const on = (name: string) => results.filter((result) => result.stdout.text.startsWith(`started on ${name}\n`))
        for (const result of on(victim.name)) {
          assert.strictEqual(result.termination._tag, "Lost")
          assert.strictEqual(result.stdout.text, `started on ${victim.name}\n`, "the output it had before the kill")
        }
        assert.strictEqual(on(victim.name).length, 4)
        for (const name of ["h1", "h3", "h4"]) {
          assert.strictEqual(on(name).length, 4)
          for (const result of on(name)) {
            assert.deepStrictEqual(result.termination, Exec.Termination.Exited({ exitCode: 0 }))
            assert.strictEqual(result.stdout.text, `started on ${name}\nfinished\n`)
          }
        }
        const afterKill = yield* registry.status
        assert.deepStrictEqual(afterKill.map((row) => [row.id, row.state]), [
          ["h1", "healthy"],
          ["h2", "unhealthy"],
          ["h3", "healthy"],
          ["h4", "healthy"]
        ])
        assert.include(afterKill[1]!.reason, victim.address)

        // more load while it is down: none lands on it
        const during = yield* Effect.forEach(
          Array.from({ length: 12 }),
          () => run(["sh", "-c", "printf %s \"$HOST_NAME\""]),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual([...new Set(during.map((result) => result.stdout.text))].sort(), ["h1", "h3", "h4"])

        // it comes back on the same address: a probe finds it, and it takes runs again
        yield* victim.restart
        for (let i = 0; i < 200 && (yield* registry.status)[1]!.state !== "healthy"; i++) {
          yield* Effect.sleep("50 millis")
        }
        assert.strictEqual((yield* registry.status)[1]!.state, "healthy")
        const back = yield* run(["sh", "-c", "printf %s \"$HOST_NAME\""], victim.name)
        assert.strictEqual(back.stdout.text, victim.name)
        const spread = yield* Effect.forEach(
          Array.from({ length: 8 }),
          () => run(["sh", "-c", "printf %s \"$HOST_NAME\""])
        )
        assert.include(spread.map((result) => result.stdout.text), victim.name)
      }),
    120_000
  )
})
