/**
 * The local executor's pseudo-terminals beyond the conformance suite: typed
 * spawn failures, every byte through a backpressured terminal, no descriptor
 * left behind, and no process left when the executor goes away.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exec from "../src/Executor.ts"
import { longPollRead } from "../src/internal/local/processLog.ts"
import { preparePty } from "../src/internal/local/ptyProcess.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import { awaitClosedSince, openDescriptors } from "./support/descriptors.ts"
import { awaitDeath, freshId, isAlive, readUntilClosed, start } from "./support/processes.ts"

/** A local executor built in the test's scope. */
const withExecutor = <A, E>(body: Effect.Effect<A, E, Exec.Executor>) =>
  Effect.flatMap(LocalExecutor.make(), (executor) => Effect.provideService(body, Exec.Executor, executor))

describe("LocalExecutor on a pseudo-terminal", () => {
  it.live("fails typed when the program or the directory is missing, as a pipe start does", () =>
    withExecutor(Effect.gen(function*() {
      const tty = { tty: true }
      const missing = yield* Effect.flip(start(freshId("tty"), ["sh"], { ...tty, env: { PATH: "/nonexistent" } }))
      assert.strictEqual(missing.reason._tag, "SpawnFailed")
      assert.strictEqual((missing.reason as Exec.SpawnFailed).kind, "CommandNotFound", "looked up on the child's PATH")
      const notExecutable = yield* Effect.flip(start(freshId("tty"), ["/etc/passwd"], tty))
      assert.strictEqual((notExecutable.reason as Exec.SpawnFailed).kind, "PermissionDenied")
      const noCwd = yield* Effect.flip(start(freshId("tty"), ["true"], { ...tty, cwd: "/definitely/not/here" }))
      assert.strictEqual((noCwd.reason as Exec.SpawnFailed).kind, "CwdNotFound")
      const arg0 = yield* Effect.flip(start(freshId("tty"), ["true"], { ...tty, arg0: "other" }))
      assert.strictEqual(arg0.reason._tag, "InvalidRequest")
      // without PATH the child looks where execvp looks: the system's default path
      const seen = yield* readUntilClosed(
        (yield* start(freshId("tty"), ["sh", "-c", "echo found"], { ...tty, env: {} })).processId
      )
      assert.strictEqual(seen.pty, "found\r\n")
    })))

  it.live(
    "many terminals started at once: every exit is seen, also one reported while spawns take their turns",
    () =>
      withExecutor(Effect.gen(function*() {
        // forks at once exhaust the spawns' time budget, so some hand the event loop a turn right after forking: an
        // exit reported in that turn must still reach the process's log
        const ids = Array.from({ length: 100 }, () => freshId("burst"))
        yield* Effect.forEach(ids, (id) => start(id, ["true"], { tty: true }), {
          concurrency: "unbounded",
          discard: true
        })
        const ends = yield* Effect.forEach(ids, (id) => Effect.map(readUntilClosed(id), (seen) => seen.last.exitCode))
        assert.deepStrictEqual(new Set(ends), new Set([0]))
      })),
    60_000
  )

  it.live(
    "a backpressured terminal keeps what a late reader has not taken, also past the exit",
    () =>
      Effect.gen(function*() {
        const window = 64 * 1024
        const total = window + 512
        const prepared = yield* preparePty(
          {
            processId: "window",
            // a full window, then (once the output is paused) a last piece that waits in the terminal while the
            // child exits
            argv: ["sh", "-c", `head -c ${window} /dev/zero; sleep 0.3; head -c 512 /dev/zero`],
            cwd: "/tmp",
            env: { PATH: "/usr/bin:/bin" },
            tty: true,
            backpressure: true
          },
          { retainedBytes: window, baseEnvironment: {}, stdinWindowBytes: 1024 * 1024 }
        )
        const child = yield* prepared.spawn(0)
        while (child.running) yield* Effect.sleep("10 millis")
        assert.isAtMost(child.log.unacknowledgedBytes, window + 4096, "paused at the window")
        // the reader comes late: nothing may have been thrown away meanwhile
        yield* Effect.sleep("500 millis")
        let afterSeq = 0
        let received = 0
        while (true) {
          const result = yield* longPollRead(child.log, {
            processId: "window",
            afterSeq,
            maxBytes: 16 * 1024,
            waitMs: 1_000
          })
          received += result.chunks.reduce((n, c) => n + c.chunk.length, 0)
          afterSeq = result.nextSeq - 1
          child.acknowledge(afterSeq, 0)
          if (result.closed && result.chunks.length === 0) break
        }
        assert.strictEqual(received, total, "every byte arrived")
        assert.strictEqual(child.log.read(0, null).exitCode, 0)
      }),
    60_000
  )

  it.live("leaves no descriptor open once its processes closed", () =>
    withExecutor(Effect.gen(function*() {
      const runOne = Effect.gen(function*() {
        const processId = freshId("fd")
        yield* start(processId, ["sh", "-c", "echo hi; sleep 0.01"], { tty: true })
        yield* readUntilClosed(processId)
      })
      yield* runOne // the first one loads the binding
      const before = openDescriptors()
      for (let i = 0; i < 20; i++) yield* runOne
      yield* awaitClosedSince(before)
    })))

  it.live("kills its terminals' sessions when its scope closes", () =>
    Effect.gen(function*() {
      let background = 0
      yield* Effect.scoped(withExecutor(Effect.gen(function*() {
        const executor = yield* Exec.Executor
        yield* start("tty-orphan", ["sh", "-ic", "sleep 100 & echo bg:$!; wait"], { tty: true })
        let output = ""
        let afterSeq = 0
        while (!/bg:\d+\r?\n/.test(output)) {
          const result = yield* executor.read({ processId: "tty-orphan", afterSeq, waitMs: 2_000 })
          output += result.chunks.map((c) => new TextDecoder().decode(c.chunk)).join("")
          afterSeq = result.nextSeq - 1
        }
        background = Number(/bg:(\d+)/.exec(output)![1])
        assert.isTrue(isAlive(background))
      })))
      yield* awaitDeath(background)
    }))
})
