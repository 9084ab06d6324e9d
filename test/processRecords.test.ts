/**
 * What the remote client holds of its processes' notifications, fed with
 * generated notifications (any seqs, falling, repeated, huge; empty chunks;
 * ids it never started): bounded in entries and bytes, in seq order, each
 * event once.
 */
import { assert, describe, it } from "@effect/vitest"
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
