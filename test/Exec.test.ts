/**
 * The consume loop (`Exec.run`) against a scripted executor, in virtual time.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as Environment from "../src/Environment.ts"
import * as EnvironmentRegistry from "../src/EnvironmentRegistry.ts"
import * as Exec from "../src/Exec.ts"
import {
  ConnectionLost,
  Executor,
  ExecutorError,
  ProtocolViolation,
  type ReadOptions,
  SpawnFailed
} from "../src/Executor.ts"
import type * as JsonRpc from "../src/JsonRpc.ts"
import * as OutputSink from "../src/OutputSink.ts"
import type * as Protocol from "../src/Protocol.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import * as Script from "./support/ScriptedExecutor.ts"

const MiB = 1024 * 1024

/** An environment served by a scripted executor, with deltas discarded. */
const scripted = (script: (request: { readonly argv: ReadonlyArray<string> }) => ReadonlyArray<Script.Step>) => {
  const executor = Script.make(script)
  const layer = Layer.mergeAll(
    Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(executor.layer)),
    OutputSink.layerDiscard
  )
  return { ...executor, layer }
}

/** A live-output sink that takes `duration` over each delta. */
const sinkTaking = (duration: Duration.Input) =>
  Layer.succeed(OutputSink.OutputSink, OutputSink.OutputSink.of({ emit: () => Effect.sleep(duration) }))

const bytesOf = (length: number, fill: number) => new Uint8Array(length).fill(fill)

/**
 * The result of a call that virtual time has brought to its end: a call still
 * running once the other fibers had their turns (a drain or a wait that never
 * ends) fails here, by assertion, instead of hanging the test.
 */
const settled = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 1000 && fiber.pollUnsafe() === undefined; turn++) yield* Effect.yieldNow
    assert.isDefined(fiber.pollUnsafe(), "the call is still running: its loop did not end")
    return yield* Fiber.join(fiber)
  })

/**
 * A scripted executor seen through a wrapper: `calls` records what the loop
 * asked of it, and `override` replaces some of its methods (given the
 * scripted ones).
 */
const watched = (
  script: (request: { readonly argv: ReadonlyArray<string> }) => ReadonlyArray<Script.Step>,
  override: (executor: Executor["Service"]) => Partial<Executor["Service"]> = () => ({})
) => {
  const base = Script.make(script)
  const calls = {
    reads: [] as Array<Protocol.ReadParams>,
    writes: 0,
    stdinCloses: 0,
    terminated: [] as Array<string>
  }
  const executor = Layer.effect(
    Executor,
    Effect.map(Effect.service(Executor), (inner) => {
      const replaced = { ...inner, ...override(inner) }
      return Executor.of({
        ...replaced,
        read: (request, options) => Effect.suspend(() => (calls.reads.push(request), replaced.read(request, options))),
        write: (request) => Effect.suspend(() => (calls.writes++, replaced.write(request))),
        closeStdin: (processId) => Effect.suspend(() => (calls.stdinCloses++, replaced.closeStdin(processId))),
        terminate: (processId) =>
          Effect.suspend(() => (calls.terminated.push(processId), replaced.terminate(processId)))
      })
    })
  ).pipe(Layer.provide(base.layer))
  const layer = Layer.mergeAll(
    Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(executor)),
    OutputSink.layerDiscard
  )
  return { ...base, calls, layer }
}

/** Read answers by cursor: the first entry whose `upTo` is at or past the read's `afterSeq`. */
const answering = (
  answers: ReadonlyArray<{ readonly upTo: number; readonly result: Protocol.ReadResult }>
) =>
(request: Protocol.ReadParams) =>
  Effect.succeed(answers.find(({ upTo }) => (request.afterSeq ?? 0) <= upTo)?.result ?? answers.at(-1)!.result)

const chunkOf = (seq: number, value: string) => ({
  seq,
  stream: "stdout" as const,
  chunk: new TextEncoder().encode(value)
})
const running = { exited: false, exitCode: null, closed: false, failure: null }

describe("Exec.run", () => {
  it.effect("returns output, exit code and an Exited termination", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("hello"), Script.err("oops"), Script.exit(3), Script.close])
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.stdout.text, "hello")
      assert.strictEqual(result.stderr.text, "oops")
      assert.strictEqual(result.aggregated.text, "hellooops")
      assert.strictEqual(result.exitCode, 3)
      assert.deepStrictEqual(result.termination, Exec.Termination.Exited({ exitCode: 3 }))
      assert.isFalse(result.timedOut)
      assert.deepStrictEqual(env.terminated, [])
    }))

  it.effect("keeps exit code 1 an exit code (not a signal)", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(1), Script.close])
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.exitCode, 1)
      assert.strictEqual(result.signal, null)
      assert.strictEqual(result.termination._tag, "Exited")
    }))

  it.effect("reports a death by signal as 128 + n with the signal's name", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(-1, "SIGSEGV"), Script.close])
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.exitCode, 139)
      assert.deepStrictEqual(result.termination, Exec.Termination.Signaled({ signal: "SIGSEGV" }))
    }))

  it.effect("times out at the deadline and not before, killing the process", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("partial"), Script.wait("1 hour"), Script.exit(0), Script.close])
      const fiber = yield* Exec.run({ command: ["cmd"], timeout: "5 seconds" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(fiber.pollUnsafe(), "still running 1 ms before the deadline")
      assert.deepStrictEqual(env.terminated, [])
      yield* TestClock.adjust("1 millis")
      const result = yield* settled(fiber)
      assert.strictEqual(result.exitCode, 124)
      assert.isTrue(result.timedOut)
      assert.strictEqual(result.termination._tag, "TimedOut")
      assert.strictEqual(result.stdout.text, "partial", "output read before the timeout is kept")
      assert.strictEqual(env.terminated.length, 1)
    }))

  it.effect.each([{}, { capture: "shellTool" }, { capture: { headBytes: 10, tailBytes: 10 } }] as const)(
    "uses Codex's 10 second default timeout with %j",
    (options) =>
      Effect.gen(function*() {
        const env = scripted(() => [Script.wait("1 hour"), Script.exit(0), Script.close])
        const fiber = yield* Exec.run({ command: ["cmd"], ...options }).pipe(
          Effect.provide(env.layer),
          Effect.forkChild
        )
        yield* TestClock.adjust("9999 millis")
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        const result = yield* settled(fiber)
        assert.isTrue(result.timedOut)
        assert.deepStrictEqual(result.termination, Exec.Termination.TimedOut({ timeout: Duration.seconds(10) }))
      })
  )

  it.effect("terminates the process when the calling fiber is interrupted", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.wait("1 hour"), Script.exit(0), Script.close])
      const fiber = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(env.terminated.length, 1)
    }))

  it.effect("terminates on the request's interrupt and says Interrupted", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("so far"), Script.wait("1 hour"), Script.exit(0), Script.close])
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Exec.run({ command: ["cmd"], interrupt: Deferred.await(stop) }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(stop, undefined)
      const result = yield* settled(fiber)
      assert.deepStrictEqual(result.termination, Exec.Termination.Interrupted())
      assert.strictEqual(result.stdout.text, "so far")
      assert.strictEqual(env.terminated.length, 1)
      assert.isFalse(result.timedOut)
    }))

  it.effect("after a timeout, keeps what the killed group left in its pipes", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("partial "), Script.whenKilled("last words"), Script.wait("1 hour")])
      const fiber = yield* Exec.run({ command: ["cmd"], timeout: "5 seconds" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("5 seconds")
      const result = yield* settled(fiber)
      assert.strictEqual(result.termination._tag, "TimedOut")
      assert.strictEqual(result.stdout.text, "partial last words", "the drain after the kill reads the pipe to its end")
      assert.strictEqual(result.exitCode, 124)
      assert.strictEqual(result.signal, "SIGKILL")
      assert.isFalse(result.pipesHeldOpen)
    }))

  it.effect("after the request's interrupt, keeps what the killed group left in its pipes", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.whenKilled("bye"), Script.wait("1 hour")])
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Exec.run({ command: ["cmd"], interrupt: Deferred.await(stop) }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(stop, undefined)
      const result = yield* settled(fiber)
      assert.deepStrictEqual(result.termination, Exec.Termination.Interrupted())
      assert.strictEqual(result.stdout.text, "bye")
      assert.strictEqual(result.exitCode, 137, "128 + SIGKILL's 9: the kill is what ended it")
    }))

  it.effect("sends deltas up to the per-call cap and keeps capturing past it", () =>
    Effect.gen(function*() {
      const chunks = Array.from({ length: 15 }, (_, i) => Script.out(String.fromCharCode(97 + i)))
      const env = scripted(() => [...chunks, Script.exit(0), Script.close])
      const deltas = yield* Queue.unbounded<OutputSink.OutputDelta>()
      const result = yield* Exec.run({ command: ["cmd"], maxDeltas: 10, callId: "call-1" }).pipe(
        Effect.provide(Layer.merge(env.layer, OutputSink.layerQueue(deltas)))
      )
      const received = yield* Queue.takeAll(deltas)
      assert.strictEqual(received.length, 10)
      assert.deepStrictEqual(received[0]?.callId, "call-1")
      assert.strictEqual(result.deltasSkipped, 5)
      assert.strictEqual(result.stdout.text, "abcdefghijklmno")
    }))

  describe("an executor that lends its output (a read with `lent`)", () => {
    /**
     * `read` as an executor that reuses memory answers a lent read: each chunk
     * a view of one buffer that the next lent read overwrites. A read without
     * `lent` gets chunks of its own.
     */
    const lending = (inner: Executor["Service"]) => {
      const memory = Buffer.alloc(MiB)
      const lentReads = { count: 0 }
      return {
        read: (request: Protocol.ReadParams, options?: ReadOptions) =>
          Effect.map(inner.read(request), (result) => {
            if (options?.lent !== true) return result
            lentReads.count++
            memory.fill(0x21) // what the previous answer lent holds other output now
            let offset = 0
            const chunks = result.chunks.map((entry) => {
              const view = memory.subarray(offset, offset + entry.chunk.length)
              view.set(entry.chunk)
              offset += entry.chunk.length
              return { ...entry, chunk: view }
            })
            return { ...result, chunks }
          }),
        memory,
        lentReads
      }
    }
    const script = () => [
      Script.out("first,"),
      Script.wait("1 second"),
      Script.out("second,"),
      Script.wait("1 second"),
      Script.err("third"),
      Script.exit(0),
      Script.close
    ]
    const runWith = (sink: OutputSink.OutputSink.Service) =>
      Effect.gen(function*() {
        let lender: ReturnType<typeof lending> | undefined
        const env = watched(script, (inner) => (lender = lending(inner)))
        const fiber = yield* Exec.run({ command: ["cmd"] }).pipe(
          Effect.provide(Layer.merge(env.layer, Layer.succeed(OutputSink.OutputSink, sink))),
          Effect.forkChild
        )
        yield* TestClock.adjust("3 seconds")
        const result = yield* settled(fiber)
        return { result, reads: env.calls.reads.length, lentReads: lender!.lentReads.count, memory: lender!.memory }
      })

    it.effect("reads lent, and gives a sink that may keep its chunks copies that later reads leave alone", () =>
      Effect.gen(function*() {
        const kept: Array<Uint8Array> = []
        const { lentReads, reads, result } = yield* runWith({
          emit: ({ chunk }) => Effect.sync(() => void kept.push(chunk))
        })
        assert.isAbove(reads, 0)
        assert.strictEqual(lentReads, reads, "every read was a lent one")
        assert.deepStrictEqual(kept.map((chunk) => new TextDecoder().decode(chunk)), ["first,", "second,", "third"])
        assert.strictEqual(result.stdout.text, "first,second,")
        assert.strictEqual(result.stderr.text, "third")
      }))

    it.effect("passes a sink that borrows the executor's own memory, without a copy", () =>
      Effect.gen(function*() {
        const seen: Array<{ readonly buffer: ArrayBufferLike; readonly text: string }> = []
        const { memory, result } = yield* runWith({
          borrows: true,
          emit: ({ chunk }) =>
            Effect.sync(() => void seen.push({ buffer: chunk.buffer, text: Buffer.from(chunk).toString() }))
        })
        assert.deepStrictEqual(seen.map(({ text }) => text), ["first,", "second,", "third"])
        assert.isTrue(seen.every(({ buffer }) => buffer === memory.buffer), "each delta a view of the lent memory")
        assert.strictEqual(result.aggregated.text, "first,second,third", "the capture copied what it keeps")
      }))
  })

  it.effect("neither repeats nor loses a chunk when the sink is slow", () =>
    Effect.gen(function*() {
      const chunks = Array.from({ length: 200 }, (_, i) => Script.out(`${i},`))
      const env = scripted(() => [...chunks, Script.exit(0), Script.close])
      const received: Array<string> = []
      const slowSink = Layer.succeed(
        OutputSink.OutputSink,
        OutputSink.OutputSink.of({
          emit: (delta) =>
            Effect.andThen(Effect.yieldNow, Effect.sync(() => received.push(new TextDecoder().decode(delta.chunk))))
        })
      )
      const result = yield* Exec.run({ command: ["cmd"], maxDeltas: Infinity }).pipe(
        Effect.provide(Layer.merge(env.layer, slowSink))
      )
      const expected = Array.from({ length: 200 }, (_, i) => `${i},`).join("")
      assert.strictEqual(result.stdout.text, expected)
      assert.strictEqual(received.join(""), expected)
    }))

  it.effect("reads a backlog written before the exit whole, however long the sink takes over it", () =>
    Effect.gen(function*() {
      // 4 MiB already written when the exit is seen (a backpressured executor holds a window of it)
      const chunks = Array.from({ length: 64 }, (_, i) => Script.out(bytesOf(64 * 1024, i)))
      const env = scripted(() => [...chunks, Script.exit(0), Script.close])
      // each delta takes 100 ms: the backlog takes 6.4 s to deliver, past the 2 s drain limit
      const slowSink = sinkTaking("100 millis")
      const fiber = yield* Exec.run({ command: ["cmd"], capture: "fullBuffer", maxDeltas: Infinity }).pipe(
        Effect.provide(Layer.merge(env.layer, slowSink)),
        Effect.forkChild
      )
      for (let i = 0; i < 100 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
      const result = yield* settled(fiber)
      assert.strictEqual(result.stdout.totalBytes, 4 * MiB, "every byte written before the exit")
      assert.deepStrictEqual(result.termination, Exec.Termination.Exited({ exitCode: 0 }))
      assert.isFalse(result.pipesHeldOpen)
    }))

  it.effect("does not count a slow sink's time against the drain: short reads after the exit arrive whole", () =>
    Effect.gen(function*() {
      // after the exit, a chunk every 1.5 s: 1 s of waiting on the executor in all, within the drain limit
      const env = scripted(() => [
        Script.exit(0),
        Script.out("one,"),
        Script.wait("1500 millis"),
        Script.out("two,"),
        Script.wait("1500 millis"),
        Script.out("three"),
        Script.close
      ])
      // but every delta takes a second: the sink's 3 s are not the executor's
      const slowSink = sinkTaking("1 second")
      const fiber = yield* Exec.run({ command: ["cmd"], capture: "fullBuffer", maxDeltas: Infinity }).pipe(
        Effect.provide(Layer.merge(env.layer, slowSink)),
        Effect.forkChild
      )
      for (let i = 0; i < 100 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.stdout.text, "one,two,three")
      assert.isFalse(result.pipesHeldOpen)
    }))

  it.effect("ends the drain 2 s after the exit when a background child writes full reads forever, past the backlog", () =>
    Effect.gen(function*() {
      // 512 KiB every 100 ms, 200 MiB in all
      const flood = Array.from({ length: 400 }, () => [Script.out(bytesOf(512 * 1024, 1)), Script.wait("100 millis")])
        .flat()
      const env = scripted(() => [Script.exit(0), ...flood, Script.wait("1 hour"), Script.close])
      const fiber = yield* Exec.run({ command: ["cmd"], capture: "shellTool", timeout: "1 hour" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      for (let i = 0; i < 1000 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
      const result = yield* settled(fiber)
      assert.isTrue(result.pipesHeldOpen, "it gave up on the background writer")
      // the backlog allowance (8 MiB), then 2 s more of its output (5 MiB/s): far from the 200 MiB it would give
      assert.isBelow(result.stdout.totalBytes, 24 * MiB, "long before the 200 MiB the writer would give")
      assert.isAtLeast(result.stdout.totalBytes, 8 * MiB, "the backlog allowance was read")
    }))

  it.effect("takes nothing twice and sends no delta for an empty chunk, whatever a read repeats", () =>
    Effect.gen(function*() {
      const text = (value: string) => new TextEncoder().encode(value)
      const chunk = (seq: number, value: string) => ({ seq, stream: "stdout" as const, chunk: text(value) })
      const base = Script.make(() => [Script.wait("1 hour")])
      // an executor whose second read repeats the first chunk and carries an empty one before the next
      const repeating = Layer.effect(
        Executor,
        Effect.map(Effect.service(Executor), (executor) =>
          Executor.of({
            ...executor,
            read: (request) => {
              const after = request.afterSeq ?? 0
              const ended = { exited: true, exitCode: 0, closed: true, failure: null }
              return Effect.succeed(
                after === 0
                  ? { chunks: [chunk(1, "a")], nextSeq: 2, exited: false, exitCode: null, closed: false, failure: null }
                  : after < 3
                  ? { chunks: [chunk(1, "a"), chunk(2, ""), chunk(3, "b")], nextSeq: 4, ...ended }
                  : { chunks: [], nextSeq: 4, ...ended }
              )
            }
          }))
      ).pipe(Layer.provide(base.layer))
      const deltas = yield* Queue.unbounded<OutputSink.OutputDelta>()
      const result = yield* Exec.run({ command: ["cmd"], timeout: "1 minute" }).pipe(
        Effect.provide(Layer.merge(
          Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(repeating)),
          OutputSink.layerQueue(deltas)
        ))
      )
      assert.strictEqual(result.stdout.text, "ab")
      assert.strictEqual(result.stdout.totalBytes, 2)
      const received = yield* Queue.takeAll(deltas)
      assert.deepStrictEqual(received.map((delta) => new TextDecoder().decode(delta.chunk)), ["a", "b"])
    }))

  it.effect("caps deltas at 10 000 by default", () =>
    Effect.gen(function*() {
      const env = scripted(() => [
        ...Array.from({ length: 10_005 }, () => Script.out("x")),
        Script.exit(0),
        Script.close
      ])
      const deltas = yield* Queue.unbounded<OutputSink.OutputDelta>()
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(
        Effect.provide(Layer.merge(env.layer, OutputSink.layerQueue(deltas)))
      )
      assert.strictEqual((yield* Queue.takeAll(deltas)).length, 10_000)
      assert.strictEqual(result.stdout.totalBytes, 10_005)
    }))

  it.effect("a sink nobody reads does not stall the command", () =>
    Effect.gen(function*() {
      const env = scripted(() => [...Array.from({ length: 100 }, () => Script.out("y")), Script.exit(0), Script.close])
      const deltas = yield* Queue.bounded<OutputSink.OutputDelta>(1)
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(
        Effect.provide(Layer.merge(env.layer, OutputSink.layerQueue(deltas)))
      )
      assert.strictEqual(result.stdout.totalBytes, 100)
    }))

  it.effect("shellTool keeps the first 1 MiB of each stream and counts the rest", () =>
    Effect.gen(function*() {
      const env = scripted(() => [
        Script.out(bytesOf(MiB, 97)),
        Script.out(bytesOf(MiB / 2, 98)),
        Script.err(bytesOf(10, 99)),
        Script.exit(0),
        Script.close
      ])
      const result = yield* Exec.run({ command: ["cmd"], capture: "shellTool" }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.stdout.bytes.length, MiB)
      assert.strictEqual(result.stdout.totalBytes, MiB + MiB / 2)
      assert.strictEqual(result.stdout.droppedBytes, MiB / 2)
      assert.isTrue(result.stdout.bytes.every((b) => b === 97))
      assert.strictEqual(result.aggregated.bytes.length, MiB)
      // past the cap: stdout's 1 MiB and stderr's 10 bytes make more than 1 MiB, so stderr keeps
      // its 10 and stdout the rest, and the text says exactly that
      assert.strictEqual(result.aggregated.text, "a".repeat(MiB - 10) + "c".repeat(10))
      assert.deepStrictEqual([result.aggregated.totalBytes, result.aggregated.droppedBytes], [
        MiB + MiB / 2 + 10,
        MiB / 2 + 10
      ])
    }))

  it.effect("headTail's aggregated text past its cap gives stdout a third and stderr the rest", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("o".repeat(30)), Script.err("e".repeat(30)), Script.exit(0), Script.close])
      const result = yield* Exec.run({ command: ["cmd"], capture: { headBytes: 6, tailBytes: 6 } }).pipe(
        Effect.provide(env.layer)
      )
      assert.strictEqual(result.stdout.text, "oooooo\n[… 18 bytes omitted …]\noooooo")
      // the cap is head + tail = 12: stdout keeps 4, stderr 8 of the 24 bytes the two captures kept
      assert.strictEqual(result.aggregated.text, "oooo" + "eeeeeeee")
      assert.strictEqual(result.aggregated.droppedBytes, 60 - 12)
    }))

  it.effect("fullBuffer keeps everything and has no timeout by default", () =>
    Effect.gen(function*() {
      const env = scripted(() => [
        Script.out(bytesOf(MiB, 97)),
        Script.wait("1 minute"),
        Script.out(bytesOf(MiB, 98)),
        Script.exit(0),
        Script.close
      ])
      const fiber = yield* Exec.run({ command: ["cmd"], capture: "fullBuffer" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("2 minutes")
      const result = yield* settled(fiber)
      assert.isFalse(result.timedOut)
      assert.strictEqual(result.stdout.bytes.length, 2 * MiB)
      assert.strictEqual(result.stdout.droppedBytes, 0)
      assert.strictEqual(result.aggregated.bytes.length, 2 * MiB)
    }))

  it.effect.each(["fullBuffer", "shellTool", { headBytes: 10, tailBytes: 10 }] as const)(
    "honours an explicit timeout with %j capture",
    (capture) =>
      Effect.gen(function*() {
        const env = scripted(() => [Script.out("partial"), Script.wait("1 hour"), Script.exit(0), Script.close])
        const fiber = yield* Exec.run({ command: ["cmd"], capture, timeout: "30 seconds" }).pipe(
          Effect.provide(env.layer),
          Effect.forkChild
        )
        yield* TestClock.adjust("29999 millis")
        assert.isUndefined(fiber.pollUnsafe(), "still running 1 ms before the deadline")
        yield* TestClock.adjust("1 millis")
        const result = yield* settled(fiber)
        assert.isTrue(result.timedOut)
        assert.strictEqual(result.exitCode, 124)
        assert.strictEqual(result.stdout.text, "partial")
        assert.deepStrictEqual(env.terminated, [env.started[0]!.processId])
      })
  )

  it.effect("has no deadline with an infinite timeout, whatever the capture", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.wait("1 hour"), Script.exit(0), Script.close])
      const fiber = yield* Exec.run({ command: ["cmd"], timeout: Duration.infinity }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 hour")
      const result = yield* settled(fiber)
      assert.isFalse(result.timedOut)
      assert.deepStrictEqual(result.termination, Exec.Termination.Exited({ exitCode: 0 }))
    }))

  it.effect("headTail keeps both ends and says how much was cut between", () =>
    Effect.gen(function*() {
      const env = scripted(
        () => [
          Script.out("BEGIN-"),
          Script.out("x".repeat(1000)),
          Script.out("-END:error"),
          Script.exit(1),
          Script.close
        ]
      )
      const result = yield* Exec.run({ command: ["cmd"], capture: { headBytes: 6, tailBytes: 10 } }).pipe(
        Effect.provide(env.layer)
      )
      assert.strictEqual(result.stdout.text, "BEGIN-\n[… 1000 bytes omitted …]\n-END:error")
      assert.deepStrictEqual(result.stdout.omitted, { atByte: 6, bytes: 1000 })
      assert.strictEqual(result.stdout.totalBytes, 1016)
    }))

  it.effect("decodes a multi-byte character split across chunks", () =>
    Effect.gen(function*() {
      const euro = new TextEncoder().encode("€") // 3 bytes
      const env = scripted(() => [
        Script.out(euro.subarray(0, 1)),
        Script.out(euro.subarray(1, 2)),
        Script.out(euro.subarray(2)),
        Script.exit(0),
        Script.close
      ])
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.stdout.text, "€")
    }))

  it.effect("stops draining 2 s after the exit when a pipe stays open", () =>
    Effect.gen(function*() {
      const env = scripted(
        () => [
          Script.out("before"),
          Script.exit(0),
          Script.wait("1 second"),
          Script.out("late"),
          Script.wait("1 hour"),
          Script.close
        ]
      )
      const fiber = yield* Exec.run({ command: ["cmd"], capture: "fullBuffer" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1999 millis")
      assert.isUndefined(fiber.pollUnsafe(), "still draining before the limit")
      yield* TestClock.adjust("1 millis")
      const result = yield* settled(fiber)
      assert.strictEqual(result.stdout.text, "beforelate", "late output within the limit is kept")
      assert.isTrue(result.pipesHeldOpen)
      assert.strictEqual(result.exitCode, 0)
      assert.deepStrictEqual(env.terminated, [], "the background child is left alone")
    }))

  it.effect("returns a Lost result with the partial output when the executor fails mid-run", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("partial"), Script.wait("1 second"), Script.failReads("socket closed")])
      const fiber = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("3 seconds")
      const result = yield* settled(fiber)
      assert.strictEqual(result.termination._tag, "Lost")
      assert.include((result.termination as { reason: string }).reason, "socket closed")
      assert.strictEqual(result.stdout.text, "partial")
    }))

  it.effect("fails typed when the command cannot start", () =>
    Effect.gen(function*() {
      const env = scripted(() => [])
      const error = yield* Effect.flip(Exec.run({ command: [] }).pipe(Effect.provide(env.layer)))
      assert.strictEqual(error._tag, "ExecutorError")
      assert.strictEqual(error.reason._tag, "InvalidRequest")
    }))

  it.effect("refuses a headTail capture of a negative, fractional or NaN size before anything starts", () =>
    Effect.gen(function*() {
      for (
        const capture of [
          { headBytes: -1, tailBytes: 10 },
          { headBytes: 10, tailBytes: -1 },
          { headBytes: 10, tailBytes: 1.5 },
          { headBytes: Number.NaN, tailBytes: 10 }
        ]
      ) {
        const env = scripted(() => [Script.exit(0), Script.close])
        const error = yield* Effect.flip(Exec.run({ command: ["cmd"], capture }).pipe(Effect.provide(env.layer)))
        assert.strictEqual(error.reason._tag, "InvalidRequest")
        assert.include(error.message, `got ${capture.headBytes} and ${capture.tailBytes}`)
        assert.lengthOf(env.started, 0, JSON.stringify(capture))
      }
      const env = scripted(() => [Script.out("ok"), Script.exit(0), Script.close])
      const kept = yield* Exec.run({ command: ["cmd"], capture: { headBytes: 0, tailBytes: 0 } }).pipe(
        Effect.provide(env.layer)
      )
      assert.deepStrictEqual(
        [kept.exitCode, kept.stdout.totalBytes, kept.stdout.bytes.length],
        [0, 2, 0],
        "0 is a size"
      )
    }))

  it.effect("runs onSpawn once the process runs, with the executor's environment by default", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(0), Script.close])
      let spawned = 0
      yield* Exec.run({ command: ["cmd"], onSpawn: Effect.sync(() => spawned++) }).pipe(Effect.provide(env.layer))
      assert.strictEqual(spawned, 1)
      assert.strictEqual(env.started[0]?.envPolicy?.inherit, "all")
      yield* Exec.run({ command: ["cmd"], env: { ONLY: "1" } }).pipe(Effect.provide(env.layer))
      assert.deepStrictEqual(env.started[1]?.env, { ONLY: "1" })
      assert.strictEqual(env.started[1]?.envPolicy, null, "an explicit env is exactly the child's environment")
      assert.strictEqual(env.started[1]?.cwd, "/tmp")
    }))
})

describe("Exec.run on a terminal", () => {
  it.effect("starts a tty process at the terminal's size and captures what it shows in stdout", () =>
    Effect.gen(function*() {
      const env = scripted(
        () => [Script.pty("\x1b[31mred\x1b[0m\r\n"), Script.pty("prompt$ "), Script.exit(0), Script.close]
      )
      const result = yield* Exec.run({ command: ["sh"], tty: { size: { rows: 40, cols: 100 } } }).pipe(
        Effect.provide(env.layer)
      )
      assert.isTrue(env.started[0]?.tty)
      assert.deepStrictEqual(env.started[0]?.size, { rows: 40, cols: 100 })
      assert.strictEqual(result.stdout.text, "\x1b[31mred\x1b[0m\r\nprompt$ ")
      assert.strictEqual(result.stderr.text, "")
      assert.strictEqual(result.aggregated.text, result.stdout.text)
      const plain = yield* Exec.run({ command: ["sh"], tty: true }).pipe(Effect.provide(env.layer))
      assert.isTrue(env.started[1]?.tty)
      assert.isUndefined(env.started[1]?.size, "the executor's default size")
      assert.strictEqual(plain.exitCode, 0)
    }))

  it.effect("sends live deltas on stream pty", () =>
    Effect.gen(function*() {
      const executor = Script.make(() => [Script.pty("hi"), Script.exit(0), Script.close])
      const deltas = yield* Queue.unbounded<OutputSink.OutputDelta>()
      yield* Exec.run({ command: ["sh"], tty: true }).pipe(
        Effect.provide(Layer.mergeAll(
          Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(executor.layer)),
          OutputSink.layerQueue(deltas)
        ))
      )
      const delta = yield* Queue.take(deltas)
      assert.strictEqual(delta.stream, "pty")
      assert.strictEqual(new TextDecoder().decode(delta.chunk), "hi")
    }))

  it.effect("types the terminal's input and applies its resizes while the command runs", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.wait("5 seconds"), Script.exit(0), Script.close])
      const input = yield* Queue.unbounded<Uint8Array, Cause.Done>()
      const sizes = yield* Queue.unbounded<{ readonly rows: number; readonly cols: number }, Cause.Done>()
      const fiber = yield* Exec.run({
        command: ["sh"],
        tty: { input: Stream.fromQueue(input), resize: Stream.fromQueue(sizes) }
      }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("1 second")
      yield* Queue.offer(input, new TextEncoder().encode("ls\r"))
      yield* Queue.offer(sizes, { rows: 50, cols: 132 })
      yield* TestClock.adjust("1 second")
      yield* Queue.offer(input, new TextEncoder().encode("\x04"))
      yield* TestClock.adjust("5 seconds")
      const result = yield* settled(fiber)
      assert.strictEqual(result.exitCode, 0)
      const processId = env.started[0]!.processId
      assert.deepStrictEqual(
        env.written.map((w) => [w.processId, new TextDecoder().decode(w.chunk)]),
        [[processId, "ls\r"], [processId, "\x04"]]
      )
      assert.deepStrictEqual(env.resized, [{ processId, size: { rows: 50, cols: 132 } }])
    }))
})

describe("Exec.run against a server that stops answering", () => {
  it.effect("returns TimedOut instead of hanging when neither reads nor terminate are answered", () =>
    Effect.gen(function*() {
      // a transport whose server answers the handshake and the start, then nothing more
      const answer = (frame: string | Uint8Array) =>
        Effect.sync(() => {
          const message = JSON.parse(typeof frame === "string" ? frame : Buffer.from(frame).toString("utf8"))
          if (message.method === "initialize") deliver({ id: message.id, result: { sessionId: "s" } })
          if (message.method === "process/start") {
            deliver({ id: message.id, result: { processId: message.params.processId } })
          }
        })
      const transport: JsonRpc.Transport = {
        send: answer,
        post: answer,
        listen: (handlers) => {
          onFrame = handlers.onFrame
        },
        pause: () => {},
        resume: () => {},
        close: Effect.void
      }
      let onFrame: (frame: string) => void = () => {}
      const deliver = (message: unknown) => queueMicrotask(() => onFrame(JSON.stringify(message)))
      const executor = yield* RemoteExecutor.make(Effect.succeed(transport), { requestTimeout: "5 seconds" })
      const layer = Layer.mergeAll(
        Environment.fromExecutor({ _tag: "Remote", url: "ws://silent" }).pipe(
          Layer.provide(Layer.succeed(Executor, executor))
        ),
        OutputSink.layerDiscard
      )
      const fiber = yield* Exec.run({ command: ["cmd"], cwd: "/tmp", timeout: "1 second" }).pipe(
        Effect.provide(layer),
        Effect.forkChild
      )
      for (let i = 0; i < 30 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("1 second")
      const result = yield* settled(fiber)
      assert.strictEqual(result.termination._tag, "TimedOut")
      assert.strictEqual(result.exitCode, 124)
    }))
})

describe("Exec.run with stdin", () => {
  const decode = (chunk: Uint8Array) => new TextDecoder().decode(chunk)

  it.effect("writes a string, then ends stdin", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.wait("1 second"), Script.exit(0), Script.close])
      yield* Exec.run({ command: ["cat"], stdin: "hello" }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("2 seconds")
      const processId = env.started[0]!.processId
      assert.isTrue(env.started[0]!.pipeStdin, "a stdin pipe is asked for")
      assert.deepStrictEqual(env.written.map((w) => decode(w.chunk)), ["hello"])
      assert.deepStrictEqual(env.stdinClosed, [processId])
    }))

  it.effect("writes a stream chunk by chunk as it comes, and ends stdin when it ends", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.wait("10 seconds"), Script.exit(0), Script.close])
      const input = yield* Queue.unbounded<Uint8Array, Cause.Done>()
      const fiber = yield* Exec.run({ command: ["cat"], stdin: Stream.fromQueue(input) }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* Queue.offer(input, new TextEncoder().encode("one"))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(env.written.map((w) => decode(w.chunk)), ["one"])
      assert.deepStrictEqual(env.stdinClosed, [], "not ended while the stream goes on")
      yield* Queue.offer(input, new TextEncoder().encode("two"))
      yield* Queue.end(input)
      yield* TestClock.adjust("10 seconds")
      yield* settled(fiber)
      assert.deepStrictEqual(env.written.map((w) => decode(w.chunk)), ["one", "two"])
      assert.deepStrictEqual(env.stdinClosed, [env.started[0]!.processId])
    }))

  it.effect("splits bytes into writes of at most 1 MiB, in order", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.wait("1 second"), Script.exit(0), Script.close])
      const input = new Uint8Array(2 * MiB + 5).map((_, i) => i % 251)
      yield* Exec.run({ command: ["cat"], stdin: input }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(env.written.map((w) => w.chunk.length), [MiB, MiB, 5])
      assert.deepStrictEqual(Buffer.concat(env.written.map((w) => w.chunk)), Buffer.from(input))
    }))

  it.effect("ends stdin at once for empty input, as /dev/null would", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.wait("1 second"), Script.exit(0), Script.close])
      yield* Exec.run({ command: ["cat"], stdin: Stream.empty }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(env.written, [])
      assert.deepStrictEqual(env.stdinClosed, [env.started[0]!.processId])
    }))

  it.effect("stops reading the input once the command no longer takes it", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(0), Script.close])
      let pulled = 0
      const endless = Stream.fromEffectRepeat(Effect.sync(() => {
        pulled++
        return new Uint8Array(16)
      }))
      const result = yield* Exec.run({ command: ["true"], stdin: endless }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.exitCode, 0)
      assert.isAtMost(pulled, env.written.length + 2, "no more pulled than the command was offered")
    }))

  it.effect("refuses stdin with tty: a terminal is typed into", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(0), Script.close])
      const error = yield* Effect.flip(
        Exec.run({ command: ["sh"], tty: true, stdin: "x" }).pipe(Effect.provide(env.layer))
      )
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.deepStrictEqual(env.started, [], "nothing started")
    }))
})

describe("Exec one-liners", () => {
  it.effect("string returns stdout; lines splits it without line ends", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("a\r\nb\n"), Script.err("noise"), Script.exit(0), Script.close])
      assert.strictEqual(yield* Exec.string(["cmd"]).pipe(Effect.provide(env.layer)), "a\r\nb\n")
      assert.deepStrictEqual(yield* Exec.lines(["cmd"]).pipe(Effect.provide(env.layer)), ["a", "b"])
      assert.strictEqual(env.started[0]!.argv[0], "cmd")
    }))

  it.effect("an argv alone keeps all of the output and has no deadline", () =>
    Effect.gen(function*() {
      const env = scripted(
        () => [Script.out(bytesOf(2 * MiB, 120)), Script.wait("1 hour"), Script.exit(0), Script.close]
      )
      const fiber = yield* Exec.string(["cmd"]).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("1 hour")
      const text = yield* settled(fiber)
      assert.strictEqual(text.length, 2 * MiB)
    }))

  it.effect("runOrFail fails with CommandFailed carrying the result on a non-zero exit", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.out("partial"), Script.err("boom\n"), Script.exit(3), Script.close])
      const error = yield* Effect.flip(Exec.runOrFail({ command: ["make", "test"] }).pipe(Effect.provide(env.layer)))
      assert.strictEqual(error._tag, "CommandFailed")
      if (error._tag !== "CommandFailed") return
      assert.strictEqual(error.result.exitCode, 3)
      assert.strictEqual(error.result.stdout.text, "partial")
      assert.strictEqual(error.message, "make test exited with code 3: boom")
      const lines = yield* Effect.flip(Exec.lines(["make"]).pipe(Effect.provide(env.layer)))
      assert.strictEqual(lines._tag, "CommandFailed")
    }))

  it.effect("lines: none for no output, the last line kept without a line end, only one trailing end dropped", () =>
    Effect.gen(function*() {
      const linesOf = (text: string) =>
        Exec.lines(["cmd"]).pipe(
          Effect.provide(
            scripted(() => [...(text === "" ? [] : [Script.out(text)]), Script.exit(0), Script.close]).layer
          )
        )
      assert.deepStrictEqual(yield* linesOf(""), [])
      assert.deepStrictEqual(yield* linesOf("a\nb"), ["a", "b"])
      assert.deepStrictEqual(yield* linesOf("a\n\n"), ["a", ""])
      assert.deepStrictEqual(yield* linesOf("\n"), [""])
    }))

  it.effect("CommandFailed's message shows the argv as a shell user would type it", () =>
    Effect.gen(function*() {
      const failing = scripted(() => [Script.exit(3), Script.close])
      const messageOf = (command: ReadonlyArray<string>) =>
        Effect.map(Effect.flip(Exec.runOrFail({ command }).pipe(Effect.provide(failing.layer))), (e) => e.message)
      assert.strictEqual(yield* messageOf(["sh", "-c", "exit 3"]), "sh -c 'exit 3' exited with code 3")
      assert.strictEqual(yield* messageOf(["printf", "it's", ""]), "printf 'it'\\''s' '' exited with code 3")
      assert.strictEqual(yield* messageOf(["make", "-C", "./a_b", "V=1"]), "make -C ./a_b V=1 exited with code 3")
    }))

  it.effect("CommandFailed's message: a signal without a name, the last 500 characters of stderr, lost, interrupted", () =>
    Effect.gen(function*() {
      const unnamed = scripted(() => [Script.exit(-1), Script.close])
      const signaled = yield* Effect.flip(Exec.runOrFail({ command: ["x"] }).pipe(Effect.provide(unnamed.layer)))
      assert.strictEqual(signaled.message, "x was killed by a signal")
      const noisy = scripted(() => [Script.err(`${"a".repeat(600)}${"z".repeat(500)}\n`), Script.exit(1), Script.close])
      const failed = yield* Effect.flip(Exec.runOrFail({ command: ["x"] }).pipe(Effect.provide(noisy.layer)))
      assert.strictEqual(failed.message, `x exited with code 1: …${"z".repeat(500)}`)
      const exactly = scripted(() => [Script.err("e".repeat(500)), Script.exit(2), Script.close])
      const whole = yield* Effect.flip(Exec.runOrFail({ command: ["x"] }).pipe(Effect.provide(exactly.layer)))
      assert.strictEqual(whole.message, `x exited with code 2: ${"e".repeat(500)}`)
      const lost = scripted(() => [Script.wait("1 second"), Script.failReads("the link went down")])
      const lostRun = yield* Exec.runOrFail({ command: ["x"] }).pipe(
        Effect.provide(lost.layer),
        Effect.flip,
        Effect.forkChild
      )
      yield* TestClock.adjust("3 seconds")
      assert.match((yield* settled(lostRun)).message, /^x was lost: .*the link went down/)
      const stop = yield* Deferred.make<void>()
      const waiting = scripted(() => [Script.wait("1 hour")])
      const fiber = yield* Exec.runOrFail({ command: ["x"], interrupt: Deferred.await(stop) }).pipe(
        Effect.provide(waiting.layer),
        Effect.flip,
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(stop, undefined)
      assert.strictEqual((yield* settled(fiber)).message, "x was interrupted")
    }))

  it.effect("runOrFail fails on a timeout and on a death by signal too", () =>
    Effect.gen(function*() {
      const slow = scripted(() => [Script.wait("1 hour"), Script.exit(0), Script.close])
      const fiber = yield* Exec.runOrFail({ command: ["sleep"], timeout: "1 second" }).pipe(
        Effect.provide(slow.layer),
        Effect.flip,
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      const timedOut = yield* settled(fiber)
      assert.include(timedOut.message, "timed out after 1s")
      const killed = scripted(() => [Script.exit(-1, "SIGKILL"), Script.close])
      const signaled = yield* Effect.flip(Exec.runOrFail({ command: ["x"] }).pipe(Effect.provide(killed.layer)))
      assert.strictEqual(signaled.message, "x was killed by SIGKILL")
    }))

  it.effect("needs no OutputSink layer: deltas are dropped unless one is provided", () =>
    Effect.gen(function*() {
      const executor = Script.make(() => [Script.out("hi"), Script.exit(0), Script.close])
      const environmentOnly = Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(executor.layer))
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(environmentOnly))
      assert.strictEqual(result.stdout.text, "hi")
    }))
})

describe("Exec.run's bookkeeping", () => {
  it.effect("asks for nothing to be killed or read when the deadline passes before the start is sent", () =>
    Effect.gen(function*() {
      const env = watched(() => [Script.exit(0), Script.close], () => ({ defaultCwd: Effect.never }))
      const fiber = yield* Exec.run({ command: ["cmd"], timeout: "1 second" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      const result = yield* settled(fiber)
      assert.deepStrictEqual(result.termination, Exec.Termination.TimedOut({ timeout: Duration.seconds(1) }))
      assert.deepStrictEqual(env.started, [], "never started")
      assert.deepStrictEqual(env.calls.terminated, [], "nothing to kill")
      assert.deepStrictEqual(env.calls.reads, [], "nothing to read")
      assert.strictEqual(result.signal, null)
      assert.strictEqual(result.sandboxType, "none")
      assert.isFalse(result.sandboxDenied)
      assert.isFalse(result.pipesHeldOpen)
    }))

  it.effect("kills a process whose start is unanswered at the interrupt, and reads nothing of it", () =>
    Effect.gen(function*() {
      const env = watched(
        () => [Script.out("unseen"), Script.exit(0), Script.close],
        (inner) => ({ start: (request) => Effect.andThen(inner.start(request), Effect.never) })
      )
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Exec.run({ command: ["cmd"], interrupt: Deferred.await(stop) }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(stop, undefined)
      const result = yield* settled(fiber)
      assert.deepStrictEqual(result.termination, Exec.Termination.Interrupted())
      assert.deepStrictEqual(env.calls.terminated, [env.started[0]!.processId])
      assert.deepStrictEqual(env.calls.reads, [], "no read for a process whose start never answered")
      assert.strictEqual(result.exitCode, -1, "no exit seen: unknown")
      assert.strictEqual(result.signal, null)
      assert.strictEqual(result.stdout.text, "")
      assert.strictEqual(result.sandboxType, "none", "the start's answer never came")
      assert.isFalse(result.sandboxDenied)
    }))

  it.effect("kills a process whose start is unanswered when the calling fiber is interrupted", () =>
    Effect.gen(function*() {
      const env = watched(
        () => [Script.wait("1 hour"), Script.exit(0), Script.close],
        (inner) => ({ start: (request) => Effect.andThen(inner.start(request), Effect.never) })
      )
      const fiber = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(env.started.length, 1)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(env.calls.terminated, [env.started[0]!.processId])
      assert.deepStrictEqual(env.terminated, [env.started[0]!.processId], "the process was running, and is killed")
    }))

  const lostLink = new ConnectionLost({ description: "the link went down" })
  const refused = new SpawnFailed({ kind: "CommandNotFound", command: "cmd", description: "no such file" })
  it.effect.each([
    { name: "ConnectionLost", reasons: [lostLink], killed: true },
    { name: "ProtocolViolation", reasons: [new ProtocolViolation({ description: "a wrong shape" })], killed: true },
    { name: "SpawnFailed", reasons: [refused], killed: false },
    { name: "SpawnFailed and ConnectionLost", reasons: [refused, lostLink], killed: true }
  ])(
    "a start failing with $name fails the call, and kills the process: $killed",
    ({ killed, reasons }) =>
      Effect.gen(function*() {
        // the executor started the process, but its answer is the failure: a lost or broken answer may hide a start
        const cause = reasons.map((reason) => Cause.fail(new ExecutorError({ reason }))).reduce(Cause.combine)
        const env = watched(
          () => [Script.wait("1 hour"), Script.exit(0), Script.close],
          (inner) => ({ start: (request) => Effect.andThen(inner.start(request), Effect.failCause(cause)) })
        )
        const error = yield* Effect.flip(Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer)))
        assert.strictEqual(error.reason._tag, reasons[0]!._tag)
        assert.deepStrictEqual(env.calls.terminated, killed ? [env.started[0]!.processId] : [])
      })
  )

  it.effect("a Lost run claims no exit code and no signal, whatever the executor said before it failed", () =>
    Effect.gen(function*() {
      const env = scripted(() => [
        Script.out("partial"),
        Script.exit(-1, "SIGTERM"),
        Script.wait("500 millis"),
        Script.failReads("the link went down")
      ])
      const fiber = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("3 seconds")
      const result = yield* settled(fiber)
      assert.strictEqual(result.termination._tag, "Lost")
      assert.strictEqual(result.exitCode, -1)
      assert.strictEqual(result.signal, null)
      assert.strictEqual(result.stdout.text, "partial")
      assert.isFalse(result.pipesHeldOpen)
    }))

  it.effect("a signal named with an exit code other than -1 is a death by that signal", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(139, "SIGSEGV"), Script.close])
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.deepStrictEqual(result.termination, Exec.Termination.Signaled({ signal: "SIGSEGV" }))
      assert.strictEqual(result.exitCode, 139)
    }))

  it.effect("a process closed without an exit code ends Exited with -1, unknown", () =>
    Effect.gen(function*() {
      const env = watched(() => [Script.wait("1 hour")], () => ({
        read: answering([
          { upTo: 0, result: { chunks: [chunkOf(1, "x")], nextSeq: 2, ...running } },
          { upTo: Infinity, result: { chunks: [], nextSeq: 2, ...running, closed: true } }
        ])
      }))
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.deepStrictEqual(result.termination, Exec.Termination.Exited({ exitCode: -1 }))
      assert.strictEqual(result.exitCode, -1)
      assert.strictEqual(result.signal, null)
    }))

  it.effect("says pipesHeldOpen only for a run that finished: not for one timed out after the exit", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(0), Script.wait("1 hour"), Script.close])
      const fiber = yield* Exec.run({ command: ["cmd"], timeout: "1 second" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("2 seconds")
      const result = yield* settled(fiber)
      assert.strictEqual(result.termination._tag, "TimedOut")
      assert.isFalse(result.pipesHeldOpen)
    }))

  it.effect("runOrFail fails on the request's interrupt even after the command exited 0", () =>
    Effect.gen(function*() {
      // exited, but a background child holds its pipe: the interrupt comes during the drain
      const env = scripted(() => [Script.exit(0), Script.wait("1 hour"), Script.close])
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Exec.runOrFail({ command: ["x"], interrupt: Deferred.await(stop) }).pipe(
        Effect.provide(env.layer),
        Effect.flip,
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(stop, undefined)
      // the drain after the interrupt: what the group left, within the drain limit
      yield* TestClock.adjust("2 seconds")
      const error = yield* settled(fiber)
      assert.strictEqual(error._tag, "CommandFailed")
      if (error._tag !== "CommandFailed") return
      assert.strictEqual(error.result.exitCode, 0)
      assert.deepStrictEqual(error.result.termination, Exec.Termination.Interrupted())
      assert.strictEqual(error.message, "x was interrupted")
    }))

  it.effect("sums what the executor dropped and keeps its sandbox verdict, read after read", () =>
    Effect.gen(function*() {
      const exited = { exited: true, exitCode: 1, closed: false, failure: null }
      const env = watched(() => [Script.wait("1 hour")], () => ({
        read: answering([
          {
            upTo: 0,
            result: { chunks: [chunkOf(1, "a")], nextSeq: 2, ...exited, dropped: { bytes: 7, chunks: 1 } }
          },
          {
            upTo: Infinity,
            result: {
              chunks: [],
              nextSeq: 2,
              ...exited,
              closed: true,
              dropped: { bytes: 5, chunks: 2 },
              sandboxDenied: true
            }
          }
        ])
      }))
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.droppedByExecutor, 12)
      assert.isTrue(result.sandboxDenied)
      assert.strictEqual(result.exitCode, 1)
      const silent = watched(() => [Script.wait("1 hour")], () => ({
        read: answering([{ upTo: Infinity, result: { chunks: [], nextSeq: 1, ...exited, closed: true } }])
      }))
      const plain = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(silent.layer))
      assert.isFalse(plain.sandboxDenied, "an answer that does not say is no denial")
      assert.strictEqual(plain.droppedByExecutor, 0)
    }))

  it.effect("reads on from the answer's nextSeq, and takes no seq twice in one answer, not even an empty chunk's", () =>
    Effect.gen(function*() {
      const env = watched(() => [Script.wait("1 hour")], () => ({
        read: answering([
          // seqs 2 to 4 went to events that are not output: the next read is after 4
          { upTo: 0, result: { chunks: [chunkOf(1, "a")], nextSeq: 5, ...running } },
          {
            upTo: 4,
            result: {
              chunks: [chunkOf(5, ""), chunkOf(5, "again"), chunkOf(6, "b")],
              nextSeq: 7,
              ...running,
              exited: true,
              exitCode: 0
            }
          },
          { upTo: Infinity, result: { chunks: [], nextSeq: 7, exited: true, exitCode: 0, closed: true, failure: null } }
        ])
      }))
      const result = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer))
      assert.strictEqual(result.stdout.text, "ab")
      assert.deepStrictEqual(env.calls.reads.map((read) => read.afterSeq), [0, 4, 6])
    }))

  it.effect("after the exit, a read waits no longer than the drain has left", () =>
    Effect.gen(function*() {
      const env = watched(() => [Script.exit(0), Script.wait("500 millis"), Script.out("x"), Script.wait("1 hour")])
      const fiber = yield* Exec.run({ command: ["cmd"] }).pipe(Effect.provide(env.layer), Effect.forkChild)
      for (let i = 0; i < 30 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
      const result = yield* settled(fiber)
      assert.isTrue(result.pipesHeldOpen)
      assert.strictEqual(result.stdout.text, "x")
      // the exit at 0, output at 500 ms: 2 s of drain from the exit's read, in waits of at most 1 s
      assert.deepStrictEqual(env.calls.reads.map((read) => read.waitMs), [1000, 1000, 1000, 500])
    }))

  it.effect("after the exit, half-full reads renew the drain until 8 MiB were read, then it ends", () =>
    Effect.gen(function*() {
      // after the exit, a read of half the read size (256 KiB) every 1.5 s: each renews the 2 s limit while
      // less than the 8 MiB backlog allowance was read before it; the 33rd does not, and the 34th comes too late
      const half = Exec.defaults.readBytes / 2
      const trickle = Array.from({ length: 40 }, (_, i) => [Script.wait("1500 millis"), Script.out(bytesOf(half, i))])
        .flat()
      const env = scripted(() => [Script.exit(0), ...trickle, Script.close])
      const fiber = yield* Exec.run({ command: ["cmd"], capture: "fullBuffer" }).pipe(
        Effect.provide(env.layer),
        Effect.forkChild
      )
      for (let i = 0; i < 1000 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
      const result = yield* settled(fiber)
      assert.isTrue(result.pipesHeldOpen)
      assert.strictEqual(result.stdout.totalBytes, 33 * half)
    }))

  it.effect("after a timeout that comes once the exit was seen, still collects what the pipes held", () =>
    Effect.gen(function*() {
      // the exit is read first; the timeout comes while a slow sink delivers "one,", before "two" was read
      const env = scripted(() => [
        Script.exit(0),
        Script.wait("100 millis"),
        Script.out("one,"),
        Script.wait("100 millis"),
        Script.out("two"),
        Script.wait("1 hour"),
        Script.close
      ])
      const slowSink = sinkTaking("1 second")
      const fiber = yield* Exec.run({ command: ["cmd"], timeout: "500 millis" }).pipe(
        Effect.provide(Layer.merge(env.layer, slowSink)),
        Effect.forkChild
      )
      for (let i = 0; i < 50 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
      const result = yield* settled(fiber)
      assert.strictEqual(result.termination._tag, "TimedOut")
      assert.strictEqual(result.stdout.text, "one,two")
    }))
})

describe("Exec.run in an environment of a registry", () => {
  it.effect("fails typed, naming the environments asked for, when no registry is provided", () =>
    Effect.gen(function*() {
      const env = scripted(() => [Script.exit(0), Script.close])
      const refusal = (environment: EnvironmentRegistry.Selection) =>
        // the type asks for a registry: this program lies about it, as a caller without one would
        (Exec.run({ command: ["cmd"], environment }) as Effect.Effect<Exec.ExecResult, ExecutorError>).pipe(
          Effect.provide(env.layer),
          Effect.flip,
          Effect.map((error) => error.reason)
        )
      for (
        const [selection, named] of [
          ["devbox", "devbox"],
          [EnvironmentRegistry.leastBusy(["a", "b"]), "a,b"],
          [EnvironmentRegistry.leastBusy(), ""]
        ] as const
      ) {
        const reason = yield* refusal(selection)
        assert.strictEqual(reason._tag, "EnvironmentUnavailable")
        if (reason._tag !== "EnvironmentUnavailable") return
        assert.strictEqual(reason.kind, "NoRegistry")
        assert.strictEqual(reason.environment, named)
        assert.include(reason.description, "no EnvironmentRegistry is provided")
      }
      assert.deepStrictEqual(env.started, [], "nothing started")
    }))
})

describe("Exec.run's input", () => {
  it.effect("types nothing more into a terminal once it refused a write", () =>
    Effect.gen(function*() {
      const env = watched(() => [Script.exit(0), Script.wait("1 hour"), Script.close])
      const keys = ["a", "b", "c"].map((key) => new TextEncoder().encode(key))
      const fiber = yield* Exec.run({
        command: ["sh"],
        tty: {
          input: Stream.concat(
            Stream.fromEffect(Effect.sleep("1 second")).pipe(Stream.drain),
            Stream.fromIterable(keys)
          )
        }
      }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("3 seconds")
      yield* settled(fiber)
      assert.strictEqual(env.calls.writes, 1, "the exited process refused the first key: no other was offered")
      assert.deepStrictEqual(env.written, [])
    }))

  it.effect("does not end stdin the command no longer takes", () =>
    Effect.gen(function*() {
      const env = watched(() => [Script.exit(0), Script.wait("1 hour"), Script.close])
      const fiber = yield* Exec.run({
        command: ["cat"],
        stdin: Stream.concat(
          Stream.fromEffect(Effect.sleep("1 second")).pipe(Stream.drain),
          Stream.make(new Uint8Array(4))
        )
      }).pipe(Effect.provide(env.layer), Effect.forkChild)
      yield* TestClock.adjust("3 seconds")
      yield* settled(fiber)
      assert.strictEqual(env.calls.writes, 1)
      assert.strictEqual(env.calls.stdinCloses, 0, "its stdin was closed already")
    }))

  it.effect("writes no empty chunk: empty input ends stdin at once, 1 MiB is one write", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<{ readonly stdin: string | Uint8Array; readonly writes: ReadonlyArray<number> }> = [
        { stdin: "", writes: [] },
        { stdin: bytesOf(MiB, 1), writes: [MiB] }
      ]
      for (const { stdin, writes } of cases) {
        const env = watched(() => [Script.wait("1 second"), Script.exit(0), Script.close])
        const fiber = yield* Exec.run({ command: ["cat"], stdin }).pipe(Effect.provide(env.layer), Effect.forkChild)
        yield* TestClock.adjust("2 seconds")
        yield* settled(fiber)
        assert.deepStrictEqual(env.written.map((w) => w.chunk.length), writes)
        assert.strictEqual(env.calls.writes, writes.length)
        assert.deepStrictEqual(env.stdinClosed, [env.started[0]!.processId])
      }
    }))
})
