import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { ProcessEvent } from "../src/Executor.ts"
import * as Defaults from "../src/internal/defaults.ts"
import { ProcessLog } from "../src/internal/local/processLog.ts"
import { OutputMemory } from "../src/internal/outputMemory.ts"
import { PushedOutput } from "../src/internal/remote/pushedOutput.ts"

const output = (seq: number, text: string) =>
  ({ _tag: "Output", seq, stream: "stdout", chunk: new TextEncoder().encode(text) }) as const
const texts = (result: ReturnType<PushedOutput["read"]>) => result?.chunks.map((c) => new TextDecoder().decode(c.chunk))

describe("PushedOutput (the remote executor's cache of pushed output)", () => {
  it("answers a read only from output that follows the cursor without a gap", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "a"))
    cache.add(output(2, "b"))
    cache.add(output(4, "d"))
    const result = cache.read(0, null)
    assert.deepStrictEqual(texts(result), ["a", "b"], "seq 3 is missing: the answer stops before it")
    assert.strictEqual(result?.nextSeq, 3)
    assert.isFalse(result?.closed)
    assert.isUndefined(cache.read(2, null), "seq 3 is missing: ask the server")
  })

  it("keeps what a server pushes in order, and ignores what comes out of order (a repeat or a reordering)", () => {
    const cache = new PushedOutput()
    cache.add(output(2, "b"))
    cache.add(output(1, "a"))
    assert.strictEqual(cache.size, 1)
    assert.isUndefined(cache.read(0, null), "seq 1 never arrived in order: the server answers for it")
    assert.deepStrictEqual(texts(cache.read(1, null)), ["b"])
  })

  it("skips the exit, stops at the close, and says closed only then", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "a"))
    cache.add({ _tag: "Exited", seq: 2, exitCode: 3, signal: null, sandboxDenied: false })
    cache.add(output(3, "late"))
    cache.add({ _tag: "Closed", seq: 4 })
    const result = cache.read(0, null)
    assert.deepStrictEqual(texts(result), ["a", "late"])
    assert.deepStrictEqual([result?.exited, result?.exitCode, result?.closed, result?.nextSeq], [true, 3, true, 5])
    assert.deepStrictEqual(
      cache.read(3, null),
      {
        chunks: [],
        nextSeq: 5,
        exited: true,
        exitCode: 3,
        closed: true,
        failure: null,
        signal: null,
        sandboxDenied: false
      },
      "after the last output comes the close: answered without a round trip"
    )
    assert.isTrue(cache.knowsNext(3))
  })

  it("answers the exit alone, and a close only once it knows the exit", () => {
    const cache = new PushedOutput()
    cache.add({ _tag: "Exited", seq: 1, exitCode: 0, signal: "SIGTERM", sandboxDenied: true })
    assert.deepStrictEqual(cache.read(0, null), {
      chunks: [],
      nextSeq: 2,
      exited: true,
      exitCode: 0,
      closed: false,
      failure: null,
      signal: "SIGTERM",
      sandboxDenied: true
    })
    const noExit = new PushedOutput()
    noExit.add(output(1, "a"))
    noExit.add({ _tag: "Closed", seq: 2 })
    assert.isUndefined(noExit.read(1, null), "a close with no exit known: the server says how it ended")
    assert.isUndefined(noExit.read(0, null))
  })

  it("answers as the server's log does for the same events: nextSeq past an exit or a close it went through", () => {
    const events: ReadonlyArray<ProcessEvent> = [
      output(1, "a"),
      { _tag: "Exited", seq: 2, exitCode: 0, signal: null, sandboxDenied: false },
      output(3, "late"),
      { _tag: "Closed", seq: 4 }
    ]
    for (let known = 1; known <= events.length; known++) {
      const cache = new PushedOutput()
      const log = new ProcessLog(1024 * 1024, false)
      for (const event of events.slice(0, known)) {
        cache.add(event)
        if (event._tag === "Output") log.appendOutput(event.stream, event.chunk)
        else if (event._tag === "Exited") log.markExited(event.exitCode, event.signal)
        else if (event._tag === "Closed") log.markClosed()
      }
      for (let cursor = 0; cursor < known; cursor++) {
        for (const maxBytes of [null, 1]) {
          const pushed = cache.read(cursor, maxBytes)!
          const served = log.read(cursor, maxBytes)
          assert.deepStrictEqual(
            [pushed.nextSeq, pushed.closed, pushed.exited, pushed.exitCode, pushed.chunks.map((c) => c.seq)],
            [served.nextSeq, served.closed, served.exited, served.exitCode, served.chunks.map((c) => c.seq)],
            `${known} events, cursor ${cursor}, maxBytes ${maxBytes}`
          )
        }
      }
      // a reader past the close (where the answer above leaves it) is answered at once, as the server would
      const closed = log.read(0, null)
      if (closed.closed) {
        cache.trim(closed.nextSeq - 1)
        const pushed = cache.read(closed.nextSeq - 1, null)
        const served = log.read(closed.nextSeq - 1, null)
        assert.deepStrictEqual(pushed, served, "a read past the close")
      }
    }
  })

  it("marks the close only when the close arrives: output after the exit leaves the process open", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "a"))
    cache.add({ _tag: "Exited", seq: 2, exitCode: 0, signal: null, sandboxDenied: false })
    cache.add(output(3, "late"))
    const result = cache.read(0, null)
    assert.deepStrictEqual([texts(result), result?.closed, result?.nextSeq], [["a", "late"], false, 4])
    assert.isUndefined(cache.read(3, null), "the close has not arrived: the server answers for what follows")
    assert.isFalse(cache.knowsNext(3))
  })

  it("says sandboxDenied only when the exit said so", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "a"))
    assert.deepStrictEqual([cache.read(0, null)?.exited, cache.read(0, null)?.sandboxDenied], [false, false])
    cache.add({ _tag: "Exited", seq: 2, exitCode: 1, signal: null, sandboxDenied: false })
    assert.deepStrictEqual([cache.read(0, null)?.exited, cache.read(0, null)?.sandboxDenied], [true, false])
    const denied = new PushedOutput()
    denied.add(output(1, "a"))
    denied.add({ _tag: "Exited", seq: 2, exitCode: 1, signal: null, sandboxDenied: true })
    assert.isTrue(denied.read(0, null)?.sandboxDenied)
  })

  it("holds at most twice the server's window, never under its floor nor over its ceiling", () => {
    const { maxCachedBytesPerProcess: floor, maxCachedBytesPerProcessCeiling: ceiling } = Defaults.client
    const cache = new PushedOutput()
    assert.strictEqual(cache.maxBytes, floor, "no window announced")
    cache.windowBytes = floor / 4
    assert.strictEqual(cache.maxBytes, floor, "twice a small window is under the floor")
    cache.windowBytes = floor
    assert.strictEqual(cache.maxBytes, 2 * floor)
    cache.windowBytes = ceiling
    assert.strictEqual(cache.maxBytes, ceiling, "twice a huge window is over the ceiling")
  })

  it("wakes a waiting reader once a turn of the event loop, however many frames arrived in it", async () => {
    const cache = new PushedOutput()
    let looks = 0
    const stop = () => {
      looks++
      return false
    }
    const waiting = Effect.runPromise(cache.untilNext(3, stop, 60_000))
    let done = false
    void waiting.then(() => {
      done = true
    })
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve))
    assert.strictEqual(looks, 1, "looked once when it started waiting")
    for (let seq = 1; seq <= 3; seq++) cache.add(output(seq, "x"))
    await turn()
    await turn()
    assert.strictEqual(looks, 2, "three frames in one turn: one wake-up")
    assert.isFalse(done, "seq 4 has not arrived")
    cache.add(output(4, "y"))
    await turn()
    await turn()
    assert.isTrue(done)
  })

  it("answers a cursor at or past the close at once: nothing more, closed, nextSeq past the close", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "a"))
    cache.add({ _tag: "Exited", seq: 2, exitCode: 7, signal: null, sandboxDenied: false })
    cache.add({ _tag: "Closed", seq: 3 })
    for (const cursor of [3, 4, 100]) {
      cache.trim(cursor)
      assert.strictEqual(cache.size, 0)
      const answer = cache.read(cursor, null)
      assert.deepStrictEqual(
        answer && [answer.chunks.length, answer.nextSeq, answer.exited, answer.exitCode, answer.closed],
        [0, 4, true, 7, true],
        `cursor ${cursor}: no round trip, and no wait for a push that will never come`
      )
    }
  })

  it("honours maxBytes, the first chunk always whole", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "aaaa"))
    cache.add(output(2, "bb"))
    assert.deepStrictEqual(texts(cache.read(0, 1)), ["aaaa"])
    assert.deepStrictEqual(texts(cache.read(0, 6)), ["aaaa", "bb"])
  })

  it("forgets what a reader has, and counts the bytes it holds", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "aaaa"))
    cache.add(output(2, "bb"))
    assert.strictEqual(cache.bytes, 6)
    cache.trim(1)
    assert.strictEqual(cache.bytes, 2)
    cache.add(output(1, "aaaa"))
    assert.strictEqual(cache.bytes, 2, "a repeat of what the reader has is not kept")
    cache.add(output(2, "bb"))
    assert.strictEqual(cache.bytes, 2, "nor a duplicate")
    assert.deepStrictEqual(texts(cache.read(1, null)), ["bb"])
  })

  it("jumps any gap in one step: a cursor of 2^53 − 2 costs what a cursor of 2 does", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "a"))
    cache.add(output(Number.MAX_SAFE_INTEGER - 1, "far"))
    cache.trim(Number.MAX_SAFE_INTEGER - 2)
    assert.deepStrictEqual([cache.size, cache.bytes], [1, 3])
    assert.deepStrictEqual(texts(cache.read(Number.MAX_SAFE_INTEGER - 2, null)), ["far"])
    cache.trim(Number.MAX_SAFE_INTEGER)
    assert.deepStrictEqual([cache.size, cache.bytes], [0, 0])
    cache.add(output(5, "old"))
    assert.strictEqual(cache.size, 0, "anything at or before the reader's cursor is a repeat")
  })

  describe("with its chunks in the memory frames are assembled in", () => {
    const half = Defaults.pipes.slabBytes / 2
    const frame = (memory: OutputMemory, seq: number) =>
      ({ _tag: "Output", seq, stream: "stdout", chunk: memory.pipe().reserve(half).fill(seq) }) as const

    it("lends a view of the memory to a lending reader, and gives any other a copy of its own", () => {
      const memory = new OutputMemory("always")
      const cache = new PushedOutput(memory)
      const pushed = frame(memory, 1)
      cache.add(pushed)
      const [lent] = cache.read(0, null, true)!.chunks
      const [kept] = cache.read(0, null)!.chunks
      assert.strictEqual(lent!.chunk, pushed.chunk)
      assert.notStrictEqual(kept!.chunk.buffer, pushed.chunk.buffer)
      assert.deepStrictEqual(kept!.chunk, pushed.chunk)
      // a chunk in memory of its own (a small frame, a JSON notification's) is nobody else's: no copy needed
      const own = output(2, "own")
      cache.add(own)
      assert.strictEqual(cache.read(1, null)!.chunks[0]!.chunk, own.chunk)
    })

    it("given up, lets its slabs go, never to be reused: the reader may still hold the last chunks it was lent", () => {
      // the shared pool of free slabs emptied: a slab given back is the next one taken
      const others = new OutputMemory("always").pipe()
      for (let i = 0; i < 2 * (Defaults.pipes.pooledSlabs + 2); i++) others.reserve(half)
      const memory = new OutputMemory("always")
      const pipe = memory.pipe()
      const cache = new PushedOutput(memory)
      cache.add({ _tag: "Output", seq: 1, stream: "stdout", chunk: pipe.reserve(half).fill(1) })
      memory.drop(pipe.reserve(half), true) // the rest of the slab: a frame nobody kept
      pipe.reserve(half) // the next slab
      const [lent] = cache.read(0, null, true)!.chunks
      assert.strictEqual(memory.slabCount, 2)
      cache.release()
      assert.deepStrictEqual([memory.slabCount, cache.size, cache.bytes], [1, 0, 0], "its slab went")
      for (let i = 0; i < 4; i++) others.reserve(half).fill(0xee)
      assert.isTrue(lent!.chunk.every((byte) => byte === 1), "the chunk lent is left alone")
    })
  })

  it.prop(
    "whatever is pushed, a read answers contiguous seqs after its cursor and bytes are counted exactly",
    {
      events: Schema.Array(Schema.Struct({
        seq: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 60 })),
        length: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 5 })),
        tag: Schema.Literals(["Output", "Output", "Exited", "Closed"])
      })),
      cursor: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 60 }))
    },
    ({ cursor, events }) => {
      const cache = new PushedOutput()
      let lastSeq = 0
      for (const { length, seq, tag } of events) {
        cache.add(
          tag === "Output"
            ? output(seq, "x".repeat(length))
            : tag === "Exited"
            ? { _tag: "Exited", seq, exitCode: 0, signal: null, sandboxDenied: false }
            : { _tag: "Closed", seq }
        )
        lastSeq = Math.max(lastSeq, seq)
      }
      assert.isAtMost(cache.size, events.length)
      const answer = cache.read(cursor, 3)
      if (answer !== undefined && answer.chunks.length === 0) {
        // no output after the cursor: the exit, then the close, only ever said once the exit is known
        assert.isTrue(answer.exited)
        if (answer.nextSeq <= cursor + 1) {
          // a cursor at or past the close: nothing more, closed, and the reader is moved just past the close
          assert.isTrue(answer.closed)
          assert.isTrue(cache.knowsNext(answer.nextSeq - 2), "nextSeq follows the close")
        } else {
          for (let seq = cursor + 1; seq < answer.nextSeq; seq++) assert.isTrue(cache.knowsNext(seq - 1), `seq ${seq}`)
        }
      } else if (answer !== undefined) {
        // every seq from the cursor to nextSeq was pushed (no gap), the chunks among them in order
        for (let seq = cursor + 1; seq < answer.nextSeq; seq++) assert.isTrue(cache.knowsNext(seq - 1), `seq ${seq}`)
        assert.isAbove(answer.chunks[0]!.seq, cursor)
        for (let i = 1; i < answer.chunks.length; i++) assert.isAbove(answer.chunks[i]!.seq, answer.chunks[i - 1]!.seq)
        assert.isAbove(answer.nextSeq, answer.chunks.at(-1)!.seq)
      }
      cache.trim(lastSeq)
      assert.deepStrictEqual([cache.size, cache.bytes], [0, 0], "trimmed to the last seq, nothing is left")
    }
  )
})
