import { assert, describe, it } from "@effect/vitest"
import * as CappedBuffer from "../src/CappedBuffer.ts"

const N = 1024 * 1024
const filled = (length: number, char: string) => new Uint8Array(length).fill(char.charCodeAt(0))
const count = (bytes: Uint8Array, char: string) => bytes.filter((b) => b === char.charCodeAt(0)).length
const encode = (s: string) => new TextEncoder().encode(s)

describe("CappedBuffer.aggregate (the Codex rule)", () => {
  it("gives stdout a third and stderr the rest under contention", () => {
    const out = CappedBuffer.aggregate(filled(N, "a"), filled(N, "b"), N)
    assert.strictEqual(out.length, N)
    assert.strictEqual(count(out.subarray(0, Math.floor(N / 3)), "a"), 349_525)
    assert.strictEqual(count(out.subarray(Math.floor(N / 3)), "b"), 699_051)
  })

  it("fills the remaining room with stderr when stdout is small", () => {
    const out = CappedBuffer.aggregate(filled(Math.floor(N / 10), "a"), filled(N, "b"), N)
    assert.strictEqual(out.length, N)
    assert.strictEqual(count(out, "a"), 104_857)
    assert.strictEqual(count(out.subarray(104_857), "b"), 943_719)
  })

  it("gives room stderr leaves unused back to stdout", () => {
    const out = CappedBuffer.aggregate(filled(N, "a"), filled(1, "b"), N)
    assert.strictEqual(out.length, N)
    assert.strictEqual(count(out.subarray(0, N - 1), "a"), N - 1)
    assert.strictEqual(out[N - 1], "b".charCodeAt(0))
  })

  it("keeps stdout then stderr under the cap", () => {
    const out = CappedBuffer.aggregate(encode("aaaa"), encode("bbb"), N)
    assert.strictEqual(new TextDecoder().decode(out), "aaaabbb")
  })

  it("keeps every byte without a cap", () => {
    const out = CappedBuffer.aggregate(filled(N, "a"), filled(N, "b"), undefined)
    assert.strictEqual(out.length, 2 * N)
    assert.strictEqual(count(out.subarray(0, N), "a"), N)
    assert.strictEqual(count(out.subarray(N), "b"), N)
  })
})

describe("CappedBuffer.make", () => {
  it("keeps the head up to the cap and counts what it dropped", () => {
    const buffer = CappedBuffer.make({ _tag: "Head", maxBytes: N })
    for (let i = 0; i < 20; i++) buffer.append(filled(N / 16 + 7, "a"))
    const captured = buffer.snapshot()
    assert.strictEqual(captured.bytes.length, N)
    assert.strictEqual(captured.totalBytes, 20 * (N / 16 + 7))
    assert.strictEqual(captured.droppedBytes, captured.totalBytes - N)
  })

  it("never cuts a character in the text of a truncated head", () => {
    const buffer = CappedBuffer.make({ _tag: "Head", maxBytes: 4 })
    buffer.append(encode("ab€")) // a b + 3 bytes: the cut falls inside €
    const captured = buffer.snapshot()
    assert.strictEqual(captured.bytes.length, 4)
    assert.strictEqual(captured.text, "ab")
  })

  it("keeps a character split across appends whole", () => {
    const buffer = CappedBuffer.make({ _tag: "Unlimited" })
    const bytes = encode("x😀y")
    for (const byte of bytes) buffer.append(Uint8Array.of(byte))
    assert.strictEqual(buffer.snapshot().text, "x😀y")
  })

  it("keeps head and tail and marks the cut", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 4, tailBytes: 4 })
    buffer.append(encode("0123"))
    buffer.append(encode("45"))
    buffer.append(encode("6789"))
    const captured = buffer.snapshot()
    assert.strictEqual(captured.text, "0123\n[… 2 bytes omitted …]\n6789")
    assert.deepStrictEqual(captured.omitted, { atByte: 4, bytes: 2 })
    assert.strictEqual(new TextDecoder().decode(captured.bytes), "01236789")
  })

  it("has no cut to mark when head and tail hold everything", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 4, tailBytes: 4 })
    buffer.append(encode("012345"))
    const captured = buffer.snapshot()
    assert.strictEqual(captured.text, "012345")
    assert.strictEqual(captured.omitted, undefined)
  })

  it("bounds a head-tail capture of a large stream", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 100, tailBytes: 100 })
    for (let i = 0; i < 1000; i++) buffer.append(filled(1000, i % 2 === 0 ? "a" : "b"))
    const captured = buffer.snapshot()
    assert.strictEqual(captured.bytes.length, 200)
    assert.strictEqual(captured.droppedBytes, 1_000_000 - 200)
    assert.strictEqual(count(captured.bytes.subarray(100), "b"), 100, "the tail is the last chunk's end")
  })
})

describe("CappedBuffer.utf8CompleteLength", () => {
  it("drops only an incomplete trailing sequence", () => {
    const euro = encode("€")
    assert.strictEqual(CappedBuffer.utf8CompleteLength(euro), 3)
    assert.strictEqual(CappedBuffer.utf8CompleteLength(euro.subarray(0, 2)), 0)
    assert.strictEqual(CappedBuffer.utf8CompleteLength(encode("abc")), 3)
  })
})
