/**
 * `Exec.run` on real processes through the local executor.
 */
import { assert, describe, layer } from "@effect/vitest"
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"
import { awaitDeath, pidsOf } from "./support/processes.ts"

/** Pids of live processes whose command line is `command`. */
const live = Layer.mergeAll(Environment.layerLocal, OutputSink.layerDiscard)

describe("Exec.run with the local executor", () => {
  layer(live, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.effect("captures stdout, stderr and the exit code", () =>
      Effect.gen(function*() {
        const result = yield* Exec.run({ command: ["sh", "-c", "printf hello; printf oops >&2; exit 3"] })
        assert.strictEqual(result.stdout.text, "hello")
        assert.strictEqual(result.stderr.text, "oops")
        assert.strictEqual(result.exitCode, 3)
        assert.deepStrictEqual(result.termination, Exec.Termination.Exited({ exitCode: 3 }))
      }))

    it.effect("kills the whole process group on timeout and returns 124", () =>
      Effect.gen(function*() {
        // both sleepers start within the 2 s before the timeout kills them unless the machine is too busy: then the
        // run is repeated (up to 5 runs), each one checked for its end and for what it left
        let sleepers: Array<number> = []
        for (let run = 0; run < 5 && sleepers.length < 2; run++) {
          const marker = `100.${process.pid}${run}${Date.now() % 1000}`
          const fiber = yield* Effect.forkChild(
            Exec.run({ command: ["sh", "-c", `sleep ${marker} & sleep ${marker}`], timeout: "2 seconds" })
          )
          sleepers = []
          while (sleepers.length < 2 && fiber.pollUnsafe() === undefined) {
            yield* Effect.sleep("10 millis")
            // the whole command line: `sh -c "sleep M & sleep M"` is not one of the sleepers
            sleepers = pidsOf(["sleep", marker])
          }
          const result = yield* Fiber.join(fiber)
          assert.strictEqual(result.exitCode, 124)
          assert.isTrue(result.timedOut)
          for (const pid of sleepers) yield* awaitDeath(pid)
          assert.deepStrictEqual(pidsOf(["sleep", marker]), [])
        }
        assert.lengthOf(sleepers, 2, "both sleepers ran before the timeout")
      }))

    it.effect("keeps 1 MiB of 50 MiB with shellTool and reports the rest dropped", () =>
      Effect.gen(function*() {
        // what stays bounded is asserted through what the code holds: the capture
        // here, the executor's window in LocalExecutor.test.ts; live memory is
        // the benchmark's job (a busy machine makes a heap ceiling flaky)
        const result = yield* Exec.run({ command: ["head", "-c", String(50 * 1024 * 1024), "/dev/zero"] })
        assert.strictEqual(result.exitCode, 0)
        assert.strictEqual(result.stdout.bytes.length, 1024 * 1024)
        assert.strictEqual(result.stdout.totalBytes, 50 * 1024 * 1024)
        assert.strictEqual(result.stdout.droppedBytes, 49 * 1024 * 1024)
        assert.strictEqual(result.droppedByExecutor, 0, "backpressure: the executor lost nothing")
      }))

    it.effect("does not hang on a background child that keeps the pipe open", () =>
      Effect.gen(function*() {
        const marker = `30.${process.pid}${Date.now() % 1000}`
        const result = yield* Exec.run({ command: ["sh", "-c", `printf hello; sleep ${marker} &`] })
        assert.strictEqual(result.stdout.text, "hello")
        assert.strictEqual(result.exitCode, 0)
        assert.isTrue(result.pipesHeldOpen)
        const [daemon] = pidsOf(["sleep", marker])
        assert.isDefined(daemon, "the background child is not killed by the drain limit")
        process.kill(daemon!, "SIGKILL")
      }))

    it.effect("runs in the given cwd with exactly the given env", () =>
      Effect.gen(function*() {
        const result = yield* Exec.run({ command: ["/usr/bin/env"], cwd: "/", env: { ONLY_THIS: "1" } })
        assert.strictEqual(result.stdout.text, "ONLY_THIS=1\n")
        const pwd = yield* Exec.run({ command: ["pwd"], cwd: "/tmp" })
        assert.strictEqual(pwd.stdout.text, "/tmp\n")
      }))

    it.effect("inherits this process's environment when no env is given", () =>
      Effect.gen(function*() {
        const result = yield* Exec.run({ command: ["sh", "-c", "printf %s \"$PATH\""] })
        assert.strictEqual(result.stdout.text, process.env.PATH)
      }))

    it.effect("fails typed and names the missing command", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Exec.run({ command: ["no-such-command-effect-exec"] }))
        assert.strictEqual(error.reason._tag, "SpawnFailed")
        assert.include(error.message, "no-such-command-effect-exec")
      }))

    it.effect("runs on a terminal: typed input, a resize, and what the terminal showed in stdout", () =>
      Effect.gen(function*() {
        const typed = yield* Queue.unbounded<Uint8Array, Cause.Done>()
        const sizes = yield* Queue.unbounded<{ readonly rows: number; readonly cols: number }, Cause.Done>()
        const deltas = yield* Queue.unbounded<OutputSink.OutputDelta>()
        const fiber = yield* Exec.run({
          command: ["sh", "-c", "stty size; read line; stty size; echo got:$line >&2"],
          tty: { size: { rows: 20, cols: 60 }, input: Stream.fromQueue(typed), resize: Stream.fromQueue(sizes) },
          timeout: "20 seconds"
        }).pipe(Effect.provide(OutputSink.layerQueue(deltas)), Effect.forkChild)
        // the first size is shown before the terminal is resized
        let shown = ""
        while (!shown.includes("20 60\r\n")) shown += new TextDecoder().decode((yield* Queue.take(deltas)).chunk)
        yield* Queue.offer(sizes, { rows: 33, cols: 99 })
        // input and resizes are fed by two fibers: let the resize land before the line that shows it
        yield* Effect.sleep("50 millis")
        yield* Queue.offer(typed, new TextEncoder().encode("hello\r"))
        const result = yield* Fiber.join(fiber)
        assert.strictEqual(result.stdout.text, "20 60\r\nhello\r\n33 99\r\ngot:hello\r\n")
        assert.strictEqual(result.stderr.text, "")
        assert.strictEqual(result.exitCode, 0)
      }))
  })
})
