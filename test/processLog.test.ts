/**
 * The sequence-numbered log behind every local process (and the scripted
 * executor): what a `process/read` answers at each cursor, what it retains
 * within its byte budget and what it says it dropped, backpressure, and the
 * event stream the notifier follows. Reads wait in virtual time.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import type { ProcessEvent } from "../src/Executor.ts"
import * as Defaults from "../src/internal/defaults.ts"
import { eventStream, longPollRead, ProcessLog } from "../src/internal/local/processLog.ts"
import { OutputMemory } from "../src/internal/outputMemory.ts"

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (chunk: Uint8Array) => new TextDecoder().decode(chunk)
/** A read's chunks as `seq:stream:text`. */
const shown = (chunks: ReadonlyArray<{ seq: number; stream: string; chunk: Uint8Array }>) =>
  chunks.map(({ chunk, seq, stream }) => `${seq}:${stream}:${text(chunk)}`)

/** A log holding "aa" (seq 1), "bbb" (2, stderr), "c" (3), exited 7 at seq 4, closed at 5. */
const closedLog = () => {
  const log = new ProcessLog(1024, false)
  log.appendOutput("stdout", bytes("aa"))
  log.appendOutput("stderr", bytes("bbb"))
  log.appendOutput("stdout", bytes("c"))
  log.markExited(7, null)
  log.markClosed()
  return log
}

describe("ProcessLog.read", () => {
  it("answers a running process as neither exited, closed nor denied by a sandbox", () => {
    const log = new ProcessLog(1024, false)
    log.appendOutput("stdout", bytes("aa"))
    assert.isFalse(log.exited)
    assert.isFalse(log.closed)
    const { chunks: _, ...read } = log.read(0, null)
    assert.deepStrictEqual(read, {
      nextSeq: 2,
      exited: false,
      exitCode: null,
      closed: false,
      failure: null,
      signal: null,
      sandboxDenied: false
    })
  })

  it("numbers output, the exit and the close with one counter", () => {
    const log = closedLog()
    assert.strictEqual(log.nextSeq, 6)
    assert.isTrue(log.exited)
    assert.isTrue(log.closed)
    const read = log.read(0, null)
    assert.deepStrictEqual(shown(read.chunks), ["1:stdout:aa", "2:stderr:bbb", "3:stdout:c"])
    assert.deepStrictEqual(
      { ...read, chunks: [] },
      {
        chunks: [],
        nextSeq: 6,
        exited: true,
        exitCode: 7,
        closed: true,
        failure: null,
        signal: null,
        sandboxDenied: false
      },
      "a read that reaches the end moves past the exit and the close"
    )
  })

  it("says closed: false to a maxBytes-limited read until it hands out the last chunk", () => {
    const log = closedLog()
    const first = log.read(0, 4)
    assert.deepStrictEqual(shown(first.chunks), ["1:stdout:aa"], "2 + 3 bytes would pass 4")
    assert.strictEqual(first.nextSeq, 2)
    assert.isFalse(first.closed, "a client that stops at closed would lose bbb and c")
    assert.isTrue(first.exited, "the exit is known whatever the cursor")
    assert.strictEqual(first.exitCode, 7)
    const second = log.read(first.nextSeq - 1, 4)
    assert.deepStrictEqual(shown(second.chunks), ["2:stderr:bbb", "3:stdout:c"], "3 + 1 bytes fit exactly")
    assert.isTrue(second.closed)
    assert.strictEqual(second.nextSeq, 6)
  })

  it("hands out one chunk larger than maxBytes whole rather than nothing", () => {
    const log = closedLog()
    const read = log.read(1, 1)
    assert.deepStrictEqual(shown(read.chunks), ["2:stderr:bbb"])
    assert.strictEqual(read.nextSeq, 3)
    assert.isFalse(read.closed)
    assert.deepStrictEqual(shown(log.read(1, 0).chunks), ["2:stderr:bbb"], "even with maxBytes 0")
  })

  it("answers a cursor past the output with no chunks, and closed once it is", () => {
    const log = new ProcessLog(1024, false)
    log.appendOutput("stdout", bytes("x"))
    const running = log.read(1, null)
    assert.deepStrictEqual(running.chunks, [])
    assert.strictEqual(running.nextSeq, 2)
    assert.deepStrictEqual([running.exited, running.closed, running.exitCode, running.signal], [
      false,
      false,
      null,
      null
    ])
    log.markExited(-1, "SIGTERM", true)
    const exited = log.read(1, null)
    assert.deepStrictEqual([exited.exited, exited.closed, exited.exitCode, exited.signal], [true, false, -1, "SIGTERM"])
    assert.isTrue(exited.sandboxDenied)
    assert.strictEqual(exited.nextSeq, 3)
  })

  it("keeps the first exit and closes only once, and only after an exit", () => {
    const log = new ProcessLog(1024, false)
    log.markClosed()
    assert.isFalse(log.closed, "a close before the exit is ignored")
    assert.strictEqual(log.nextSeq, 1)
    log.markExited(1, null)
    log.markExited(2, "SIGKILL")
    log.markClosed()
    log.markClosed()
    assert.strictEqual(log.nextSeq, 3, "one seq for the exit, one for the close")
    const read = log.read(0, null)
    assert.deepStrictEqual([read.exitCode, read.signal, read.closed], [1, null, true])
    assert.deepStrictEqual(log.eventsAfter(0).map((event) => `${event._tag}@${event.seq}`), ["Exited@1", "Closed@2"])
  })
})

describe("ProcessLog retention", () => {
  it("evicts the oldest whole chunks past its budget and tells each reader what it missed", () => {
    const log = new ProcessLog(4, false)
    log.appendOutput("stdout", bytes("aa")) // 1
    log.appendOutput("stdout", bytes("bb")) // 2
    assert.strictEqual(log.retainedBytes, 4, "at the budget, nothing goes")
    log.appendOutput("stdout", bytes("c")) // 3: "aa" goes
    assert.strictEqual(log.retainedBytes, 3)
    assert.deepStrictEqual(shown(log.retainedChunks()), ["2:stdout:bb", "3:stdout:c"])
    const late = log.read(0, null)
    assert.deepStrictEqual(late.dropped, { bytes: 2, chunks: 1 })
    assert.deepStrictEqual(shown(late.chunks), ["2:stdout:bb", "3:stdout:c"])
    assert.isUndefined(log.read(1, null).dropped, "a reader past the evicted chunk missed nothing")
    log.appendOutput("stdout", bytes("dddd")) // 4: bb and c go
    assert.deepStrictEqual(log.read(0, null).dropped, { bytes: 5, chunks: 3 })
    assert.deepStrictEqual(log.read(2, null).dropped, { bytes: 1, chunks: 1 })
    assert.deepStrictEqual(
      log.eventsAfter(1).map((event) =>
        event._tag === "Dropped" ? `Dropped@${event.seq}:${event.bytes}/${event.chunks}` : event._tag
      ),
      ["Dropped@3:3/2", "Output"]
    )
  })

  it("counts every eviction for a reader that lags past the evictions it remembers one by one", () => {
    const log = new ProcessLog(1, false)
    for (let i = 0; i < 10_000; i++) log.appendOutput("stdout", bytes("x"))
    // all but the newest chunk were evicted, more than the 8192 remembered one by one
    assert.deepStrictEqual(log.read(0, null).dropped, { bytes: 9_999, chunks: 9_999 })
    assert.deepStrictEqual(log.read(9_000, null).dropped, { bytes: 999, chunks: 999 })
    assert.deepStrictEqual(shown(log.retainedChunks()), ["10000:stdout:x"])
    const dropped = log.eventsAfter(0)[0]!
    assert.deepStrictEqual(dropped, { _tag: "Dropped", seq: 9_999, bytes: 9_999, chunks: 9_999 })
    assert.strictEqual(log.read(9_999, null).nextSeq, 10_001)
  })

  it("with backpressure, holds unread output past its budget until a reader acknowledges it", () => {
    const log = new ProcessLog(2, true)
    log.appendOutput("stdout", bytes("aa"))
    log.appendOutput("stdout", bytes("bb"))
    log.appendOutput("stdout", bytes("cc"))
    assert.strictEqual(log.retainedBytes, 6)
    assert.strictEqual(log.unacknowledgedBytes, 6)
    log.acknowledge(1)
    assert.strictEqual(log.ackedSeq, 1)
    assert.strictEqual(log.unacknowledgedBytes, 4)
    assert.deepStrictEqual(shown(log.retainedChunks()), ["2:stdout:bb", "3:stdout:cc"], "the acknowledged chunk went")
    log.acknowledge(1)
    log.acknowledge(0)
    assert.strictEqual(log.unacknowledgedBytes, 4, "an old cursor acknowledges nothing again")
    log.acknowledge(99)
    assert.strictEqual(log.ackedSeq, 3, "a cursor past the log counts up to its end")
    assert.strictEqual(log.unacknowledgedBytes, 0)
    assert.deepStrictEqual(shown(log.retainedChunks()), ["3:stdout:cc"])
  })

  it("never moves the acknowledged cursor back: bytes are acknowledged once", () => {
    const log = new ProcessLog(1024, true)
    log.appendOutput("stdout", bytes("aa"))
    log.appendOutput("stdout", bytes("bb"))
    log.appendOutput("stdout", bytes("cc"))
    log.acknowledge(2)
    log.acknowledge(1)
    assert.strictEqual(log.ackedSeq, 2)
    assert.strictEqual(log.unacknowledgedBytes, 2)
    log.acknowledge(3)
    assert.strictEqual(log.unacknowledgedBytes, 0, "bb was not acknowledged a second time")
  })

  it("without backpressure, counts unread bytes but evicts them all the same", () => {
    const log = new ProcessLog(2, false)
    log.appendOutput("stdout", bytes("aa"))
    log.appendOutput("stdout", bytes("bb"))
    assert.strictEqual(log.unacknowledgedBytes, 2, "the evicted chunk is no longer unread")
    log.acknowledge(2)
    assert.strictEqual(log.unacknowledgedBytes, 0)
  })

  it("lets go of held output once backpressure is released", () => {
    const log = new ProcessLog(2, true)
    log.appendOutput("stdout", bytes("aa"))
    log.appendOutput("stdout", bytes("bb"))
    assert.strictEqual(log.retainedBytes, 4)
    log.releaseBackpressure()
    assert.isFalse(log.backpressure)
    assert.deepStrictEqual(shown(log.retainedChunks()), ["2:stdout:bb"])
    assert.strictEqual(log.unacknowledgedBytes, 2, "the evicted chunk is no longer unread")
  })

  it("keeps output a follower has not taken, up to its lag bound past the budget", () => {
    const log = new ProcessLog(2, false, { followerLagBytes: 4 })
    const follower = log.follow(0)
    log.appendOutput("stdout", bytes("aa"))
    log.appendOutput("stdout", bytes("bb"))
    log.appendOutput("stdout", bytes("cc"))
    assert.strictEqual(log.retainedBytes, 6, "budget 2 + lag 4: all kept for the follower")
    log.appendOutput("stdout", bytes("d"))
    assert.deepStrictEqual(shown(log.retainedChunks()), ["2:stdout:bb", "3:stdout:cc", "4:stdout:d"])
    log.advance(follower, 2)
    assert.deepStrictEqual(shown(log.retainedChunks()), ["3:stdout:cc", "4:stdout:d"])
    log.advance(follower, 1)
    assert.strictEqual(follower.cursor, 2, "a follower's cursor never goes back")
    log.unfollow(follower)
    assert.deepStrictEqual(shown(log.retainedChunks()), ["4:stdout:d"])
  })

  it("keeps the retained chunks right after compacting thousands of evictions", () => {
    const log = new ProcessLog(3, false)
    for (let i = 1; i <= 3000; i++) log.appendOutput("stdout", bytes(String(i % 10)))
    assert.deepStrictEqual(shown(log.retainedChunks()), ["2998:stdout:8", "2999:stdout:9", "3000:stdout:0"])
    assert.deepStrictEqual(shown(log.read(2998, 1).chunks), ["2999:stdout:9"])
  })
})

describe("ProcessLog: output that comes before anyone looked joins the newest chunk", () => {
  const { readBufferBytes, smallOutputBytes } = Defaults.pipes
  /** A log over slab memory, and a pipe whose reads (of `length` bytes, filled with `fill`) land in it. */
  const slabLog = (capacity = 8 * 1024 * 1024) => {
    const memory = new OutputMemory("always")
    const pipe = memory.pipe()
    const read = (length: number, fill: number) => {
      const buffer = pipe.readBuffer()
      buffer.fill(fill, 0, length)
      return pipe.take(buffer, length)
    }
    read(smallOutputBytes, 0) // past the small output: the next reads land in a slab, one after the other
    const log = new ProcessLog(capacity, true, { memory, lends: true })
    return { log, memory, pipe, read }
  }
  const sizes = (log: ProcessLog) => log.retainedChunks().map(({ chunk, seq }) => `${seq}:${chunk.length}`)

  it("joins reads that land one after the other into one chunk under one seq, its bytes in order", () => {
    const { log, read } = slabLog()
    log.appendOutput("stdout", read(1000, 1))
    log.appendOutput("stdout", read(2000, 2))
    log.appendOutput("stdout", read(3000, 3))
    const answer = log.read(0, null, true)
    assert.deepStrictEqual(answer.chunks.map(({ chunk, seq }) => `${seq}:${chunk.length}`), ["1:6000"])
    assert.strictEqual(answer.nextSeq, 2)
    const chunk = answer.chunks[0]!.chunk
    assert.isTrue(chunk.subarray(0, 1000).every((b) => b === 1) && chunk.subarray(1000, 3000).every((b) => b === 2))
    assert.isTrue(chunk.subarray(3000).every((b) => b === 3))
    assert.strictEqual(log.retainedBytes, 6000)
    assert.strictEqual(log.unacknowledgedBytes, 6000)
  })

  it("starts a new chunk once a reader or a follower was shown the newest", () => {
    const { log, read } = slabLog()
    log.appendOutput("stdout", read(1000, 1))
    log.read(0, null, true)
    log.appendOutput("stdout", read(1000, 2))
    log.eventsAfter(1)
    log.appendOutput("stdout", read(1000, 3))
    log.appendOutput("stdout", read(1000, 4))
    assert.deepStrictEqual(sizes(log), ["1:1000", "2:1000", "3:2000"])
  })

  it("does not join a read a reader limited by maxBytes has not reached", () => {
    const { log, read } = slabLog()
    log.appendOutput("stdout", read(1000, 1))
    log.appendOutput("stderr", read(1000, 2))
    log.read(0, 1000, true) // shown seq 1 only
    log.appendOutput("stderr", read(1000, 3))
    assert.deepStrictEqual(sizes(log), ["1:1000", "2:2000"])
  })

  it("starts a new chunk for the other stream, after the exit, past one read buffer, or where the read went elsewhere", () => {
    const other = slabLog()
    other.log.appendOutput("stdout", other.read(1000, 1))
    other.log.appendOutput("stderr", other.read(1000, 2))
    assert.deepStrictEqual(sizes(other.log), ["1:1000", "2:1000"])

    const exited = slabLog()
    exited.log.appendOutput("stdout", exited.read(1000, 1))
    exited.log.markExited(0, null)
    exited.log.appendOutput("stdout", exited.read(1000, 2))
    assert.deepStrictEqual(sizes(exited.log), ["1:1000", "3:1000"])

    const large = slabLog()
    large.log.appendOutput("stdout", large.read(readBufferBytes - 1000, 1))
    large.log.appendOutput("stdout", large.read(1000, 2))
    large.log.appendOutput("stdout", large.read(1, 3))
    assert.deepStrictEqual(sizes(large.log), [`1:${readBufferBytes}`, "2:1"])

    const apart = slabLog()
    const first = apart.read(1000, 1)
    apart.read(10, 9) // a read of the other pipe's, say: in between
    apart.log.appendOutput("stdout", first)
    apart.log.appendOutput("stdout", apart.read(1000, 2))
    assert.deepStrictEqual(sizes(apart.log), ["1:1000", "2:1000"])

    const acknowledged = slabLog()
    acknowledged.log.appendOutput("stdout", acknowledged.read(1000, 1))
    acknowledged.log.acknowledge(1)
    acknowledged.log.appendOutput("stdout", acknowledged.read(1000, 2))
    assert.deepStrictEqual(sizes(acknowledged.log), ["1:1000", "2:1000"])
  })

  it("does not join chunks of their own (no slab), as a small output's are", () => {
    const log = new ProcessLog(1024, false, { memory: new OutputMemory("always") })
    log.appendOutput("stdout", bytes("aa"))
    log.appendOutput("stdout", bytes("bb"))
    assert.deepStrictEqual(shown(log.read(0, null).chunks), ["1:stdout:aa", "2:stdout:bb"])
  })

  it("counts a joined chunk once: its slab is free again once it is acknowledged and evicted", () => {
    const { log, memory, pipe, read } = slabLog(0)
    log.appendOutput("stdout", read(1000, 1))
    log.appendOutput("stdout", read(1000, 2))
    pipe.close() // no more reads: the slab is held by the joined chunk alone
    assert.strictEqual(memory.slabCount, 1)
    log.read(0, null, true)
    log.acknowledge(1) // evicted at once: a retention of 0
    assert.strictEqual(log.retainedBytes, 0)
    assert.strictEqual(memory.slabCount, 0, "the slab is let go")
  })
})

describe("ProcessLog.isReadyAfter and eventsAfter", () => {
  it("is ready for a cursor with output after it, an exit new to it, or a close", () => {
    const log = new ProcessLog(1024, false)
    assert.isFalse(log.isReadyAfter(0))
    log.appendOutput("stdout", bytes("a"))
    assert.isTrue(log.isReadyAfter(0))
    assert.isFalse(log.isReadyAfter(1))
    log.markExited(0, null)
    assert.isTrue(log.isReadyAfter(1))
    assert.isFalse(log.isReadyAfter(2))
    log.markClosed()
    assert.isTrue(log.isReadyAfter(3), "closed: every reader answers at once")
  })

  it("is not ready for output that was evicted already", () => {
    const log = new ProcessLog(0, false)
    log.appendOutput("stdout", bytes("a"))
    assert.strictEqual(log.retainedChunks().length, 0)
    assert.isFalse(log.isReadyAfter(0))
  })

  it("lists output, the exit in its place and the close last", () => {
    const log = new ProcessLog(1024, false)
    log.appendOutput("stdout", bytes("a"))
    log.markExited(3, "SIGHUP", true)
    log.appendOutput("stderr", bytes("late")) // a background child after the exit
    log.markClosed()
    const events: Array<ProcessEvent> = log.eventsAfter(0)
    assert.deepStrictEqual(events.map((event) => `${event._tag}@${event.seq}`), [
      "Output@1",
      "Exited@2",
      "Output@3",
      "Closed@4"
    ])
    assert.deepStrictEqual(events[1], { _tag: "Exited", seq: 2, exitCode: 3, signal: "SIGHUP", sandboxDenied: true })
    assert.deepStrictEqual(log.eventsAfter(2).map((event) => event._tag), ["Output", "Closed"])
    assert.deepStrictEqual(log.eventsAfter(4), [])
  })
})

describe("longPollRead", () => {
  it.effect("answers at once without waitMs, and when output is already there", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1024, false)
      const empty = yield* longPollRead(log, { processId: "p", afterSeq: 0, maxBytes: null, waitMs: 0 })
      assert.deepStrictEqual(empty.chunks, [])
      const defaults = yield* longPollRead(log, { processId: "p" })
      assert.strictEqual(defaults.nextSeq, 1)
      log.appendOutput("stdout", bytes("ab"))
      log.appendOutput("stdout", bytes("cd"))
      const read = yield* longPollRead(log, { processId: "p", afterSeq: 0, maxBytes: 2, waitMs: 60_000 })
      assert.deepStrictEqual(shown(read.chunks), ["1:stdout:ab"])
    }))

  it.effect("waits for output up to waitMs, and answers empty at its end", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1024, false)
      const waiting = yield* longPollRead(log, { processId: "p", afterSeq: 0, maxBytes: null, waitMs: 1000 }).pipe(
        Effect.forkChild
      )
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(waiting.pollUnsafe())
      log.appendOutput("stdout", bytes("now"))
      assert.deepStrictEqual(shown((yield* Fiber.join(waiting)).chunks), ["1:stdout:now"])

      const idle = yield* longPollRead(log, { processId: "p", afterSeq: 1, maxBytes: null, waitMs: 1000 }).pipe(
        Effect.forkChild
      )
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(idle.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const answer = yield* Fiber.join(idle)
      assert.deepStrictEqual([answer.chunks.length, answer.nextSeq, answer.exited], [0, 2, false])
    }))

  it.effect("wakes a waiting reader at the exit", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1024, false)
      const waiting = yield* longPollRead(log, { processId: "p", afterSeq: 0, maxBytes: null, waitMs: 60_000 }).pipe(
        Effect.forkChild
      )
      yield* Effect.yieldNow
      log.markExited(0, null)
      const answer = yield* Fiber.join(waiting)
      assert.deepStrictEqual([answer.exited, answer.exitCode, answer.closed], [true, 0, false])
    }))
})

describe("eventStream", () => {
  it.effect("follows the log from a cursor and ends after the close", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1024, false)
      log.appendOutput("stdout", bytes("a"))
      log.appendOutput("stdout", bytes("b"))
      const collected = yield* eventStream(log, 1).pipe(Stream.runCollect, Effect.forkChild)
      yield* Effect.yieldNow
      log.appendOutput("stderr", bytes("c"))
      yield* Effect.yieldNow
      log.markExited(0, null)
      log.markClosed()
      const events = yield* Fiber.join(collected)
      assert.deepStrictEqual(events.map((event) => `${event._tag}@${event.seq}`), [
        "Output@2",
        "Output@3",
        "Exited@4",
        "Closed@5"
      ])
    }))

  it.effect("holds output for the stream past the budget, and lets it go once the stream ends", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(4, false, { followerLagBytes: 1024 })
      log.appendOutput("stdout", bytes("x"))
      const following = yield* Deferred.make<void>()
      const taken = yield* eventStream(log, 0).pipe(
        Stream.tap(() => Deferred.succeed(following, undefined)),
        Stream.take(2),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* Deferred.await(following)
      log.appendOutput("stdout", bytes("aaaa"))
      log.appendOutput("stdout", bytes("bbbb"))
      // the follower has not taken them: kept past the budget of 4 (x too, unless it asked for more already)
      assert.deepStrictEqual(shown(log.retainedChunks()).slice(-2), ["2:stdout:aaaa", "3:stdout:bbbb"])
      const events = yield* Fiber.join(taken)
      assert.strictEqual(events.length, 2)
      assert.strictEqual(log.retainedBytes, 4, "its end unfollows: only the budget's worth stays")
    }))

  it.effect("reports output evicted before the stream took it as Dropped", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1, false, { followerLagBytes: 0 })
      log.appendOutput("stdout", bytes("gone"))
      log.appendOutput("stdout", bytes("x"))
      log.markExited(0, null)
      log.markClosed()
      const events = yield* eventStream(log, 0).pipe(Stream.runCollect)
      assert.deepStrictEqual(events.map((event) => event._tag), ["Dropped", "Output", "Exited", "Closed"])
      assert.deepStrictEqual(events[0], { _tag: "Dropped", seq: 1, bytes: 4, chunks: 1 })
    }))
})
