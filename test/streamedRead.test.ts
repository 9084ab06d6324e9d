/**
 * A read of a process whose output the server pushes, on its own: answered
 * from the cache without a round trip when the next chunks arrived, waiting
 * (in virtual time) for a push otherwise, asking the server when the wait
 * ends or the link is lost; and the server told the reader's cursor, once per
 * quarter of its window. The link is a recorder of what the read sends: the
 * real link and server are in `RemoteStreaming.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import type { Link } from "../src/internal/remote/link.ts"
import { PushedOutput } from "../src/internal/remote/pushedOutput.ts"
import { streamedRead } from "../src/internal/remote/streamedRead.ts"
import type * as Protocol from "../src/Protocol.ts"

const output = (seq: number, text: string) =>
  ({ _tag: "Output", seq, stream: "stdout", chunk: new TextEncoder().encode(text) }) as const
const texts = (result: Protocol.ReadResult) => result.chunks.map((c) => new TextDecoder().decode(c.chunk))

/** What the server answers when asked, recognisable in the result. */
const fromServer: Protocol.ReadResult = {
  chunks: [],
  nextSeq: 99,
  exited: false,
  exitCode: null,
  closed: false,
  failure: null
}

/** A link whose connection is `connection` (undefined: lost), recording the acknowledgements and server reads. */
const recorder = () => {
  const state = {
    connection: {} as object | undefined,
    acknowledged: [] as Array<number>,
    serverReads: [] as Array<number>
  }
  const link = {
    get live() {
      return state.connection
    },
    notify: (_method: string, params: { readonly afterSeq: number }) =>
      Effect.sync(() => {
        state.acknowledged.push(params.afterSeq)
      })
  } as unknown as Link
  const serverRead = (request: Protocol.ReadParams) =>
    Effect.sync(() => {
      state.serverReads.push(request.afterSeq ?? 0)
      return fromServer
    })
  const read = (cache: PushedOutput, afterSeq: number, waitMs = 0) =>
    streamedRead(link, cache, { processId: "p", afterSeq, maxBytes: null, waitMs }, serverRead, false)
  return { state, read }
}

describe("streamedRead (a read of pushed output)", () => {
  it.effect("answers from the cache without asking the server, and acknowledges each new cursor", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      cache.add(output(1, "a"))
      cache.add(output(2, "b"))
      assert.deepStrictEqual(texts(yield* read(cache, 0)), ["a", "b"])
      assert.deepStrictEqual(state.serverReads, [], "no round trip")
      assert.deepStrictEqual(state.acknowledged, [], "cursor 0 tells the server nothing new")
      cache.add(output(3, "c"))
      assert.deepStrictEqual(texts(yield* read(cache, 2)), ["c"])
      assert.deepStrictEqual(state.acknowledged, [2])
      assert.strictEqual(cache.acknowledged, 2)
      // an older cursor (a reader repeating itself) never moves the acknowledgement back
      yield* read(cache, 1).pipe(Effect.ignore)
      assert.deepStrictEqual(state.acknowledged, [2])
    }))

  it.effect("acknowledges once a quarter of the server's window was taken, not on every read", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      cache.windowBytes = 8
      for (let seq = 1; seq <= 4; seq++) cache.add(output(seq, "x"))
      yield* read(cache, 1) // 1 byte taken: below a quarter of 8
      assert.deepStrictEqual(state.acknowledged, [])
      yield* read(cache, 2) // 2 bytes: a quarter
      assert.deepStrictEqual(state.acknowledged, [2])
      assert.strictEqual(cache.takenSinceAcknowledged, 0, "counted again from the acknowledgement")
      yield* read(cache, 3)
      assert.deepStrictEqual(state.acknowledged, [2])
    }))

  it.effect("waits for the push within waitMs and answers from it", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      const reader = yield* Effect.forkChild(read(cache, 0, 5_000))
      yield* TestClock.adjust("1 second")
      assert.isUndefined(reader.pollUnsafe(), "still waiting: nothing pushed yet")
      cache.add(output(1, "late"))
      const answer = yield* Fiber.join(reader)
      assert.deepStrictEqual(texts(answer), ["late"])
      assert.deepStrictEqual(state.serverReads, [])
    }))

  it.effect("asks the server once waitMs passed without a push", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      const reader = yield* Effect.forkChild(read(cache, 0, 5_000))
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(reader.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(reader), fromServer)
      assert.deepStrictEqual(state.serverReads, [0])
    }))

  it.effect("asks the server at once without waitMs, with a lost link, or for an end the push cannot tell", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      /** The read's answer after 1 ms of virtual time, of the 60 s it may wait: undefined while it still waits. */
      const answerAt1ms = (cache: PushedOutput, waitMs: number) =>
        Effect.gen(function*() {
          const reader = yield* Effect.forkChild(read(cache, 0, waitMs))
          yield* TestClock.adjust("1 millis")
          const exit = reader.pollUnsafe()
          return exit !== undefined && exit._tag === "Success" ? exit.value : undefined
        })
      const cache = new PushedOutput()
      assert.strictEqual(yield* answerAt1ms(cache, 0), fromServer, "no wait asked")
      const closedOnly = new PushedOutput()
      closedOnly.add({ _tag: "Closed", seq: 1 })
      assert.strictEqual(
        yield* answerAt1ms(closedOnly, 60_000),
        fromServer,
        "a close pushed with no exit: the server says how it ended, without a wait"
      )
      state.connection = undefined
      assert.strictEqual(yield* answerAt1ms(cache, 60_000), fromServer, "no link: nothing will be pushed")
      assert.deepStrictEqual(state.serverReads, [0, 0, 0])
    }))

  it.effect("answers the exit and the close from the push, and tells the server the reader saw the end", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      cache.windowBytes = 1024 // acknowledgements by the quarter window: none due for a byte
      cache.add(output(1, "a"))
      assert.deepStrictEqual(texts(yield* read(cache, 0)), ["a"])
      const reader = yield* Effect.forkChild(read(cache, 1, 5_000))
      cache.add({ _tag: "Exited", seq: 2, exitCode: 4, signal: null, sandboxDenied: false })
      const exited = yield* Fiber.join(reader)
      assert.deepStrictEqual([exited.exited, exited.exitCode, exited.closed, exited.nextSeq], [true, 4, false, 3])
      assert.deepStrictEqual(state.acknowledged, [], "not yet the end, and not a quarter window")
      cache.add({ _tag: "Closed", seq: 3 })
      const closed = yield* read(cache, 2, 5_000)
      assert.deepStrictEqual([closed.closed, closed.nextSeq], [true, 4])
      assert.deepStrictEqual(state.serverReads, [], "no round trip for the end")
      assert.deepStrictEqual(
        state.acknowledged,
        [3],
        "the close's seq: the server forgets a process whose end was seen first"
      )
      yield* read(cache, 3)
      assert.deepStrictEqual(state.acknowledged, [3], "once")
    }))

  it.effect("output pushed on the new link while the read waits is answered from the cache, not asked again", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      const reader = yield* Effect.forkChild(read(cache, 0, 60_000))
      yield* TestClock.adjust("1 second")
      state.connection = {} // resumed: the new connection pushed what follows the cursor before the wait looked again
      cache.add(output(1, "resumed"))
      cache.wake()
      assert.deepStrictEqual(texts(yield* Fiber.join(reader)), ["resumed"])
      assert.deepStrictEqual(state.serverReads, [], "the same bytes the server would send: no round trip")
    }))

  it.effect("an end known from the push while the link is down is read from the server, which learns it was seen", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      cache.add({ _tag: "Exited", seq: 1, exitCode: 0, signal: null, sandboxDenied: false })
      cache.add({ _tag: "Closed", seq: 2 })
      state.connection = undefined
      assert.strictEqual(yield* read(cache, 0), fromServer)
      assert.deepStrictEqual([state.serverReads, state.acknowledged], [[0], []])
      state.connection = {}
      const closed = yield* read(cache, 0)
      assert.deepStrictEqual([closed.closed, closed.nextSeq], [true, 3])
      assert.deepStrictEqual([state.serverReads, state.acknowledged], [[0], [2]], "with a link: from the push")
    }))

  it.effect("a link lost while the read waits sends it to the server at once", () =>
    Effect.gen(function*() {
      const { state, read } = recorder()
      const cache = new PushedOutput()
      const reader = yield* Effect.forkChild(read(cache, 0, 60_000))
      yield* TestClock.adjust("1 second")
      state.connection = {} // a new connection: the old one will push nothing more
      cache.wake()
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(reader.pollUnsafe(), Exit.succeed(fromServer), "at once, not at the end of the wait")
      assert.deepStrictEqual(state.serverReads, [0])
    }))
})
