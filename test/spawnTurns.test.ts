/**
 * Spawning forks the whole process on its only thread: many starts at once
 * must not fork back to back, or nothing else is served meanwhile. Each
 * spawn is recorded with the turn of the event loop it ran in (the real
 * `spawn` is called; the record only looks), and no two may share one.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as NodeChildProcess from "node:child_process"
import { createRequire, syncBuiltinESMExports } from "node:module"
import * as Exec from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import { readUntilClosed } from "./support/processes.ts"

const require = createRequire(import.meta.url)
const childProcess: typeof NodeChildProcess = require("node:child_process")

/** Records, for each `spawn` of `command`, the turn of the event loop it ran in, while the scope lasts. */
const recordSpawnTurns = (command: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const turns: Array<number> = []
      let turn = 0
      let immediate = setImmediate(function next() {
        turn++
        immediate = setImmediate(next)
      })
      const original = childProcess.spawn
      childProcess.spawn = ((...args: Parameters<typeof original>) => {
        // the executor's watchdog is spawned too: only the commands count
        if (args[0] === command) turns.push(turn)
        return original(...args)
      }) as typeof original
      syncBuiltinESMExports()
      return {
        turns,
        restore: () => {
          clearImmediate(immediate)
          childProcess.spawn = original
          syncBuiltinESMExports()
        }
      }
    }),
    ({ restore }) => Effect.sync(restore)
  )

describe("LocalExecutor: spawns take turns", () => {
  it.live("forks one process per turn of the event loop, however many start at once", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make()
      const { turns } = yield* recordSpawnTurns("true")
      const ids = Array.from({ length: 12 }, (_, i) => `turn-${i}`)
      yield* Effect.forEach(
        ids,
        (processId) => executor.start({ processId, argv: ["true"], cwd: "/tmp", env: {}, tty: false }),
        { concurrency: "unbounded", discard: true }
      )
      assert.strictEqual(turns.length, ids.length)
      assert.strictEqual(new Set(turns).size, turns.length, `turns of the spawns: ${turns.join(" ")}`)
      for (const processId of ids) {
        const seen = yield* readUntilClosed(processId).pipe(Effect.provideService(Exec.Executor, executor))
        assert.strictEqual(seen.last.exitCode, 0)
      }
    }))
})
