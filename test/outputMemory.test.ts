/**
 * The memory a pipe process's output is read into: slabs reused only once no
 * view of them can be held, never under a reader that keeps what it got; and
 * the bytes every reader sees are the bytes the child wrote.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as Defaults from "../src/internal/defaults.ts"
import { prepareChild } from "../src/internal/local/childProcess.ts"
import { Holdings } from "../src/internal/local/localProcess.ts"
import { longPollRead } from "../src/internal/local/processLog.ts"
import { OutputMemory } from "../src/internal/outputMemory.ts"

const { pooledSlabs, slabBytes, smallOutputBytes } = Defaults.pipes

/** What a read of `length` bytes gives back, the way the pipe reader calls it. */
const read = (pipe: ReturnType<OutputMemory["pipe"]>, length: number, fill: number) => {
  const buffer = pipe.readBuffer()
  buffer.fill(fill, 0, length)
  return pipe.take(buffer, length)
}

describe("OutputMemory", () => {
  it("copies every read into a chunk of its own where chunks are not lent", () => {
    const memory = new OutputMemory("never")
    const pipe = memory.pipe()
    const chunks = Array.from({ length: 40 }, (_, i) => read(pipe, 64 * 1024, i))
    for (const [i, chunk] of chunks.entries()) {
      assert.isFalse(memory.holds(chunk))
      assert.isTrue(chunk.every((byte) => byte === i), `chunk ${i} kept its bytes`)
    }
    assert.strictEqual(memory.slabCount, 0)
  })

  it("copies a small output, then reads a large one into slabs, and reuses a slab all of whose chunks came back", () => {
    const memory = new OutputMemory("always")
    const pipe = memory.pipe()
    const small = read(pipe, smallOutputBytes, 1)
    assert.isFalse(memory.holds(small), "the first bytes are copied")
    const first = read(pipe, 64 * 1024, 2)
    assert.isTrue(memory.holds(first), "then reads land in a slab")
    // fill the first slab, and start the next one
    const rest = Array.from({ length: slabBytes / (64 * 1024) }, (_, i) => read(pipe, 64 * 1024, 3 + i))
    const second = rest[rest.length - 1]!
    assert.notStrictEqual(second.buffer, first.buffer, "a full slab is left for the next")
    assert.strictEqual(rest[rest.length - 2]!.buffer, first.buffer, "not before: its last read had just the room")
    for (const chunk of [first, ...rest.slice(0, -1)]) memory.drop(chunk, true)
    // the next slab taken is the first one, back from the pool
    const again = Array.from({ length: slabBytes / (64 * 1024) }, () => read(pipe, 64 * 1024, 9))
    assert.strictEqual(again[again.length - 1]!.buffer, first.buffer)
  })

  it("never reuses a slab a view of which escaped, or whose chunk went while it could be held", () => {
    for (const end of ["escape", "unacknowledged"] as const) {
      const memory = new OutputMemory("always")
      const pipe = memory.pipe()
      read(pipe, smallOutputBytes, 0)
      const slab = Array.from({ length: slabBytes / (64 * 1024) }, (_, i) => read(pipe, 64 * 1024, i))
      read(pipe, 64 * 1024, 0) // into the next slab
      const kept = slab[3]!
      if (end === "escape") memory.escape(kept)
      for (const chunk of slab) memory.drop(chunk, !(end === "unacknowledged" && chunk === kept))
      const later = Array.from({ length: 3 * slabBytes / (64 * 1024) }, () => read(pipe, 64 * 1024, 0xff))
      assert.isFalse(later.some((chunk) => chunk.buffer === kept.buffer), end)
      assert.isTrue(kept.every((byte) => byte === 3), `${end}: the kept view still shows its bytes`)
    }
  })

  it("whileLent: reads go into slabs until a chunk goes to someone who may keep it, then into chunks of their own", () => {
    const memory = new OutputMemory("whileLent")
    const pipe = memory.pipe()
    read(pipe, smallOutputBytes, 0)
    const lent = read(pipe, 64 * 1024, 1)
    assert.isTrue(memory.holds(lent), "lent so far: into a slab")
    memory.escape(lent)
    const owned = Array.from({ length: 3 * slabBytes / (64 * 1024) }, (_, i) => read(pipe, 64 * 1024, i))
    assert.isFalse(owned.some((chunk) => memory.holds(chunk)), "once one escaped, every read is a copy")
    assert.isTrue(lent.every((byte) => byte === 1), "the escaped view still shows its bytes")
  })

  it("reserves room for arriving frames in slabs, each counted until dropped; a large one gets its own buffer", () => {
    const memory = new OutputMemory("always")
    const pipe = memory.pipe()
    const perSlab = Math.floor(slabBytes / 100_000)
    const frames = Array.from({ length: perSlab + 2 }, () => pipe.reserve(100_000))
    assert.isTrue(frames.every((frame) => memory.holds(frame) && frame.length === 100_000))
    assert.strictEqual(frames[perSlab - 1]!.buffer, frames[0]!.buffer, "as many as fit share a slab")
    assert.notStrictEqual(frames[perSlab]!.buffer, frames[0]!.buffer, "the first that does not fit starts the next")
    const large = pipe.reserve(slabBytes / 2 + 1)
    assert.isFalse(memory.holds(large), "over half a slab: a buffer of its own")
    for (const frame of frames.slice(0, perSlab)) memory.drop(frame, true)
    // the first slab, every frame of it back, is the next one taken
    const later = Array.from({ length: 2 * perSlab }, () => pipe.reserve(100_000))
    assert.isTrue(later.some((frame) => frame.buffer === frames[0]!.buffer))
  })
})

describe("the slabs kept for reuse", () => {
  it("at most pooledSlabs free slabs are kept, over every process; the others are left to the collector", () => {
    const memory = new OutputMemory("always")
    // whatever earlier tests left free is taken first (kept until the end), so that the pool starts empty
    const earlier = Array.from({ length: pooledSlabs }, () => memory.takeSlab())
    const slabs = Array.from({ length: pooledSlabs + 2 }, () => memory.takeSlab())
    for (const slab of slabs) memory.leaveSlab(slab)
    assert.strictEqual(memory.slabCount, pooledSlabs, "the slabs left are no longer this memory's")
    const again = Array.from({ length: pooledSlabs + 2 }, () => memory.takeSlab())
    const reused = again.filter((slab) => slabs.some(({ bytes }) => bytes === slab.bytes))
    assert.strictEqual(reused.length, pooledSlabs, "as many come back as the pool keeps")
    for (const slab of [...earlier, ...again]) memory.leaveSlab(slab)
    assert.strictEqual(memory.slabCount, 0)
  })

  it("reserves a frame of exactly half a slab in a slab, and an empty one outside any", () => {
    const memory = new OutputMemory("always")
    const pipe = memory.pipe()
    const half = pipe.reserve(slabBytes / 2)
    assert.isTrue(memory.holds(half), "half a slab fits")
    const empty = pipe.reserve(0)
    assert.strictEqual(empty.length, 0)
    assert.isFalse(memory.holds(empty), "nothing to count")
    memory.drop(half, true)
    pipe.close()
    assert.strictEqual(memory.slabCount, 0, "the slab is let go once its one frame is")
  })
})

/** Spawns `script` under `bash -c` on pipes, with backpressure (unless told not) and lent or owned output. */
const spawn = (
  script: string,
  options: { readonly lendOutput: boolean; readonly window: number; readonly backpressure?: boolean }
) =>
  Effect.flatMap(
    prepareChild(
      {
        processId: "p",
        argv: ["bash", "-c", script],
        cwd: "/tmp",
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
        tty: false,
        backpressure: options.backpressure ?? true
      },
      {
        retainedBytes: options.window,
        baseEnvironment: {},
        stdinWindowBytes: 1024 * 1024,
        lendOutput: options.lendOutput
      },
      new Holdings()
    ),
    (prepared) => prepared.spawn(0)
  )

/** Random bytes on stdout, their sha256 on stderr. */
const randomWithChecksum = (bytes: number) => `head -c ${bytes} /dev/urandom | tee >(sha256sum | cut -d' ' -f1 >&2)`

describe("a pipe process's output memory, end to end", () => {
  it.live(
    "lent: a reader that acknowledges as it goes gets every byte, and a few slabs serve 32 MiB",
    () =>
      Effect.gen(function*() {
        const child = yield* spawn(randomWithChecksum(32 * 1024 * 1024), { lendOutput: true, window: 1024 * 1024 })
        const hash = createHash("sha256")
        const slabs = new Set<ArrayBufferLike>()
        let stderr = ""
        let afterSeq = 0
        while (true) {
          const result = yield* longPollRead(child.log, {
            processId: "p",
            afterSeq,
            maxBytes: 512 * 1024,
            waitMs: 1_000
          })
          for (const { chunk, stream } of result.chunks) {
            // as a server does: what it was lent is used up before it reads on
            if (stream === "stdout") hash.update(chunk)
            else stderr += Buffer.from(chunk).toString()
            if (chunk.length >= 16 * 1024) slabs.add(chunk.buffer)
          }
          afterSeq = result.nextSeq - 1
          child.acknowledge(afterSeq, 0)
          if (result.closed && result.chunks.length === 0) break
        }
        assert.strictEqual(hash.digest("hex"), stderr.trim())
        assert.isAtMost(slabs.size, Defaults.pipes.pooledSlabs + 4, `${slabs.size} slabs for 32 MiB`)
      }),
    60_000
  )

  it.live(
    "an executor that does not lend: a lending reader's 32 MiB cycle through a few slabs, and a reader that keeps what it is given after it finds it unchanged",
    () =>
      Effect.gen(function*() {
        const child = yield* spawn(randomWithChecksum(32 * 1024 * 1024), { lendOutput: false, window: 1024 * 1024 })
        const hash = createHash("sha256")
        const slabs = new Set<ArrayBufferLike>()
        const kept: Array<{ readonly view: Uint8Array; readonly copy: Buffer }> = []
        let stderr = ""
        let afterSeq = 0
        let received = 0
        while (true) {
          // the first 16 MiB read as Exec.run reads (lent), the rest by a reader that keeps each chunk
          const lent = received < 16 * 1024 * 1024
          const result = yield* longPollRead(
            child.log,
            { processId: "p", afterSeq, maxBytes: 512 * 1024, waitMs: 1_000 },
            lent
          )
          for (const { chunk, stream } of result.chunks) {
            if (stream === "stderr") {
              stderr += Buffer.from(chunk).toString()
              continue
            }
            hash.update(chunk)
            received += chunk.length
            if (lent && chunk.length >= 16 * 1024) slabs.add(chunk.buffer)
            if (!lent) kept.push({ view: chunk, copy: Buffer.from(chunk) })
          }
          afterSeq = result.nextSeq - 1
          child.acknowledge(afterSeq, 0)
          if (result.closed && result.chunks.length === 0) break
        }
        assert.strictEqual(hash.digest("hex"), stderr.trim())
        assert.isAtMost(slabs.size, Defaults.pipes.pooledSlabs + 4, `${slabs.size} slabs for 16 MiB`)
        assert.isAtLeast(kept.length, 2)
        for (const [i, { copy, view }] of kept.entries()) {
          assert.isTrue(Buffer.from(view).equals(copy), `kept chunk ${i} of ${kept.length} unchanged`)
        }
      }),
    60_000
  )

  it.live("owned: a reader that keeps every chunk finds each one as it was", () =>
    Effect.gen(function*() {
      const child = yield* spawn(randomWithChecksum(8 * 1024 * 1024), { lendOutput: false, window: 1024 * 1024 })
      const kept: Array<Uint8Array> = []
      let stderr = ""
      let afterSeq = 0
      while (true) {
        const result = yield* longPollRead(child.log, { processId: "p", afterSeq, maxBytes: 512 * 1024, waitMs: 1_000 })
        for (const { chunk, stream } of result.chunks) {
          if (stream === "stdout") kept.push(chunk)
          else stderr += Buffer.from(chunk).toString()
        }
        afterSeq = result.nextSeq - 1
        child.acknowledge(afterSeq, 0)
        if (result.closed && result.chunks.length === 0) break
      }
      // hashed only now, after all the output went through
      assert.strictEqual(createHash("sha256").update(Buffer.concat(kept)).digest("hex"), stderr.trim())
    }), 60_000)

  it.live(
    "lent: chunks read again behind the acknowledged cursor are the reader's own, whatever comes after",
    () =>
      Effect.gen(function*() {
        const child = yield* spawn("head -c 16777216 /dev/urandom", { lendOutput: true, window: 1024 * 1024 })
        const step = (afterSeq: number, maxBytes: number) =>
          longPollRead(child.log, { processId: "p", afterSeq, maxBytes, waitMs: 1_000 })
        let afterSeq = 0
        let received = 0
        // read and acknowledge past the first 3 MiB: the output is in slabs by now
        while (received < 3 * 1024 * 1024) {
          const result = yield* step(afterSeq, 256 * 1024)
          received += result.chunks.reduce((n, c) => n + c.chunk.length, 0)
          afterSeq = result.nextSeq - 1
          child.acknowledge(afterSeq, 0)
        }
        // a reader comes back to a cursor already acknowledged: what it gets may not be lent
        const again = yield* step(afterSeq - 3, 1024 * 1024)
        assert.isAtLeast(again.chunks.length, 1)
        const copies = again.chunks.map(({ chunk }) => Buffer.from(chunk))
        // the rest of the output churns through the slabs
        while (true) {
          const result = yield* step(afterSeq, 512 * 1024)
          afterSeq = result.nextSeq - 1
          child.acknowledge(afterSeq, 0)
          if (result.closed && result.chunks.length === 0) break
        }
        for (const [i, { chunk }] of again.chunks.entries()) {
          assert.isTrue(Buffer.from(chunk).equals(copies[i]!), `chunk ${i} unchanged`)
        }
      }),
    60_000
  )

  it.live(
    "lent, without backpressure: a chunk the log drops before it was acknowledged stays as the reader got it",
    () =>
      Effect.gen(function*() {
        // 16 MiB in a 64 KiB retention: whatever a reader holds is dropped by the log many times over; written in 64
        // paced bursts, so that reads hold chunks from the start to the end however loaded the machine is
        const child = yield* spawn("for i in $(seq 64); do head -c 262144 /dev/urandom; sleep 0.01; done", {
          lendOutput: true,
          window: 64 * 1024,
          backpressure: false
        })
        const held: Array<{ readonly view: Uint8Array; readonly copy: Buffer }> = []
        let afterSeq = 0
        while (!child.log.closed) {
          // reads that never acknowledge (the cursor stays at 0): each gets what the log retains now
          const result = yield* longPollRead(child.log, { processId: "p", afterSeq, maxBytes: null, waitMs: 100 })
          for (const { chunk } of result.chunks) held.push({ view: chunk, copy: Buffer.from(chunk) })
          yield* Effect.sleep("5 millis")
        }
        assert.isAtLeast(held.length, 2)
        for (const [i, { copy, view }] of held.entries()) {
          assert.isTrue(Buffer.from(view).equals(copy), `chunk ${i} of ${held.length} unchanged`)
        }
      }),
    60_000
  )
})
