/**
 * What the remote client holds of its processes' notifications, fed with
 * generated notifications (any seqs, falling, repeated, huge; empty chunks;
 * ids it never started): bounded in entries and bytes, in seq order, each
 * event once.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { ProcessEvent } from "../src/Executor.ts"
import * as Defaults from "../src/internal/defaults.ts"
import { NotifiedEvents, ProcessRecords } from "../src/internal/remote/processRecords.ts"
import { SeqQueue } from "../src/internal/remote/seqQueue.ts"

const output = (seq: number, length: number): ProcessEvent => ({
  _tag: "Output",
  seq,
  stream: "stdout",
  chunk: new Uint8Array(length)
})

const GeneratedEvent = Schema.Struct({
  processId: Schema.Literals(["mine", "mine", "mine", "ghost"]),
  seq: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  length: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2048 })),
  tag: Schema.Literals(["Output", "Output", "Output", "Exited", "Closed"])
})

const toEvent = ({ length, seq, tag }: typeof GeneratedEvent.Type): ProcessEvent =>
  tag === "Output"
    ? output(seq, length)
    : tag === "Exited"
    ? { _tag: "Exited", seq, exitCode: seq % 256, signal: null, sandboxDenied: false }
    : { _tag: "Closed", seq }

/** Strictly increasing seqs: each event once, in order. */
const assertInOrder = (events: ReadonlyArray<ProcessEvent>) => {
  for (let i = 1; i < events.length; i++) assert.isAbove(events[i]!.seq, events[i - 1]!.seq)
}

describe("SeqQueue", () => {
  it("inserts in place only within the window of the newest entries", () => {
    const queue = new SeqQueue<{ readonly seq: number }>()
    for (const seq of [10, 20, 30, 40]) assert.isTrue(queue.insert({ seq }, 2))
    assert.isTrue(queue.insert({ seq: 35 }, 2), "between the two newest")
    assert.isFalse(queue.insert({ seq: 15 }, 2), "older than the window")
    assert.isFalse(queue.insert({ seq: 30 }, 2), "a seq already held")
    assert.deepStrictEqual(queue.after(0).map((e) => e.seq), [10, 20, 30, 35, 40])
    assert.deepStrictEqual(queue.after(30).map((e) => e.seq), [35, 40])
    assert.strictEqual(queue.indexOf(35), 3)
    assert.strictEqual(queue.indexOf(36), -1)
  })

  it("drops its shifted-out slots once they pass 1024 and outnumber the live entries, not before", () => {
    const filled = (count: number) => {
      const queue = new SeqQueue<{ readonly seq: number }>()
      for (let seq = 1; seq <= count; seq++) queue.insert({ seq }, 0)
      return queue
    }
    const shifted = (queue: SeqQueue<{ readonly seq: number }>, count: number) => {
      for (let i = 0; i < count; i++) queue.shift()
      return queue.capacity
    }
    const small = filled(10)
    assert.strictEqual(shifted(small, 6), 10, "a short dead prefix is kept: compacting each time would cost O(n)")
    assert.strictEqual(shifted(small, 4), 10, "emptied, it keeps its few slots")
    assert.strictEqual(small.shift(), undefined)
    assert.strictEqual(small.capacity, 10, "shifting an empty queue holds nothing more")

    const fewLive = filled(2000)
    assert.strictEqual(shifted(fewLive, 1024), 2000, "a dead prefix of 1024 is kept")
    assert.strictEqual(shifted(fewLive, 1), 975, "at 1025, more dead than live: only the live are kept")
    assert.deepStrictEqual([fewLive.length, fewLive.first?.seq, fewLive.indexOf(1100)], [975, 1026, 74])

    const manyLive = filled(2050)
    assert.strictEqual(shifted(manyLive, 1025), 2050, "1025 dead against 1025 live: kept")
    assert.strictEqual(shifted(manyLive, 1), 1024, "1026 dead against 1024 live: compacted")
    assert.deepStrictEqual([manyLive.first?.seq, manyLive.last?.seq], [1027, 2050])
  })

  it("shifts the oldest in amortised O(1), finding seqs the same after compaction", () => {
    const queue = new SeqQueue<{ readonly seq: number }>()
    for (let seq = 1; seq <= 10_000; seq++) queue.insert({ seq }, 0)
    for (let i = 0; i < 9_000; i++) queue.shift()
    assert.strictEqual(queue.length, 1_000)
    assert.strictEqual(queue.first?.seq, 9_001)
    assert.strictEqual(queue.indexOf(9_500), 499)
    assert.deepStrictEqual(queue.after(9_998).map((e) => e.seq), [9_999, 10_000])
  })
})

describe("NotifiedEvents", () => {
  it("keeps one exit and one close, drops empty chunks and what follows the close", () => {
    const events = new NotifiedEvents()
    events.add(output(1, 3))
    events.add(output(2, 0))
    events.add({ _tag: "Exited", seq: 3, exitCode: 7, signal: null, sandboxDenied: false })
    events.add({ _tag: "Exited", seq: 9, exitCode: 0, signal: null, sandboxDenied: false })
    events.add(output(4, 2))
    events.add({ _tag: "Closed", seq: 5 })
    events.add({ _tag: "Closed", seq: 6 })
    events.add(output(8, 2))
    assert.deepStrictEqual(
      events.after(0).map((e) => `${e._tag} ${e.seq}`),
      ["Output 1", "Exited 3", "Output 4", "Closed 5"]
    )
    assert.deepStrictEqual(events.after(3).map((e) => e.seq), [4, 5])
    assert.strictEqual(events.size, 4)
  })

  it("puts output that arrives a little out of order in its place (Codex sends it from separate tasks)", () => {
    const events = new NotifiedEvents()
    for (const seq of [1, 3, 2, 5, 4]) events.add(output(seq, 1))
    events.add({ _tag: "Exited", seq: 6, exitCode: 0, signal: null, sandboxDenied: false })
    assert.deepStrictEqual(events.after(0).map((e) => e.seq), [1, 2, 3, 4, 5, 6])
  })

  it("holds a bounded number of chunks whatever the seqs: 100 000 falling seqs cost a window each", () => {
    const events = new NotifiedEvents()
    for (let i = 0; i < 100_000; i++) events.add(output(1_000_000 - i, 1))
    assert.strictEqual(events.size, Defaults.client.notifiedReorderWindow + 1)
    for (let seq = 1_000_001; seq < 1_100_000; seq++) events.add(output(seq, 1))
    assert.strictEqual(events.size, Defaults.client.notifiedOutputChunks)
    assertInOrder(events.after(0))
  })

  it.prop(
    "under any notifications it stays within its bounds, in seq order, each event once",
    { events: Schema.Array(GeneratedEvent) },
    ({ events }) => {
      const notified = new NotifiedEvents()
      for (const event of events) notified.add(toEvent(event))
      const held = notified.after(-1)
      assertInOrder(held)
      assert.strictEqual(held.length, notified.size)
      assert.isAtMost(held.filter((e) => e._tag === "Exited").length, 1)
      assert.isAtMost(held.filter((e) => e._tag === "Closed").length, 1)
      assert.isFalse(held.some((e) => e._tag === "Output" && e.chunk.length === 0))
      assert.isAtMost(notified.bytes, Defaults.client.notifiedOutputBytes)
      const closed = held.findIndex((e) => e._tag === "Closed")
      if (closed !== -1) assert.strictEqual(closed, held.length - 1, "nothing after the close")
    }
  )
})

describe("NotifiedEvents: what a follower is told", () => {
  const exited = (seq: number): ProcessEvent => ({
    _tag: "Exited",
    seq,
    exitCode: 0,
    signal: null,
    sandboxDenied: false
  })
  /** Whether a follower waiting for what follows `seq` was woken by what `then` did. */
  const wokenBy = (events: NotifiedEvents, seq: number, then: () => void) => {
    let woken = false
    const fiber = Effect.runFork(events.untilAfter(seq))
    fiber.addObserver(() => {
      woken = true
    })
    then()
    const result = woken
    fiber.interruptUnsafe()
    return result
  }

  it("wakes a follower when an event after its cursor arrives or the record is forgotten, not before", () => {
    const events = new NotifiedEvents()
    events.add(output(1, 1))
    assert.isFalse(wokenBy(events, 1, () => events.add(output(1, 4))), "a repeat is nothing new")
    assert.isTrue(wokenBy(events, 1, () => events.add(output(2, 1))))
    assert.isTrue(wokenBy(events, 2, () => events.add(exited(3))))
    assert.isTrue(wokenBy(events, 3, () => events.end()), "forgotten: it takes what is held and fails")
  })

  it("says whether the exit is held", () => {
    const events = new NotifiedEvents()
    events.add(output(1, 1))
    assert.isFalse(events.exited)
    events.add(exited(2))
    assert.isTrue(events.exited)
  })

  it("takes in what arrives after the close with an earlier seq, nothing at or after the close's", () => {
    const events = new NotifiedEvents()
    events.add(output(1, 1))
    events.add({ _tag: "Closed", seq: 5 })
    events.add(output(5, 1))
    events.add(exited(6))
    events.add(output(3, 1))
    events.add(exited(4))
    events.add(output(2, 1))
    assert.deepStrictEqual(events.after(0).map((e) => `${e._tag} ${e.seq}`), [
      "Output 1",
      "Output 2",
      "Output 3",
      "Exited 4",
      "Closed 5"
    ])
  })

  it("takes no exit at the seq of an output it holds, nor output or a close at the exit's", () => {
    const events = new NotifiedEvents()
    events.add(output(1, 1))
    events.add(output(2, 1))
    events.add(exited(2))
    events.add(exited(1))
    assert.deepStrictEqual([events.exited, events.size], [false, 2])
    events.add(exited(3))
    events.add(output(3, 1))
    events.add({ _tag: "Closed", seq: 3 })
    assert.deepStrictEqual(events.after(0).map((e) => `${e._tag} ${e.seq}`), ["Output 1", "Output 2", "Exited 3"])
    assert.isFalse(events.closed, "a close at the seq of the exit it follows is no close")
  })

  it("counts the bytes it holds, drops the oldest past notifiedOutputBytes and takes none of them in again", () => {
    const events = new NotifiedEvents()
    const limit = Defaults.client.notifiedOutputBytes
    events.add(output(1, limit / 2))
    events.add(output(2, limit / 2))
    assert.deepStrictEqual([events.bytes, events.size], [limit, 2], "at the bound: all kept")
    events.add(output(3, 1))
    assert.deepStrictEqual(events.after(0).map((e) => e.seq), [2, 3], "a byte over: the oldest goes")
    assert.strictEqual(events.bytes, limit / 2 + 1)
    events.add(output(1, 1))
    assert.deepStrictEqual(events.after(0).map((e) => e.seq), [2, 3], "what was dropped is not taken in again")
  })
})

describe("ProcessRecords", () => {
  it.prop(
    "records only the processes it started, bounded whatever the server sends",
    { events: Schema.Array(GeneratedEvent) },
    ({ events }) => {
      const records = new ProcessRecords()
      records.starting("mine", { showsOutput: true, streams: true })
      for (const { processId, ...event } of events) records.add(processId, toEvent({ processId, ...event }))
      const held = records.footprint()
      assert.strictEqual(held.records, 1)
      assert.isAtMost(held.notifiedBytes, Defaults.client.notifiedOutputBytes)
      assert.isAtMost(held.notifiedEntries, Defaults.client.notifiedOutputChunks + 2)
      assert.isAtMost(held.pushedBytes, Defaults.client.maxCachedBytesPerProcess)
      assert.isAtMost(held.pushedEntries, Defaults.client.maxCachedEntriesPerProcess)
    }
  )

  it("forgets the oldest records past their bound, closed histories first", () => {
    const records = new ProcessRecords()
    for (let i = 0; i < Defaults.client.keptHistories + 10; i++) {
      records.starting(`closed-${i}`, { showsOutput: false, streams: false })
      records.add(`closed-${i}`, { _tag: "Closed", seq: 1 })
    }
    assert.strictEqual(records.footprint().closedHistories, Defaults.client.keptHistories)
    assert.strictEqual(records.footprint().records, Defaults.client.keptHistories)
    for (let i = 0; i < Defaults.client.maxRecords + 10; i++) {
      records.starting(`running-${i}`, { showsOutput: false, streams: false })
    }
    assert.strictEqual(records.footprint().records, Defaults.client.maxRecords)
  })

  it("passes over a record an events stream follows while it is open, forgetting it once closed or unfollowed", () => {
    const records = new ProcessRecords({ maxRecords: 3 })
    records.starting("followed", { showsOutput: false, streams: false })
    const followed = records.follow("followed")!
    for (const processId of ["a", "b", "c"]) records.starting(processId, { showsOutput: false, streams: false })
    assert.strictEqual(records.get("followed"), followed, "followed and open: kept past the bound")
    assert.isUndefined(records.get("a"), "the oldest one nobody follows went instead")
    records.starting("d", { showsOutput: false, streams: false })
    assert.deepStrictEqual([records.get("b"), records.footprint().records], [undefined, 3], "passed over, at the end")
    records.add("followed", { _tag: "Closed", seq: 1 })
    records.starting("e", { showsOutput: false, streams: false })
    assert.isUndefined(records.get("c"))
    records.starting("f", { showsOutput: false, streams: false })
    assert.isUndefined(records.get("followed"), "closed: nothing more comes, its follower reads what it holds")
    assert.strictEqual(records.footprint().records, 3)

    records.starting("unfollowed", { showsOutput: false, streams: false })
    const record = records.follow("unfollowed")!
    record.followers--
    assert.isFalse(record.pinned, "a follower that ended pins nothing")
  })

  it("ends a follower of a record forgotten before its close, after what it holds", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: false })
    records.add("p", output(1, 3))
    const events = records.get("p")!.events
    records.forget("p")
    assert.deepStrictEqual([events.after(0).length, events.ended], [1, true])
    records.starting("q", { showsOutput: false, streams: false })
    const closed = records.get("q")!.events
    records.add("q", { _tag: "Closed", seq: 1 })
    records.forget("q")
    assert.isFalse(closed.ended, "a closed history is whole: nothing ends it early")
  })

  it("holds an id's notifications while it is started again, until the answer says whose they are", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: false })
    records.add("p", output(1, 1))
    const old = records.get("p")!
    records.startingAgain("p")
    records.add("p", output(2, 1))
    assert.deepStrictEqual(old.events.after(0).map((e) => e.seq), [1], "held, not yet the old record's")
    records.startAnswered("p", undefined)
    assert.strictEqual(records.get("p"), old, "refused: the old record stays")
    assert.deepStrictEqual(old.events.after(0).map((e) => e.seq), [1, 2], "and gets what was held")

    records.startingAgain("p")
    records.add("p", output(1, 5))
    records.add("p", { _tag: "Closed", seq: 2 })
    records.startAnswered("p", { showsOutput: true, streams: true })
    const renewed = records.get("p")!
    assert.notStrictEqual(renewed, old, "accepted: a record of its own")
    assert.isTrue(old.events.ended, "the old one's followers end")
    assert.deepStrictEqual(renewed.events.after(0).map((e) => e.seq), [1, 2])
    assert.strictEqual(renewed.pushed?.size, 2, "its reads are answered from the push")
    assert.deepStrictEqual([records.footprint().heldEntries, records.footprint().heldBytes], [0, 0])
  })

  it("holds at most its bounds of notifications for an id started again", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: false })
    records.startingAgain("p")
    for (let seq = 1; seq <= Defaults.client.maxHeldNotifications + 10; seq++) records.add("p", output(seq, 1))
    assert.strictEqual(records.footprint().heldEntries, Defaults.client.maxHeldNotifications)
    records.startAnswered("p", undefined)
    records.startingAgain("p")
    const large = Defaults.client.maxHeldNotificationBytes / 4
    for (let seq = 1; seq <= 10; seq++) records.add("p", output(seq, large))
    assert.deepStrictEqual(
      [records.footprint().heldEntries, records.footprint().heldBytes],
      [4, Defaults.client.maxHeldNotificationBytes]
    )
  })

  it("counts a process a reader drained as a closed history, even when no close was notified", () => {
    const records = new ProcessRecords()
    for (let i = 0; i < Defaults.client.keptHistories + 10; i++) {
      records.starting(`p-${i}`, { showsOutput: false, streams: true })
      records.drained(`p-${i}`)
    }
    assert.deepStrictEqual(
      [records.footprint().records, records.footprint().streamed],
      [Defaults.client.keptHistories, 0]
    )
  })
})

describe("ProcessRecords: its records", () => {
  it("keeps output in a history only for a process that shows it; its exit and close always", () => {
    const records = new ProcessRecords()
    records.starting("streamed", { showsOutput: false, streams: true })
    records.starting("plain", { showsOutput: false, streams: false })
    for (const processId of ["streamed", "plain"]) {
      records.add(processId, output(1, 3))
      records.add(processId, { _tag: "Exited", seq: 2, exitCode: 0, signal: null, sandboxDenied: false })
      records.add(processId, { _tag: "Closed", seq: 3 })
      assert.deepStrictEqual(
        records.get(processId)!.events.after(0).map((e) => e._tag),
        ["Exited", "Closed"],
        processId
      )
    }
    assert.strictEqual(records.pushedFor("streamed")?.size, 3, "its reads are answered from the push all the same")
  })

  it("says a process is open from its start to its close, and not one it never started or forgot", () => {
    const records = new ProcessRecords()
    assert.isFalse(records.isOpen("p"))
    records.starting("p", { showsOutput: false, streams: false })
    assert.isTrue(records.isOpen("p"))
    records.add("p", { _tag: "Closed", seq: 1 })
    assert.isFalse(records.isOpen("p"))
    records.starting("q", { showsOutput: false, streams: false })
    records.forget("q")
    assert.isFalse(records.isOpen("q"))
  })

  it("counts what every record holds in its footprint", () => {
    const records = new ProcessRecords()
    records.starting("a", { showsOutput: true, streams: true })
    records.starting("b", { showsOutput: true, streams: false })
    records.add("a", output(1, 3))
    records.add("a", output(2, 4))
    records.add("b", output(1, 5))
    records.add("b", { _tag: "Closed", seq: 2 })
    assert.deepStrictEqual(records.footprint(), {
      records: 2,
      closedHistories: 1,
      streamed: 1,
      notifiedEntries: 4,
      notifiedBytes: 12,
      pushedEntries: 2,
      pushedBytes: 7,
      heldEntries: 0,
      heldBytes: 0
    })
  })

  it("counts a drained process among the closed histories only while it is recorded", () => {
    const records = new ProcessRecords()
    records.drained("never-started")
    records.starting("p", { showsOutput: false, streams: true })
    records.drained("p")
    records.drained("p")
    assert.deepStrictEqual([records.footprint().closedHistories, records.footprint().records], [1, 1])
  })

  it("holds an id's notifications until every start of it under way was answered", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: false })
    records.startingAgain("p")
    records.startingAgain("p")
    records.add("p", output(1, 1))
    records.startAnswered("p", undefined)
    assert.deepStrictEqual(
      [records.get("p")!.events.size, records.footprint().heldEntries],
      [0, 1],
      "one start still under way: whose they are is not known yet"
    )
    records.startAnswered("p", undefined)
    assert.deepStrictEqual([records.get("p")!.events.size, records.footprint().heldEntries], [1, 0])
  })
})

describe("ProcessRecords: the pushed caches", () => {
  it("caches at most maxStreamed streams at once: past it the one read least recently falls back to the server", () => {
    const records = new ProcessRecords()
    const { maxStreamed } = Defaults.client
    for (let i = 0; i < maxStreamed; i++) records.starting(`s-${i}`, { showsOutput: false, streams: true })
    assert.isDefined(records.pushedFor("s-0"), "read just now: the most recently read")
    records.starting("newest", { showsOutput: false, streams: true })
    assert.deepStrictEqual(
      [records.footprint().streamed, records.get("s-1")?.pushed, records.pushedFor("s-1")],
      [maxStreamed, undefined, undefined],
      "s-1 was read least recently: its reads ask the server now"
    )
    assert.isDefined(records.pushedFor("s-0"))
    assert.isDefined(records.pushedFor("newest"))
    assert.isDefined(records.get("s-1"), "its record stays")
  })

  it("counts only the streams it caches: a read of another process, or a forgotten one, is no stream", () => {
    const records = new ProcessRecords()
    records.starting("streamed", { showsOutput: false, streams: true })
    records.starting("plain", { showsOutput: false, streams: false })
    assert.isUndefined(records.pushedFor("plain"))
    assert.isUndefined(records.pushedFor("never-started"))
    assert.strictEqual(records.footprint().streamed, 1)
    records.forget("streamed")
    assert.strictEqual(records.footprint().streamed, 0)
  })

  it("gives a cache up once it holds more bytes than its bound or more entries than its count", () => {
    const records = new ProcessRecords()
    records.starting("bytes", { showsOutput: false, streams: true })
    const maxBytes = records.pushedFor("bytes")!.maxBytes
    records.add("bytes", output(1, maxBytes))
    assert.strictEqual(records.pushedFor("bytes")?.bytes, maxBytes, "at its bound: kept")
    records.add("bytes", output(2, 1))
    assert.deepStrictEqual([records.pushedFor("bytes"), records.footprint().pushedBytes], [undefined, 0])

    records.starting("entries", { showsOutput: false, streams: true })
    const { maxCachedEntriesPerProcess } = Defaults.client
    for (let seq = 1; seq <= maxCachedEntriesPerProcess; seq++) records.add("entries", output(seq, 1))
    assert.strictEqual(records.pushedFor("entries")?.size, maxCachedEntriesPerProcess, "at its count: kept")
    records.add("entries", { _tag: "Closed", seq: maxCachedEntriesPerProcess + 1 })
    assert.deepStrictEqual([records.pushedFor("entries"), records.footprint().streamed], [undefined, 0])
  })

  it("wakes every reader waiting for a push when the link is lost (it reads from the server then)", async () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: false, streams: true })
    let lost = false
    let answer: boolean | undefined
    void Effect.runPromise(records.pushedFor("p")!.untilNext(0, () => lost, 60_000)).then((woken) => {
      answer = woken
    })
    lost = true
    records.linkLost()
    await new Promise<void>((resolve) => setImmediate(resolve))
    assert.strictEqual(answer, true, "woken, and the link lost: it stops waiting")
  })
})

describe("ProcessRecords: what a history holds", () => {
  it("keeps a small chunk that is a view of a large buffer (a binary frame's socket read) in memory of its own", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: false })
    // a Buffer, as ws hands them out (its slice is a view, not a copy)
    const socketRead = Buffer.alloc(64 * 1024, 7)
    records.add("p", { _tag: "Output", seq: 1, stream: "stdout", chunk: socketRead.subarray(100, 101) })
    const large = socketRead.subarray(0, 60 * 1024)
    records.add("p", { _tag: "Output", seq: 2, stream: "stdout", chunk: large })
    const [small, whole] = records.get("p")!.events.after(0) as ReadonlyArray<Extract<ProcessEvent, { _tag: "Output" }>>
    assert.deepStrictEqual([...small!.chunk], [7])
    assert.strictEqual(small!.chunk.buffer.byteLength, 1, "the 64 KiB read is not kept alive for one byte")
    assert.strictEqual(whole!.chunk, large, "a chunk that is most of its buffer is kept as it is, not copied")
  })

  it("copies a chunk under a quarter of its buffer, and keeps one of a quarter as it is", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: false })
    const read = new Uint8Array(400)
    const underQuarter = read.subarray(0, 99)
    const quarter = read.subarray(100, 200)
    records.add("p", { _tag: "Output", seq: 1, stream: "stdout", chunk: underQuarter })
    records.add("p", { _tag: "Output", seq: 2, stream: "stdout", chunk: quarter })
    const [copied, kept] = records.get("p")!.events.after(0) as ReadonlyArray<Extract<ProcessEvent, { _tag: "Output" }>>
    assert.strictEqual(copied!.chunk.buffer.byteLength, 99)
    assert.strictEqual(kept!.chunk, quarter)
  })
})

describe("ProcessRecords: the memory binary frames are assembled in", () => {
  /** A pushed frame as the transport makes it: room from the records' memory, written there. */
  const frameOf = (records: ProcessRecords, seq: number, length = 100_000) => {
    const frame = records.frameMemory.reserve(length)
    frame.fill(seq % 256)
    return { _tag: "Output", seq, stream: "stdout", chunk: frame } as const
  }
  /** One chunk at a time, as `streamedRead` reads: what the reader had is trimmed first. */
  const readNext = (records: ProcessRecords, processId: string, afterSeq: number, lent: boolean) => {
    const cache = records.pushedFor(processId)!
    cache.trim(afterSeq)
    return cache.read(afterSeq, 1, lent)!.chunks[0]!.chunk
  }

  it("gives a frame under minSlabFrameBytes memory of its own: a few bytes never pin a slab", () => {
    const records = new ProcessRecords()
    const { minSlabFrameBytes } = Defaults.client
    const small = records.frameMemory.reserve(minSlabFrameBytes - 1)
    const slabbed = records.frameMemory.reserve(minSlabFrameBytes)
    assert.deepStrictEqual(
      [small.length, small.buffer.byteLength, slabbed.length, slabbed.buffer.byteLength],
      [minSlabFrameBytes - 1, minSlabFrameBytes - 1, minSlabFrameBytes, Defaults.pipes.slabBytes]
    )
  })

  it("takes back a frame the transport releases: frames nobody keeps cycle through the same slab", () => {
    const records = new ProcessRecords()
    const buffers = new Set<ArrayBufferLike>()
    for (let i = 0; i < 100; i++) {
      const frame = records.frameMemory.reserve(100_000)
      buffers.add(frame.buffer)
      records.frameMemory.release(frame)
    }
    assert.isAtMost(buffers.size, 2, `${buffers.size} slabs for 10 MB of released frames`)
  })

  it("takes back a frame held for an id started again once it holds a copy", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: true })
    records.startingAgain("p")
    const buffers = new Set<ArrayBufferLike>()
    for (let seq = 1; seq <= 100; seq++) {
      const frame = frameOf(records, seq)
      buffers.add(frame.chunk.buffer)
      records.add("p", frame)
    }
    assert.isAtMost(buffers.size, 2, `${buffers.size} slabs for 10 MB of held frames`)
    // frames that follow cycle through the same slabs
    for (let seq = 200; seq < 220; seq++) records.add("ghost", frameOf(records, seq))
    records.startAnswered("p", undefined)
    const history = records.get("p")!.events.after(0) as ReadonlyArray<Extract<ProcessEvent, { _tag: "Output" }>>
    // the newest megabyte of them, copies that the frames after them left alone
    assert.deepStrictEqual(history.map(({ seq }) => seq), Array.from({ length: 10 }, (_, i) => 91 + i))
    for (const { chunk, seq } of history) assert.isTrue(chunk.every((byte) => byte === seq % 256), `held ${seq}`)
  })

  it("a lending reader's stream cycles through a few slabs: 20 MB in frames of 100 kB", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: false, streams: true })
    const slabs = new Set<ArrayBufferLike>()
    for (let seq = 1; seq <= 200; seq++) {
      records.add("p", frameOf(records, seq))
      const chunk = readNext(records, "p", seq - 1, true)
      assert.isTrue(chunk.every((byte) => byte === seq % 256), `chunk ${seq} has its frame's bytes`)
      slabs.add(chunk.buffer)
    }
    assert.isAtMost(slabs.size, Defaults.pipes.pooledSlabs + 4, `${slabs.size} slabs for 20 MB`)
  })

  it("a reader that keeps what it is given, and a history, get copies that later frames leave alone", () => {
    const records = new ProcessRecords()
    records.starting("p", { showsOutput: true, streams: true })
    const kept: Array<Uint8Array> = []
    for (let seq = 1; seq <= 100; seq++) {
      records.add("p", frameOf(records, seq))
      kept.push(readNext(records, "p", seq - 1, false))
    }
    for (const [i, chunk] of kept.entries()) {
      assert.isTrue(chunk.every((byte) => byte === (i + 1) % 256), `kept chunk ${i + 1} unchanged`)
    }
    // the history holds its own copies too, bounded as ever (its newest chunks)
    const history = records.get("p")!.events.after(0) as ReadonlyArray<Extract<ProcessEvent, { _tag: "Output" }>>
    assert.isAbove(history.length, 0)
    for (const { chunk, seq } of history) assert.isTrue(chunk.every((byte) => byte === seq % 256), `history ${seq}`)
  })

  it("a frame nothing keeps goes back at once: for a process never started, a repeat, a cache given up", () => {
    const records = new ProcessRecords()
    // frames held by nobody's release: the shared pool of free slabs is empty, so a slab given back is the next taken
    const held = Array.from(
      { length: 2 * (Defaults.pipes.pooledSlabs + 2) },
      () => records.frameMemory.reserve(Defaults.pipes.slabBytes / 2)
    )
    records.starting("p", { showsOutput: false, streams: true })
    const buffers = new Set<ArrayBufferLike>()
    for (let seq = 1; seq <= 100; seq++) {
      const ghost = frameOf(records, seq)
      buffers.add(ghost.chunk.buffer)
      records.add("ghost", ghost)
    }
    records.add("p", frameOf(records, 1))
    for (let i = 0; i < 100; i++) {
      const repeat = frameOf(records, 1)
      buffers.add(repeat.chunk.buffer)
      records.add("p", repeat)
    }
    assert.isAtMost(buffers.size, 3, "20 MB of frames nobody kept, in the same few slabs")
    // a cache given up (its reader drained it) lets its last chunks go without reusing them: the reader may hold them
    const last = readNext(records, "p", 0, true)
    records.drained("p")
    // a stream nobody reads yet takes slab after slab (a freed one first)
    records.starting("q", { showsOutput: false, streams: true })
    for (let seq = 1; seq <= 30; seq++) records.add("q", frameOf(records, seq + 1))
    assert.isTrue(last.every((byte) => byte === 1), "the drained reader's last chunk is left alone")
    assert.strictEqual(held.length, 2 * (Defaults.pipes.pooledSlabs + 2))
  })

  it("chunks a slow reader has not read keep no slab each: past twice what the caches count, the caches copy them out", () => {
    const records = new ProcessRecords()
    const slabs = () => (records as unknown as { memory: { slabCount: number } }).memory.slabCount
    records.starting("fast", { showsOutput: false, streams: true })
    records.starting("slow", { showsOutput: false, streams: true })
    let unread = 0
    let most = 0
    // 100 MB of a stream read as it comes, and every tenth frame one of 100 kB for a reader that is busy
    for (let seq = 1; seq <= 1000; seq++) {
      records.add("fast", frameOf(records, seq))
      readNext(records, "fast", seq - 1, true)
      if (seq % 10 === 0 && unread < 30) records.add("slow", frameOf(records, ++unread))
      most = Math.max(most, slabs())
    }
    // 30 unread chunks, 3 MB: without the copies they would hold 30 slabs
    assert.isAtMost(most, 12, `at most ${most} slabs held`)
    const cache = records.pushedFor("slow")!
    const chunks = cache.read(0, null)!.chunks
    assert.deepStrictEqual(chunks.map(({ seq }) => seq), Array.from({ length: 30 }, (_, i) => i + 1))
    for (const { chunk, seq } of chunks) assert.isTrue(chunk.every((byte) => byte === seq), `unread chunk ${seq}`)
  })

  describe("when the caches copy their chunks out of the slabs", () => {
    const half = Defaults.pipes.slabBytes / 2
    const small = Defaults.client.minSlabFrameBytes
    /** Room in the slabs that something other than the caches keeps (a frame in the transport's hands). */
    const pin = (records: ProcessRecords, length: number) => void records.frameMemory.reserve(length)
    /** For each chunk of `processId` after `afterSeq`, whether a lending reader gets a view of a slab. */
    const inSlabs = (records: ProcessRecords, processId: string, afterSeq: number) =>
      records.pushedFor(processId)!.read(afterSeq, null, true)!.chunks.map(({ chunk }) =>
        chunk.buffer.byteLength === Defaults.pipes.slabBytes
      )
    const intact = (records: ProcessRecords, processId: string, afterSeq: number) => {
      for (const { chunk, seq } of records.pushedFor(processId)!.read(afterSeq, null)!.chunks) {
        assert.isTrue(chunk.every((byte) => byte === seq), `chunk ${seq}`)
      }
    }

    it("not while the slabs hold at most twice what the caches count and two slabs more, weighed once a slab", () => {
      // the shared pool of free slabs emptied: a slab given back is the next one taken
      const drained = new ProcessRecords()
      for (let i = 0; i < 2 * (Defaults.pipes.pooledSlabs + 2); i++) pin(drained, half)
      const records = new ProcessRecords()
      records.starting("slow", { showsOutput: false, streams: true })
      records.add("slow", frameOf(records, 1, half))
      pin(records, half)
      records.add("slow", frameOf(records, 2, half))
      records.add("ghost", frameOf(records, 99, half)) // slab 2: chunk 2 alone keeps it
      for (let i = 0; i < 4; i++) pin(records, half) // slabs 3 and 4
      records.add("slow", frameOf(records, 3, half))
      assert.deepStrictEqual(inSlabs(records, "slow", 0), [true, true, true], "5 slabs ≤ 2 × 1.5 + 2")
      records.pushedFor("slow")!.trim(1)
      const lent = records.pushedFor("slow")!.read(1, 1, true)!.chunks[0]!.chunk
      records.add("slow", frameOf(records, 4, small))
      assert.deepStrictEqual(inSlabs(records, "slow", 1), [true, true, true], "no slab more: not weighed again")
      pin(records, half - small)
      records.add("slow", frameOf(records, 5, small))
      assert.deepStrictEqual(inSlabs(records, "slow", 1), [false, false, false, false], "6 slabs > 2 × 1.03 + 2")
      intact(records, "slow", 1)
      // slab 2 went, never to be reused: the view a lending reader holds stays as it was
      for (let i = 0; i < 4; i++) drained.frameMemory.reserve(half).fill(0xee)
      assert.isTrue(lent.every((byte) => byte === 2), "the lent chunk 2 is left alone")
    })

    it("weighed only once a cached frame takes a slab more, and past half the pooled slabs", () => {
      const records = new ProcessRecords()
      records.starting("slow", { showsOutput: false, streams: true })
      records.starting("shown", { showsOutput: true, streams: false })
      records.add("slow", frameOf(records, 1, small))
      pin(records, half)
      pin(records, half - small)
      for (let i = 0; i < 4; i++) pin(records, half) // slabs 2 and 3
      records.add("slow", frameOf(records, 2, small))
      assert.deepStrictEqual(inSlabs(records, "slow", 0), [true, true], "4 slabs: not weighed")
      pin(records, half)
      pin(records, half - small)
      records.add("shown", frameOf(records, 1, small))
      assert.deepStrictEqual(inSlabs(records, "slow", 0), [true, true], "a frame no cache keeps: not weighed")
      records.add("slow", frameOf(records, 3, small))
      assert.deepStrictEqual(inSlabs(records, "slow", 0), [false, false, false], "5 slabs > 2 × 48 KiB + 2 MiB")
      intact(records, "slow", 0)
    })
  })

  it("a history's copies stay as they were while other streams cycle through the slabs", () => {
    const records = new ProcessRecords()
    records.starting("shown", { showsOutput: true, streams: true })
    records.starting("streamed", { showsOutput: false, streams: true })
    for (let seq = 1; seq <= 5; seq++) records.add("shown", frameOf(records, seq))
    records.pushedFor("shown")!.trim(5) // read past them all: their slab may be reused
    for (let seq = 1; seq <= 100; seq++) {
      records.add("streamed", frameOf(records, seq))
      readNext(records, "streamed", seq - 1, true)
    }
    const history = records.get("shown")!.events.after(0) as ReadonlyArray<Extract<ProcessEvent, { _tag: "Output" }>>
    assert.strictEqual(history.length, 5)
    for (const { chunk, seq } of history) assert.isTrue(chunk.every((byte) => byte === seq), `history ${seq}`)
  })
})
