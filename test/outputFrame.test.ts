/**
 * The binary output frame's layout, byte by byte: what the README's protocol
 * section promises a client that implements it.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  decodeOutputFrame,
  isOutputFrame,
  maxProcessIdBytes,
  OutputFrameHeader
} from "../src/internal/rpc/outputFrame.ts"

const bytes = (...values: ReadonlyArray<number>) => Buffer.from(values)

describe("binary output frames", () => {
  it("lays out kind, stream, seq, id length, id and chunk, big-endian", () => {
    const frame = new OutputFrameHeader("p-é").encode(0x01_0203_0405, "stderr", bytes(0xff, 0x00, 0x7b))
    assert.deepStrictEqual(
      [...frame],
      [
        0x01, // kind: process output
        0x01, // stream: stderr
        0x00,
        0x00,
        0x00,
        0x01,
        0x02,
        0x03,
        0x04,
        0x05, // seq 0x0102030405, 8 bytes
        0x00,
        0x04, // the id is 4 bytes of UTF-8
        0x70,
        0x2d,
        0xc3,
        0xa9, // "p-é"
        0xff,
        0x00,
        0x7b // the chunk, as it is
      ]
    )
  })

  it("numbers the streams stdout 0, stderr 1, pty 2", () => {
    const header = new OutputFrameHeader("p")
    assert.deepStrictEqual(
      (["stdout", "stderr", "pty"] as const).map((stream) => header.encode(1, stream, bytes())[1]),
      [0, 1, 2]
    )
  })

  it("decodes what it encodes, the chunk a view into the frame", () => {
    const chunk = Buffer.from("hello\n")
    for (const seq of [1, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const frame = new OutputFrameHeader("shell-1").encode(seq, "pty", chunk)
      const decoded = decodeOutputFrame(frame)
      assert(typeof decoded !== "string")
      assert.deepStrictEqual(
        { ...decoded, chunk: Buffer.from(decoded.chunk).toString() },
        { processId: "shell-1", seq, stream: "pty", chunk: "hello\n" }
      )
      assert.strictEqual(decoded.chunk.buffer, frame.buffer)
    }
  })

  it("carries an empty chunk and an empty id", () => {
    const decoded = decodeOutputFrame(new OutputFrameHeader("").encode(7, "stdout", bytes()))
    assert.deepStrictEqual(decoded, { processId: "", seq: 7, stream: "stdout", chunk: new Uint8Array(0) })
  })

  it("tells an output frame from JSON sent as a binary frame by its first byte", () => {
    assert.isTrue(isOutputFrame(new OutputFrameHeader("p").encode(1, "stdout", bytes(1))))
    for (const json of ["{\"id\":1}", " {}", "\n[]"]) assert.isFalse(isOutputFrame(Buffer.from(json)))
    assert.isFalse(isOutputFrame(bytes()))
  })

  it("says what is wrong with a malformed frame instead of throwing", () => {
    const valid = new OutputFrameHeader("abc").encode(5, "stdout", bytes(1, 2))
    const cases: ReadonlyArray<readonly [string, Uint8Array, RegExp]> = [
      ["empty", bytes(), /shorter than its header/],
      ["a header cut short", valid.subarray(0, 11), /shorter than its header/],
      ["another kind", Buffer.concat([bytes(0x02), valid.subarray(1)]), /unknown frame kind 2/],
      ["stream code 3", Buffer.concat([bytes(0x01, 0x03), valid.subarray(2)]), /unknown stream code 3/],
      [
        "seq 2^53",
        Buffer.concat([valid.subarray(0, 2), bytes(0, 0x20, 0, 0, 0, 0, 0, 0), valid.subarray(10)]),
        /2\^53/
      ],
      ["an id running past the end", Buffer.concat([valid.subarray(0, 10), bytes(0x01, 0x00), bytes(0x61)]), /past/]
    ]
    for (const [name, frame, message] of cases) {
      const decoded = decodeOutputFrame(frame)
      assert.isString(decoded, name)
      assert.match(decoded as string, message, name)
    }
  })

  it("leaves an id longer than a header holds to JSON", () => {
    assert.isTrue(new OutputFrameHeader("x".repeat(maxProcessIdBytes)).fits)
    assert.isFalse(new OutputFrameHeader("x".repeat(maxProcessIdBytes + 1)).fits)
  })
})
