import { assert, describe, it } from "@effect/vitest"
import { PushedOutput } from "../src/internal/remote/pushedOutput.ts"

const output = (seq: number, text: string) =>
  ({ _tag: "Output", seq, stream: "stdout", chunk: new TextEncoder().encode(text) }) as const
const texts = (result: ReturnType<PushedOutput["read"]>) => result?.chunks.map((c) => new TextDecoder().decode(c.chunk))

describe("PushedOutput (the remote executor's cache of pushed output)", () => {
  it("answers a read only from output that follows the cursor without a gap", () => {
    const cache = new PushedOutput()
    cache.add(output(2, "b"))
    assert.isUndefined(cache.read(0, null), "seq 1 is missing: ask the server")
    cache.add(output(1, "a"))
    const result = cache.read(0, null)
    assert.deepStrictEqual(texts(result), ["a", "b"])
    assert.strictEqual(result?.nextSeq, 3)
    assert.isFalse(result?.closed)
  })

  it("skips the exit, stops at the close, and says closed only then", () => {
    const cache = new PushedOutput()
    cache.add(output(1, "a"))
    cache.add({ _tag: "Exited", seq: 2, exitCode: 3, signal: null, sandboxDenied: false })
    cache.add(output(3, "late"))
    cache.add({ _tag: "Closed", seq: 4 })
    const result = cache.read(0, null)
    assert.deepStrictEqual(texts(result), ["a", "late"])
    assert.deepStrictEqual([result?.exited, result?.exitCode, result?.closed, result?.nextSeq], [true, 3, true, 4])
    assert.isUndefined(cache.read(3, null), "after the last output comes the close: the server says it")
    assert.isTrue(cache.knowsNext(3))
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
})
