/**
 * The byte stores behind `CappedBuffer`: what they hold follows the bytes,
 * not the number of chunks (a million tiny or empty chunks cost what one
 * chunk of the same bytes does), and they give back exactly what a naive
 * list of chunks would.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as CappedBuffer from "../src/CappedBuffer.ts"
import { ByteBlocks, ByteRing } from "../src/internal/bytes.ts"
import { maxMessageLength, oneLine } from "../src/internal/oneLine.ts"

const Chunks = Schema.Array(Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 255 }))))
const naive = (chunks: ReadonlyArray<ReadonlyArray<number>>) => Uint8Array.from(chunks.flat())

describe("ByteBlocks and ByteRing", () => {
  it.prop("give back every byte (blocks) or the last bytes (ring), as a list of chunks would", {
    chunks: Chunks,
    capacity: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 40 }))
  }, ({ capacity, chunks }) => {
    const blocks = new ByteBlocks(8)
    const ring = new ByteRing(capacity)
    for (const chunk of chunks) {
      blocks.append(Uint8Array.from(chunk))
      ring.append(Uint8Array.from(chunk))
    }
    const all = naive(chunks)
    assert.deepStrictEqual(blocks.bytes(), all)
    assert.deepStrictEqual(ring.bytes(), all.subarray(Math.max(0, all.length - capacity)))
    assert.strictEqual(blocks.blockCount, Math.ceil(all.length / 8), "every block but the last is full")
  })

  it("keeps the bytes it held when a block grows, and seals blocks at their size", () => {
    const blocks = new ByteBlocks(1000)
    const expected: Array<number> = []
    for (let i = 0; i < 300; i++) {
      const chunk = Uint8Array.from({ length: 7 }, (_, j) => (i * 7 + j) % 251)
      blocks.append(chunk)
      expected.push(...chunk)
    }
    // 2100 bytes: the first block grew from 256 to 1000, copying what it held; two sealed, one current
    assert.deepStrictEqual([...blocks.bytes()], expected)
    assert.strictEqual(blocks.blockCount, 3)
    assert.strictEqual(blocks.length, 2100)
  })

  it("hold a million one-byte chunks, and a million empty ones, in a few blocks", () => {
    const blocks = new ByteBlocks()
    const byte = Uint8Array.of(7)
    const nothing = new Uint8Array(0)
    for (let i = 0; i < 1_000_000; i++) {
      blocks.append(byte)
      blocks.append(nothing)
    }
    assert.strictEqual(blocks.length, 1_000_000)
    assert.strictEqual(blocks.blockCount, 1, "one block of 1 MiB")
  })

  it("CappedBuffer keeps a head and a tail of tiny chunks exactly", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 3, tailBytes: 4 })
    for (const byte of "0123456789") buffer.append(new TextEncoder().encode(byte))
    for (let i = 0; i < 1_000; i++) buffer.append(new Uint8Array(0))
    const captured = buffer.snapshot()
    assert.strictEqual(captured.text, "012\n[… 3 bytes omitted …]\n6789")
    assert.deepStrictEqual([captured.totalBytes, captured.droppedBytes], [10, 3])
  })
})

describe("oneLine", () => {
  it("turns control characters into spaces and cuts long text", () => {
    assert.strictEqual(oneLine("a\nb\r\n\tc \u001b[31mred\u009b2J  d\u2028e"), "a b c [31mred 2J d e")
    const long = oneLine("x".repeat(10_000_000))
    assert.strictEqual(long.length, maxMessageLength)
    assert.isTrue(long.endsWith("…"))
  })
})
