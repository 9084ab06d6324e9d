import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as Protocol from "../src/Protocol.ts"

const decodeStart = Schema.decodeUnknownExit(Protocol.StartParams)
const failureMessage = (exit: ReturnType<typeof decodeStart>): string =>
  exit._tag === "Failure" ? String(exit.cause) : ""

describe("Protocol", () => {
  it("decodes base64 chunks to bytes and encodes them back with padding", () => {
    const decoded = Schema.decodeUnknownSync(Protocol.ProcessChunk)({ seq: 1, stream: "stdout", chunk: "aGk=" })
    assert.deepStrictEqual([...decoded.chunk], [104, 105])
    assert.deepStrictEqual(Schema.encodeSync(Protocol.ProcessChunk)(decoded), { seq: 1, stream: "stdout", chunk: "aGk=" })
  })

  it("accepts cwd as a plain absolute path or a file:// URI, and sends the URI", () => {
    const base = { processId: "p", argv: ["true"], env: {}, tty: false }
    const fromPath = Schema.decodeUnknownSync(Protocol.StartParams)({ ...base, cwd: "/tmp/a b" })
    const fromUri = Schema.decodeUnknownSync(Protocol.StartParams)({ ...base, cwd: "file:///tmp/a%20b" })
    assert.strictEqual(fromPath.cwd, "/tmp/a b")
    assert.strictEqual(fromUri.cwd, "/tmp/a b")
    assert.strictEqual(Schema.encodeSync(Protocol.StartParams)(fromPath).cwd, "file:///tmp/a%20b")
  })

  it("names the field in a decode error", () => {
    const base = { processId: "p", argv: ["true"], cwd: "/tmp", env: {}, tty: false }
    assert.include(failureMessage(decodeStart({ ...base, argv: "ls -la" })), "argv")
    assert.include(failureMessage(decodeStart({ ...base, env: { A: 1 } })), "env")
    assert.include(failureMessage(decodeStart({ ...base, cwd: "relative/dir" })), "cwd")
    const { tty: _, ...withoutTty } = base
    assert.include(failureMessage(decodeStart(withoutTty)), "tty")
  })

  it("reads a Codex read result, nulls included, and our extensions as optional", () => {
    const result = Schema.decodeUnknownSync(Protocol.ReadResult)({
      chunks: [{ seq: 1, stream: "stderr", chunk: "" }],
      nextSeq: 2,
      exited: true,
      exitCode: null,
      closed: false,
      failure: null,
      sandboxDenied: false
    })
    assert.strictEqual(result.dropped, undefined)
    assert.strictEqual(result.chunks[0]?.chunk.length, 0)
  })

  it("rejects a negative afterSeq and an unknown stream", () => {
    assert.isTrue(Schema.decodeUnknownExit(Protocol.ReadParams)({ processId: "p", afterSeq: -1 })._tag === "Failure")
    assert.isTrue(
      Schema.decodeUnknownExit(Protocol.ProcessChunk)({ seq: 1, stream: "stdin", chunk: "" })._tag === "Failure"
    )
  })
})

describe("Protocol.readResultJson", () => {
  it("writes what the schema encoding and JSON.stringify would", () => {
    const result: Protocol.ReadResult = {
      chunks: [
        { seq: 3, stream: "stdout", chunk: new Uint8Array([0, 1, 2, 250, 255]) },
        { seq: 4, stream: "stderr", chunk: new TextEncoder().encode("é\"\\\n") }
      ],
      nextSeq: 5,
      exited: true,
      exitCode: 137,
      closed: false,
      failure: null,
      signal: "SIGKILL",
      dropped: { bytes: 10, chunks: 2 },
      sandboxDenied: false
    }
    assert.deepStrictEqual(
      JSON.parse(Protocol.readResultJson(result)),
      JSON.parse(JSON.stringify(Schema.encodeSync(Protocol.ReadResult)(result)))
    )
    const empty = { ...result, chunks: [] }
    assert.deepStrictEqual(JSON.parse(Protocol.readResultJson(empty)), Schema.encodeSync(Protocol.ReadResult)(empty))
  })
})
