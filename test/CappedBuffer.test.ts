import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
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

/** What a capture keeps, computed the obvious way from all of the bytes at once. */
const reference = (all: Uint8Array, limit: CappedBuffer.Limit) => {
  const headBytes = limit._tag === "Head" ? limit.maxBytes : limit._tag === "HeadTail" ? limit.headBytes : all.length
  const head = all.subarray(0, Math.min(headBytes, all.length))
  const rest = all.subarray(head.length)
  const tail = limit._tag === "HeadTail"
    ? rest.subarray(Math.max(0, rest.length - limit.tailBytes))
    : rest.subarray(0, 0)
  return { head, tail, dropped: all.length - head.length - tail.length }
}

const Bytes = Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 255 })))
const Size = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 12 }))

describe("CappedBuffer.make against a reference", () => {
  it.prop("keeps the head and the tail of any chunks, counting the cut", {
    chunks: Schema.Array(Bytes),
    headBytes: Size,
    tailBytes: Size
  }, ({ chunks, headBytes, tailBytes }) => {
    const all = Uint8Array.from(chunks.flat())
    for (
      const limit of [
        { _tag: "Head", maxBytes: headBytes },
        { _tag: "HeadTail", headBytes, tailBytes },
        { _tag: "Unlimited" }
      ] as const
    ) {
      const buffer = CappedBuffer.make(limit)
      for (const chunk of chunks) buffer.append(Uint8Array.from(chunk))
      const captured = buffer.snapshot()
      const { dropped, head, tail } = reference(all, limit)
      assert.deepStrictEqual([...captured.bytes], [...head, ...tail], limit._tag)
      assert.strictEqual(captured.totalBytes, all.length)
      assert.strictEqual(captured.droppedBytes, dropped)
      assert.deepStrictEqual(
        captured.omitted,
        limit._tag === "HeadTail" && dropped > 0 ? { atByte: head.length, bytes: dropped } : undefined
      )
    }
  })

  it("keeps the end of one chunk larger than the tail, after the head", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 3, tailBytes: 4 })
    buffer.append(encode("abcdefghijklmnop"))
    const captured = buffer.snapshot()
    assert.strictEqual(new TextDecoder().decode(captured.bytes), "abcmnop")
    assert.strictEqual(captured.text, "abc\n[… 9 bytes omitted …]\nmnop")
    assert.deepStrictEqual([captured.totalBytes, captured.droppedBytes], [16, 9])
  })

  it("keeps the end of a chunk larger than the tail that follows a full head, and the ring's wrap", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 2, tailBytes: 4 })
    buffer.append(encode("ab"))
    buffer.append(encode("cde")) // the ring holds cde
    buffer.append(encode("fghijk")) // larger than the ring: its last 4 replace everything
    assert.strictEqual(buffer.snapshot().text, "ab\n[… 5 bytes omitted …]\nhijk")
    buffer.append(encode("lm")) // wraps
    assert.strictEqual(buffer.snapshot().text, "ab\n[… 7 bytes omitted …]\njklm")
  })

  it("cuts text at whole characters on both sides of the omission mark", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 3, tailBytes: 5 })
    // the head ends inside € (a, then 2 of its 3 bytes); the tail starts inside 😀 (its last 2 bytes, then "xyz")
    buffer.append(encode("a€b-----😀xyz"))
    const captured = buffer.snapshot()
    assert.strictEqual(captured.text, "a\n[… 9 bytes omitted …]\nxyz")
    assert.strictEqual(captured.bytes.length, 8, "the bytes keep what the text leaves out")
  })

  it("keeps the whole text of a head that was not cut, an incomplete last character included", () => {
    const buffer = CappedBuffer.make({ _tag: "Head", maxBytes: 10 })
    const euro = encode("€")
    buffer.append(euro.subarray(0, 2))
    assert.strictEqual(buffer.snapshot().text, "\uFFFD", "nothing was cut: the bytes decode as they are")
    buffer.append(euro.subarray(2))
    assert.strictEqual(buffer.snapshot().text, "€")
  })
})

describe("CappedBuffer.aggregateCaptured", () => {
  const captured = (text: string, limit: CappedBuffer.Limit = { _tag: "Unlimited" }) => {
    const buffer = CappedBuffer.make(limit)
    buffer.append(encode(text))
    return buffer.snapshot()
  }

  it("has the text of what it kept once stdout and stderr pass the cap", () => {
    const aggregated = CappedBuffer.aggregateCaptured(captured("a".repeat(10)), captured("b".repeat(10)), 9)
    assert.strictEqual(aggregated.text, "aaabbbbbb")
    assert.deepStrictEqual([aggregated.totalBytes, aggregated.droppedBytes, aggregated.bytes.length], [20, 11, 9])
    assert.strictEqual(aggregated.omitted, undefined)
  })

  it("under the cap, is stdout's text then stderr's, marks of their cuts included", () => {
    const limit = { _tag: "HeadTail", headBytes: 2, tailBytes: 2 } as const
    const aggregated = CappedBuffer.aggregateCaptured(captured("0123456", limit), captured("err"), 100)
    assert.strictEqual(aggregated.text, "01\n[… 3 bytes omitted …]\n56err")
    assert.deepStrictEqual([aggregated.totalBytes, aggregated.droppedBytes], [10, 3])
    assert.strictEqual(new TextDecoder().decode(aggregated.bytes), "0156err")
  })

  it.prop("follows the Codex rule: stdout keeps a third (or what stderr leaves), stderr the rest", {
    stdout: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 30 })),
    stderr: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 30 })),
    cap: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 40 }))
  }, ({ cap, stderr, stdout }) => {
    const out = CappedBuffer.aggregate(filled(stdout, "a"), filled(stderr, "b"), cap)
    const stdoutTake = stdout + stderr <= cap ? stdout : Math.min(stdout, Math.max(Math.floor(cap / 3), cap - stderr))
    const stderrTake = stdout + stderr <= cap ? stderr : Math.min(stderr, cap - stdoutTake)
    assert.strictEqual(new TextDecoder().decode(out), "a".repeat(stdoutTake) + "b".repeat(stderrTake))
  })
})

describe("CappedBuffer text at a cut", () => {
  /** Every cut of `text`'s bytes, with the longest prefix of whole characters before it. */
  const cuts = (text: string) => {
    const bytes = encode(text)
    const boundaries = [0]
    for (const char of text) boundaries.push(boundaries.at(-1)! + encode(char).length)
    return Array.from({ length: bytes.length + 1 }, (_, at) => ({
      bytes: bytes.subarray(0, at),
      whole: Math.max(...boundaries.filter((boundary) => boundary <= at))
    }))
  }

  it("keeps only whole characters of 1 to 4 bytes before any cut, whatever their lead byte", () => {
    // ß (c3), ࠀ (e0, the lowest 3-byte lead), € (e2), 𐀀 (f0, the lowest 4-byte lead), 😀 (f0 9f)
    for (const { bytes, whole } of cuts("aßࠀ€𐀀😀z")) {
      assert.strictEqual(CappedBuffer.utf8CompleteLength(bytes), whole, `cut at ${bytes.length}`)
      const buffer = CappedBuffer.make({ _tag: "Head", maxBytes: bytes.length })
      buffer.append(encode("aßࠀ€𐀀😀z"))
      assert.strictEqual(buffer.snapshot().text, new TextDecoder().decode(bytes.subarray(0, whole)))
    }
  })

  it("drops a lone lead byte at a cut, and never looks back more than 3 bytes for one", () => {
    assert.strictEqual(CappedBuffer.utf8CompleteLength(Uint8Array.of(0x61, 0xc0)), 1)
    assert.strictEqual(CappedBuffer.utf8CompleteLength(Uint8Array.of(0x61, 0x80, 0x80, 0x80, 0x80)), 5)
    assert.strictEqual(CappedBuffer.utf8CompleteLength(new Uint8Array(0)), 0)
  })

  it("skips at most 3 continuation bytes at the start of a tail", () => {
    const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 1, tailBytes: 6 })
    buffer.append(Uint8Array.of(0x61, 0x62, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7a))
    assert.strictEqual(buffer.snapshot().text, "a\n[… 1 bytes omitted …]\n\uFFFD\uFFFDz")
  })
})
