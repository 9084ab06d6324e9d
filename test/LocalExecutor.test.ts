import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import type { ChildProcess } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import * as v8 from "node:v8"
import * as Exec from "../src/Executor.ts"
import * as Defaults from "../src/internal/defaults.ts"
import { prepareChild } from "../src/internal/local/childProcess.ts"
import { Holdings } from "../src/internal/local/localProcess.ts"
import { longPollRead, ProcessLog } from "../src/internal/local/processLog.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as Sandbox from "../src/Sandbox.ts"
import { bwrapPath } from "./support/bwrap.ts"
import { suite } from "./support/ExecutorContract.ts"
import { awaitDeath, readUntilClosed, start } from "./support/processes.ts"

const reasonOf = <A>(exit: Exit.Exit<A, Exec.ExecutorError>): string | undefined =>
  Exit.isFailure(exit)
    ? exit.cause.reasons.flatMap((r) => r._tag === "Fail" ? [r.error.reason._tag] : [])[0]
    : undefined

suite("LocalExecutor", LocalExecutor.layer(), { extensions: true })

describe("LocalExecutor (local behaviour)", () => {
  /** A local executor built in the test's scope, under the test's clock. */
  const withExecutor = <A, E>(
    options: LocalExecutor.Options,
    body: Effect.Effect<A, E, Exec.Executor>
  ) => Effect.flatMap(LocalExecutor.make(options), (executor) => Effect.provideService(body, Exec.Executor, executor))

  /** Lets forked fibers run up to their next sleep. */
  const settle = TestClock.withLive(Effect.sleep("50 millis"))

  it.effect("forgets a closed process after the retention and frees its id", () =>
    withExecutor(
      { closedRetention: "30 seconds" },
      Effect.gen(function*() {
        const executor = yield* Exec.Executor
        yield* start("kept", ["true"])
        yield* readUntilClosed("kept")
        yield* settle
        yield* TestClock.adjust("29 seconds")
        const stillThere = yield* executor.read({ processId: "kept", afterSeq: 0, waitMs: 0 })
        assert.isTrue(stillThere.closed)
        assert.strictEqual(reasonOf(yield* Effect.exit(start("kept", ["true"]))), "ProcessIdInUse")
        yield* TestClock.adjust("1 second")
        assert.strictEqual(reasonOf(yield* Effect.exit(executor.read({ processId: "kept" }))), "UnknownProcess")
        yield* start("kept", ["true"])
        yield* readUntilClosed("kept")
      })
    ))

  it.effect("lets a backpressured process go lossy when no reader comes", () =>
    withExecutor(
      { readerIdleTimeout: "10 seconds" },
      Effect.gen(function*() {
        const executor = yield* Exec.Executor
        yield* start("idle", ["head", "-c", "5000000", "/dev/zero"], { backpressure: true })
        yield* TestClock.withLive(Effect.sleep("300 millis"))
        const held = yield* executor.read({ processId: "idle", afterSeq: 1_000_000_000, waitMs: 0 })
        assert.isFalse(held.exited, "paused while its output is unread")
        yield* TestClock.adjust("10 seconds")
        const closed = yield* executor.read({ processId: "idle", afterSeq: 1_000_000_000, waitMs: 60_000 })
        assert.isTrue(closed.closed)
        const replay = yield* executor.read({ processId: "idle", afterSeq: 0, waitMs: 0 })
        const retained = replay.chunks.reduce((n, c) => n + c.chunk.length, 0)
        assert.strictEqual(retained + (replay.dropped?.bytes ?? 0), 5_000_000)
        assert.isAbove(replay.dropped?.bytes ?? 0, 0)
      })
    ))

  it.effect("leaves no zombie: an exited child is reaped", () =>
    withExecutor(
      {},
      Effect.gen(function*() {
        yield* start("reaped", ["sh", "-c", "echo $$"])
        const seen = yield* readUntilClosed("reaped")
        const pid = Number(seen.stdout.trim())
        assert.isAbove(pid, 1)
        assert.isFalse(existsSync(`/proc/${pid}`), "the child was waited for, not left as a zombie")
      })
    ))

  it.effect("kills every process group it still has when its scope closes", () =>
    Effect.gen(function*() {
      let grandchild = 0
      yield* Effect.scoped(withExecutor(
        {},
        Effect.gen(function*() {
          yield* start("orphan", ["sh", "-c", "sleep 100 & echo $!; wait"])
          const executor = yield* Exec.Executor
          let first = yield* executor.read({ processId: "orphan", afterSeq: 0, waitMs: 5_000 })
          while (first.chunks.length === 0) {
            first = yield* executor.read({ processId: "orphan", afterSeq: 0, waitMs: 5_000 })
          }
          grandchild = Number(new TextDecoder().decode(first.chunks[0]!.chunk).trim())
        })
      ))
      yield* TestClock.withLive(awaitDeath(grandchild))
    }))
})

describe("LocalExecutor: a terminate while the process starts", () => {
  it.live("kills it as soon as it runs, and answers that it was running", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make()
      const request = (processId: string): Exec.StartRequest => ({
        processId,
        argv: ["sleep", "30"],
        cwd: "/tmp",
        env: {},
        tty: false
      })
      // the start is under way from its reservation until its child runs (a write says `starting`); a
      // machine that starts the child before the test looks gets another try
      let caught: string | undefined
      for (let attempt = 0; attempt < 20 && caught === undefined; attempt++) {
        const processId = `starting-${attempt}`
        const starting = yield* Effect.forkChild(executor.start(request(processId)))
        let status = yield* executor.write({ processId, chunk: new Uint8Array() })
        while (status === "unknownProcess") {
          yield* Effect.yieldNow
          status = yield* executor.write({ processId, chunk: new Uint8Array() })
        }
        if (status === "starting") {
          assert.deepStrictEqual(yield* executor.terminate(processId), { running: true })
          caught = processId
        } else {
          yield* executor.terminate(processId)
        }
        yield* Fiber.join(starting)
      }
      assert.isDefined(caught, "a terminate reached a process while it started")
      const seen = yield* readUntilClosed(caught!).pipe(Effect.provideService(Exec.Executor, executor))
      assert.strictEqual(seen.last.signal, "SIGKILL", "killed, not left to sleep")
    }))
})

describe("LocalExecutor retention by count", () => {
  it.effect("forgets the oldest closed process past maxClosedRetained", () =>
    Effect.flatMap(LocalExecutor.make({ maxClosedRetained: 2 }), (executor) =>
      Effect.gen(function*() {
        for (const id of ["c1", "c2", "c3"]) {
          yield* start(id, ["true"])
          yield* readUntilClosed(id)
          yield* TestClock.withLive(Effect.sleep("20 millis"))
        }
        assert.strictEqual(reasonOf(yield* Effect.exit(executor.read({ processId: "c1" }))), "UnknownProcess")
        assert.isTrue((yield* executor.read({ processId: "c2" })).closed)
        assert.isTrue((yield* executor.read({ processId: "c3" })).closed)
      }).pipe(Effect.provideService(Exec.Executor, executor))))
})

describe("LocalExecutor retention by count forgets first what no reader still comes for", () => {
  it.live("a closed process whose reader has seen its end goes before one whose reader has not, though its output was read", () =>
    Effect.flatMap(LocalExecutor.make({ maxClosedRetained: 2 }), (executor) =>
      Effect.gen(function*() {
        yield* start("slow-reader", ["sh", "-c", "echo a; sleep 0.2"])
        // the reader has the output (and acknowledges it), not yet the close
        let first = yield* executor.read({ processId: "slow-reader", afterSeq: 0, waitMs: 5_000 })
        while (first.chunks.length === 0) {
          first = yield* executor.read({ processId: "slow-reader", afterSeq: 0, waitMs: 5_000 })
        }
        assert.strictEqual(Buffer.from(first.chunks[0]!.chunk).toString(), "a\n")
        yield* executor.read({ processId: "slow-reader", afterSeq: first.nextSeq - 1, waitMs: 0 })
        // it closes meanwhile, nobody reading: its events followed to the close (following reads nothing)
        yield* Stream.runDrain(executor.events("slow-reader", { afterSeq: first.nextSeq - 1 }))
        // others close, and are read to their end, past the bound
        for (const id of ["b", "c", "d"]) {
          yield* start(id, ["true"])
          yield* readUntilClosed(id)
        }
        const last = yield* executor.read({ processId: "slow-reader", afterSeq: first.nextSeq - 1, waitMs: 0 })
        assert.isTrue(last.closed, "still there for its reader")
        assert.strictEqual(reasonOf(yield* Effect.exit(executor.read({ processId: "b" }))), "UnknownProcess")
      }).pipe(Effect.provideService(Exec.Executor, executor))))
})

describe("LocalExecutor retention by count, whatever the processes hold", () => {
  /** Whether `processId` is still retained. */
  const retained = (executor: Exec.Executor["Service"], processId: string) =>
    Effect.map(Effect.exit(executor.read({ processId, afterSeq: 1_000_000, waitMs: 0 })), Exit.isSuccess)

  /** Follows `processId`'s events until its close: following reads (and acknowledges) nothing. */
  const untilClosed = (executor: Exec.Executor["Service"], processId: string) =>
    Stream.runDrain(executor.events(processId))

  /** Polls (real time) until `check` holds; dies after 5 s. */
  const eventually = (description: string, check: Effect.Effect<boolean>) =>
    Effect.gen(function*() {
      for (let tries = 0; tries < 250; tries++) {
        if (yield* check) return
        yield* TestClock.withLive(Effect.sleep("20 millis"))
      }
      return yield* Effect.die(new Error(`timed out: ${description}`))
    })

  it.effect("bounds closed processes whose output nobody read", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make({ maxClosedRetained: 5 })
      const ids = Array.from({ length: 40 }, (_, i) => `unread-${i}`)
      for (const processId of ids) {
        yield* executor.start({ processId, argv: ["sh", "-c", "echo unread"], cwd: "/tmp", env: {}, tty: false })
        yield* untilClosed(executor, processId)
      }
      const count = Effect.map(
        Effect.forEach(ids, (id) => retained(executor, id)),
        (kept) => kept.filter(Boolean).length
      )
      yield* eventually("at most 5 retained", Effect.map(count, (n) => n <= 5))
      assert.strictEqual(yield* count, 5)
      assert.isTrue(yield* retained(executor, "unread-39"), "the newest are kept")
    }))

  it.effect("a closed process the bound forgot is garbage at once, not held until its retention ends", () =>
    Effect.gen(function*() {
      const logs = () => {
        globalThis.gc!()
        return v8.queryObjects(ProcessLog, { format: "count" }) as number
      }
      // within the retention (virtual time: it never ends here), only the bound forgets
      const executor = yield* LocalExecutor.make({ maxClosedRetained: 2, closedRetention: "1 hour" })
      const before = logs()
      for (let i = 0; i < 12; i++) {
        const processId = `kept-${i}`
        yield* executor.start({
          processId,
          argv: ["head", "-c", "65536", "/dev/zero"],
          cwd: "/tmp",
          env: {},
          tty: false
        })
        yield* untilClosed(executor, processId)
      }
      // a WeakRef's target outlives the job that last touched it: let the event loop turn first
      yield* TestClock.withLive(Effect.sleep("10 millis"))
      assert.isAtMost(logs() - before, 2, "only the 2 retained processes' logs are alive")
    }))

  it.effect("counts a process started again under a forgotten id, whatever the first one's retention does", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make({ maxClosedRetained: 1, closedRetention: "10 seconds" })
      const run = (processId: string) =>
        Effect.andThen(
          executor.start({ processId, argv: ["true"], cwd: "/tmp", env: {}, tty: false }),
          untilClosed(executor, processId)
        )
      const forgotten = (processId: string) => Effect.map(retained(executor, processId), (kept) => !kept)
      yield* run("p")
      yield* run("q")
      yield* eventually("the first p forgotten past the bound", forgotten("p"))
      yield* TestClock.adjust("5 seconds")
      yield* run("p")
      yield* eventually("q forgotten past the bound", forgotten("q"))
      // the first p's retention ends now: its supervisor must not take the second p out of the bound
      yield* TestClock.adjust("5 seconds")
      yield* run("r")
      yield* eventually("the second p forgotten past the bound", forgotten("p"))
      assert.isTrue(yield* retained(executor, "r"))
    }))
})

describe("LocalExecutor memory, asserted through what it holds", () => {
  it.live(
    "a backpressured child never retains more than its window while a slow reader catches up",
    () =>
      Effect.gen(function*() {
        const window = 256 * 1024
        const total = 20 * 1024 * 1024
        const prepared = yield* prepareChild(
          {
            processId: "window",
            argv: ["head", "-c", String(total), "/dev/zero"],
            cwd: "/tmp",
            env: {},
            tty: false,
            backpressure: true
          },
          { retainedBytes: window, baseEnvironment: {}, stdinWindowBytes: 1024 * 1024 },
          new Holdings()
        )
        const child = yield* prepared.spawn(0)
        let afterSeq = 0
        let received = 0
        let peakRetained = 0
        let peakUnread = 0
        let emptyReads = 0
        while (true) {
          // a slow reader: the child fills the window and waits for it
          yield* Effect.sleep("1 millis")
          peakRetained = Math.max(peakRetained, child.log.retainedBytes)
          peakUnread = Math.max(peakUnread, child.log.unacknowledgedBytes)
          const result = yield* longPollRead(child.log, {
            processId: "window",
            afterSeq,
            maxBytes: 64 * 1024,
            waitMs: 1_000
          })
          received += result.chunks.reduce((n, c) => n + c.chunk.length, 0)
          afterSeq = result.nextSeq - 1
          child.acknowledge(afterSeq, 0)
          if (result.closed && result.chunks.length === 0) break
          // a paused child that is never resumed shows nothing more: an assertion, not the test's timeout
          emptyReads = result.chunks.length === 0 && !result.exited ? emptyReads + 1 : 0
          assert.isBelow(
            emptyReads,
            5,
            `no output for 5 long polls after ${received} bytes: the child was never resumed`
          )
        }
        assert.strictEqual(received, total, "every byte arrived")
        // past the moment the window filled, the reads joined into the chunk under way still
        // come (up to one read buffer): bounded by a constant, not by the output
        const slack = Defaults.pipes.readBufferBytes
        assert.isAtMost(peakUnread, window + slack, `unread peaked at ${peakUnread}`)
        assert.isAtMost(peakRetained, window + slack, `retained peaked at ${peakRetained}`)
      }),
    60_000
  )
})

describe("LocalExecutor stdin, asserted through what it holds", () => {
  it.live("holds at most a window of writes the child has not taken, answers each once it took it, in order", () =>
    Effect.gen(function*() {
      const window = 256 * 1024
      const chunk = 100 * 1024
      const prepared = yield* prepareChild(
        {
          processId: "stdin",
          // stops itself before reading anything, then counts what it reads
          argv: ["sh", "-c", "kill -STOP $$; exec wc -c"],
          cwd: "/tmp",
          env: {},
          tty: false,
          pipeStdin: true
        },
        { retainedBytes: 1024 * 1024, baseEnvironment: {}, stdinWindowBytes: window },
        new Holdings()
      )
      const child = yield* prepared.spawn(0)
      const { child: node } = child as unknown as { child: ChildProcess }
      const stdin = node.stdin!
      while (readFileSync(`/proc/${node.pid}/stat`, "utf8").split(") ")[1]![0] !== "T") yield* Effect.sleep(5)
      const writes = 40
      const answered: Array<number> = []
      const fiber = yield* Effect.forEach(
        Array.from({ length: writes }, (_, i) => i),
        (i) =>
          Effect.tap(
            child.write(new Uint8Array(chunk).fill(i), `w${i}`),
            (status) => Effect.sync(() => status === "accepted" && answered.push(i))
          ),
        { concurrency: "unbounded" }
      ).pipe(Effect.forkChild)
      yield* Effect.sleep(300)
      // the pipe holds what the kernel takes (64 KiB); Node holds at most the window
      assert.isAtMost(stdin.writableLength, window, `Node holds ${stdin.writableLength} bytes`)
      assert.isBelow(answered.length, 2, "nothing accepted beyond what the pipe took")
      assert.strictEqual(stdin.listenerCount("drain"), 0, "no listener per write")
      process.kill(node.pid!, "SIGCONT")
      const statuses = yield* Fiber.join(fiber)
      assert.deepStrictEqual(statuses, Array.from({ length: writes }, () => "accepted"))
      assert.deepStrictEqual(answered, Array.from({ length: writes }, (_, i) => i), "answered in order")
      // a retried write id is answered as the first attempt, and written once
      assert.strictEqual(yield* child.write(new Uint8Array(chunk), "w0"), "accepted")
      stdin.end()
      let counted = ""
      let afterSeq = 0
      while (true) {
        const result = yield* longPollRead(child.log, { processId: "stdin", afterSeq, waitMs: 1_000 })
        for (const { chunk } of result.chunks) counted += Buffer.from(chunk).toString()
        afterSeq = result.nextSeq - 1
        if (result.closed && result.chunks.length === 0) break
      }
      assert.strictEqual(counted.trim(), String(writes * chunk))
    }))
})

describe("LocalExecutor: a process on a terminal and a sandbox", () => {
  it.effect("refuses a sandboxed tty start (it cannot be confined yet) and runs an unsandboxed one", () =>
    Effect.flatMap(LocalExecutor.make(), (executor) =>
      Effect.gen(function*() {
        const sandbox = Sandbox.toWire(Sandbox.readOnly(), "/tmp")
        const refused = yield* Effect.flip(
          executor.start({ processId: "tty-sandboxed", argv: ["true"], cwd: "/tmp", env: {}, tty: true, sandbox })
        )
        assert.strictEqual(refused.reason._tag, "SandboxRefused")
        assert.include(refused.message, "a process on a terminal under a sandbox")
        const unknown = yield* Effect.exit(executor.read({ processId: "tty-sandboxed" }))
        assert.strictEqual(reasonOf(unknown), "UnknownProcess", "nothing ran, and the id is free")
        const started = yield* executor.start({
          processId: "tty-free",
          argv: ["true"],
          cwd: "/tmp",
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
          tty: true,
          sandbox: Sandbox.toWire(Sandbox.fullAccess, "/tmp")
        })
        assert.strictEqual(started.sandboxType, "none")
      })))
})

describe("LocalExecutor: what a sandboxed command inherits", () => {
  it.live("nothing but its stdio: not the controlling side of another process's terminal", () =>
    Effect.flatMap(LocalExecutor.make({ sandbox: { bwrap: bwrapPath } }), (executor) =>
      Effect.gen(function*() {
        const path = process.env.PATH ?? "/usr/bin:/bin"
        // a terminal's controlling side is not close-on-exec: every child spawned meanwhile inherits it
        yield* executor.start({
          processId: "terminal",
          argv: ["sleep", "30"],
          cwd: "/tmp",
          env: { PATH: path },
          tty: true
        })
        const sandbox = Sandbox.toWire(Sandbox.readOnly(), "/tmp")
        const listing = "for fd in /proc/self/fd/*; do echo ${fd##*/}; done"
        for (const [processId, confined] of [["open", null], ["confined", sandbox]] as const) {
          yield* executor.start({
            processId,
            argv: ["sh", "-c", listing],
            cwd: "/tmp",
            env: { PATH: path },
            tty: false,
            sandbox: confined
          })
        }
        const descriptors = (processId: string) =>
          Effect.map(readUntilClosed(processId), (seen) => seen.stdout.trim().split("\n").map(Number))
        // unconfined, the leak is there (the test would prove nothing without it)
        assert.isAbove((yield* descriptors("open")).filter((fd) => fd > 3).length, 0)
        // 0-2, and the one the shell's glob opened to list the directory
        assert.deepStrictEqual((yield* descriptors("confined")).filter((fd) => fd > 3), [])
        yield* executor.terminate("terminal")
      }).pipe(Effect.provideService(Exec.Executor, executor))))
})
