/**
 * Spawning forks the whole process on its only thread: many starts at once
 * must not fork back to back for longer than the spawn budget, or nothing
 * else is served meanwhile. Each spawn is recorded with the turn of the event
 * loop it ran in and how long it held the thread (the real `spawn` is
 * called). Where the test needs slow spawns without a large heap, each spawn
 * holds the thread a while longer, as the fork of a large server does. Spawns
 * that fit in the budget do not each wait for a turn of their own.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as NodeChildProcess from "node:child_process"
import { createRequire, syncBuiltinESMExports } from "node:module"
import { performance } from "node:perf_hooks"
import * as Exec from "../src/Executor.ts"
import * as Defaults from "../src/internal/defaults.ts"
import { spawnTurn } from "../src/internal/local/spawnTurns.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import { readUntilClosed } from "./support/processes.ts"

const require = createRequire(import.meta.url)
const childProcess: typeof NodeChildProcess = require("node:child_process")

interface Recorded {
  readonly turn: number
  readonly millis: number
}

/**
 * Records, for each `spawn` of `command` (by name or path), the turn of the
 * event loop it ran in and how long it took; each holds the thread for at
 * least `holdMillis`.
 */
const recordSpawns = (command: string, holdMillis = 0) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const spawns: Array<Recorded> = []
      let turn = 0
      let immediate = setImmediate(function next() {
        turn++
        immediate = setImmediate(next)
      })
      const original = childProcess.spawn
      childProcess.spawn = ((...args: Parameters<typeof original>) => {
        const startedAt = performance.now()
        const child = original(...args)
        // the executor's watchdog is spawned too: only the commands count
        if (args[0] === command || args[0].endsWith(`/${command}`)) {
          while (performance.now() - startedAt < holdMillis) {
            // a slow fork: the thread is held
          }
          spawns.push({ turn, millis: performance.now() - startedAt })
        }
        return child
      }) as typeof original
      syncBuiltinESMExports()
      return {
        spawns,
        restore: () => {
          clearImmediate(immediate)
          childProcess.spawn = original
          syncBuiltinESMExports()
        }
      }
    }),
    ({ restore }) => Effect.sync(restore)
  )

/** In each turn of the event loop, the spawns before its last one together took less than the budget. */
const assertWithinBudget = (spawns: ReadonlyArray<Recorded>) => {
  const byTurn = new Map<number, Array<number>>()
  for (const { millis, turn } of spawns) byTurn.set(turn, [...(byTurn.get(turn) ?? []), millis])
  for (const [turn, millis] of byTurn) {
    // the last spawn of a turn may pass the budget; those before it together may not
    const beforeLast = millis.slice(0, -1).reduce((sum, each) => sum + each, 0)
    assert.isBelow(
      beforeLast,
      Defaults.spawn.budgetMillis,
      `turn ${turn}: spawns of ${millis.map((m) => m.toFixed(1)).join(", ")} ms back to back`
    )
  }
}

/** Completes once `child` exited. */
const exitOf = (child: NodeChildProcess.ChildProcess) =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
    else child.once("exit", () => resume(Effect.void))
  })

/** Starts `true` under each id at once, then waits for each to end with status 0. */
const startAll = (executor: Exec.Executor["Service"], ids: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.gen(function*() {
    yield* Effect.forEach(
      ids,
      (processId) => executor.start({ processId, argv: ["true"], cwd: "/tmp", env, tty: false }),
      { concurrency: "unbounded", discard: true }
    )
    for (const processId of ids) {
      const seen = yield* readUntilClosed(processId).pipe(Effect.provideService(Exec.Executor, executor))
      assert.strictEqual(seen.last.exitCode, 0)
    }
  })

describe("LocalExecutor: spawns take turns", () => {
  it.live("holds the thread no longer than the spawn budget (and one spawn) before the event loop polls", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make()
      const { spawns } = yield* recordSpawns("true", 15)
      const ids = Array.from({ length: 12 }, (_, i) => `turn-${i}`)
      yield* startAll(executor, ids, { PATH: "/usr/bin:/bin" })
      assert.strictEqual(spawns.length, ids.length)
      assertWithinBudget(spawns)
    }))

  it.live("lets spawns in a row share a turn of the event loop while they fit in the budget", () =>
    Effect.gen(function*() {
      // through the executor, quick starts reach their turn at different
      // times (each is prepared asynchronously first), so whether two share a
      // turn of the loop depends on timing; spawns made in a row show the rule
      // two share a turn only when a fork is quick enough to leave room in the budget, which a busy machine may not
      // give any of a row's: rows go on (up to 10) until one has such a pair; every row keeps the budget
      let turns: Array<number> = []
      const rows: Array<string> = []
      for (let row = 0; row < 10 && new Set(turns).size === turns.length; row++) {
        const { restore, spawns } = yield* recordSpawns("true", 10)
        const children: Array<NodeChildProcess.ChildProcess> = []
        for (let i = 0; i < 12; i++) {
          yield* spawnTurn(Effect.sync(() => children.push(childProcess.spawn("true", [], { stdio: "ignore" }))))
        }
        restore()
        yield* Effect.forEach(children, exitOf, { discard: true })
        assert.deepStrictEqual(children.map((child) => child.exitCode), children.map(() => 0))
        assertWithinBudget(spawns)
        turns = spawns.map(({ turn }) => turn)
        rows.push(
          `spawns of ${spawns.map(({ millis }) => millis.toFixed(1)).join(", ")} ms in turns ${turns.join(" ")}`
        )
      }
      assert.isBelow(
        new Set(turns).size,
        turns.length,
        `no shared turn in ${rows.length} rows; the last: ${rows.at(-1)}`
      )
    }))
})
