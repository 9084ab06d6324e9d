import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as Executor from "../src/Executor.ts"
import { RawJson } from "../src/internal/server/reply.ts"
import * as Protocol from "../src/Protocol.ts"

const decodeStart = Schema.decodeUnknownExit(Protocol.StartParams)
const failureMessage = (exit: ReturnType<typeof decodeStart>): string =>
  exit._tag === "Failure" ? String(exit.cause) : ""

describe("Protocol", () => {
  it("decodes base64 chunks to bytes and encodes them back with padding", () => {
    const decoded = Schema.decodeUnknownSync(Protocol.ProcessChunk)({ seq: 1, stream: "stdout", chunk: "aGk=" })
    assert.deepStrictEqual([...decoded.chunk], [104, 105])
    assert.deepStrictEqual(Schema.encodeSync(Protocol.ProcessChunk)(decoded), {
      seq: 1,
      stream: "stdout",
      chunk: "aGk="
    })
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

  it("in pieces, written into one frame, is the same text, whatever the chunk sizes", () => {
    // sizes around the 192 KiB slices the base64 is written in, and around multiples of 3
    const sizes = [0, 1, 2, 3, 4, 196_607, 196_608, 196_609, 3 * 196_608 + 2, 1024 * 1024 + 1]
    const chunks = sizes.map((size, i) => ({
      seq: i + 1,
      stream: "stdout" as const,
      chunk: Uint8Array.from({ length: size }, (_, j) => (j * 31 + i) & 255)
    }))
    const result: Protocol.ReadResult = {
      chunks,
      nextSeq: chunks.length + 1,
      exited: false,
      exitCode: null,
      closed: false,
      failure: null
    }
    const frame = new RawJson(Protocol.readResultJsonPieces(result)).frame("{\"id\":\"é\",\"result\":", "}")
    assert.strictEqual(frame.toString("utf8"), `{"id":"é","result":${Protocol.readResultJson(result)}}`)
  })
})

describe("Protocol errors on the wire", () => {
  const reasons: ReadonlyArray<Executor.ExecutorErrorReason> = [
    new Executor.UnknownProcess({ processId: "p1" }),
    new Executor.ProcessIdInUse({ processId: "p1" }),
    new Executor.InvalidRequest({ description: "argv must not be empty", invalidParams: true }),
    new Executor.InvalidRequest({ description: "process id p1 is starting" }),
    new Executor.SpawnFailed({
      kind: "CwdNotFound",
      command: "ls",
      description: "working directory does not exist: /x"
    }),
    new Executor.Unsupported({ feature: "tty (pty) processes" }),
    new Executor.ServerError({ code: -32000, description: "too many processes" }),
    new Executor.PathNotFound({ path: "/x", description: "No such file or directory (os error 2)" }),
    new Executor.PathAccessDenied({ path: "/x", description: "Permission denied (os error 13)" }),
    new Executor.FileTooLarge({ path: "/x", operation: "read", limit: 64 }),
    new Executor.FileSystemFailure({ path: "/x", code: "EEXIST", errno: 17, description: "File exists (os error 17)" }),
    new Executor.SandboxRefused({ kind: "Unavailable", description: "bubblewrap not found" }),
    new Executor.SandboxRefused({ kind: "Required", description: "the request asks for no sandbox" }),
    new Executor.EnvironmentUnavailable({
      kind: "Unknown",
      environment: "devbox",
      description: "no environment devbox"
    })
  ]

  it("round-trips every reason through errorToWire and errorFromWire", () => {
    const tags = new Set(reasons.map((reason) => reason._tag))
    // every reason but ConnectionLost and ProtocolViolation (the client's own judgement of its link: see the
    // next test) is covered
    assert.deepStrictEqual(
      [...tags].sort(),
      Executor.ExecutorErrorReason.members.map((member) => member.identifier).filter((tag) =>
        tag !== "ConnectionLost" && tag !== "ProtocolViolation"
      ).sort()
    )
    for (const reason of reasons) {
      const wire = Protocol.errorToWire(reason)
      assert.deepStrictEqual(Protocol.errorFromWire(JSON.parse(JSON.stringify(wire))), reason)
    }
  })

  it("chooses codes by the reason's tag, with Codex's messages", () => {
    assert.deepStrictEqual(
      reasons.map((reason) => {
        const { code, message } = Protocol.errorToWire(reason)
        return [code, message]
      }),
      [
        [-32600, "unknown process id p1"],
        [-32600, "process p1 already exists"],
        [-32602, "argv must not be empty"],
        [-32600, "process id p1 is starting"],
        [-32603, "working directory does not exist: /x"],
        [-32602, "this executor does not support tty (pty) processes"],
        [-32000, "too many processes"],
        [-32004, "No such file or directory (os error 2)"],
        [-32600, "Permission denied (os error 13)"],
        [-32600, "file is too large to read: limit is 64 bytes"],
        [-32603, "File exists (os error 17)"],
        [-32602, "sandbox intent cannot be enforced on this executor: bubblewrap not found"],
        [-32602, "this executor runs only sandboxed processes: the request asks for no sandbox"],
        [-32600, "no environment devbox"]
      ]
    )
  })

  it("reads a server's ConnectionLost or ProtocolViolation as a ServerError: those judge this client's own link", () => {
    for (
      const reason of [
        new Executor.ConnectionLost({ description: "upstream gone" }),
        new Executor.ProtocolViolation({ description: "upstream lied" })
      ]
    ) {
      const wire = Protocol.errorToWire(reason)
      assert.strictEqual(wire.code, -32603)
      assert.strictEqual(Protocol.errorFromWire(wire)._tag, "ServerError")
    }
  })

  it("reads a Codex server's errors, which carry no typed reason, by code and Codex's messages", () => {
    const codex = (code: number, message: string, context: Protocol.ErrorContext = {}) =>
      Protocol.errorFromWire({ code, message }, context)
    assert.deepStrictEqual(
      codex(-32600, "unknown process id p9", { processId: "p9" }),
      new Executor.UnknownProcess({ processId: "p9" })
    )
    assert.deepStrictEqual(
      codex(-32602, "sandbox intent cannot be enforced on this executor"),
      new Executor.SandboxRefused({ kind: "Unavailable", description: "the exec-server has no sandbox" })
    )
    assert.deepStrictEqual(
      codex(-32600, "process p9 already exists", { processId: "p9" }),
      new Executor.ProcessIdInUse({ processId: "p9" })
    )
    assert.deepStrictEqual(
      codex(-32602, "argv must not be empty"),
      new Executor.InvalidRequest({ description: "argv must not be empty", invalidParams: true })
    )
    assert.deepStrictEqual(
      codex(-32601, "method not found: process/signal"),
      new Executor.Unsupported({ feature: "method not found: process/signal" })
    )
    assert.strictEqual(
      (codex(-32603, "failed to spawn: No such file or directory (os error 2)", {
        command: "nope"
      }) as Executor.SpawnFailed).kind,
      "CommandNotFound"
    )
    assert.deepStrictEqual(codex(-32603, "boom"), new Executor.ServerError({ code: -32603, description: "boom" }))
  })

  it("reads a Codex server's fs errors as file reasons, by code and the OS error number", () => {
    const codex = (code: number, message: string) => Protocol.errorFromWire({ code, message }, { path: "/p" })
    assert.deepStrictEqual(
      codex(-32004, "No such file or directory (os error 2)"),
      new Executor.PathNotFound({ path: "/p", description: "No such file or directory (os error 2)" })
    )
    assert.deepStrictEqual(
      codex(-32600, "Permission denied (os error 13)"),
      new Executor.PathAccessDenied({ path: "/p", description: "Permission denied (os error 13)" })
    )
    assert.deepStrictEqual(
      codex(-32603, "File exists (os error 17)"),
      new Executor.FileSystemFailure({
        path: "/p",
        code: "EEXIST",
        errno: 17,
        description: "File exists (os error 17)"
      })
    )
    assert.deepStrictEqual(
      codex(-32600, "file is too large to read: limit is 536870912 bytes"),
      new Executor.FileTooLarge({ path: "/p", operation: "read", limit: 536870912 })
    )
    assert.deepStrictEqual(
      codex(-32600, "path `/p` is not a file"),
      new Executor.InvalidRequest({ description: "path `/p` is not a file", invalidParams: false })
    )
  })
})

describe("Protocol.PathUri", () => {
  const decode = Schema.decodeUnknownExit(Protocol.PathUri)
  const decoded = (uri: string) => {
    const exit = decode(uri)
    return exit._tag === "Success" ? exit.value : `refused: ${String(exit.cause)}`
  }

  it("reads file URIs as Codex 0.169 does", () => {
    assert.strictEqual(decoded("file:///abs/a.txt"), "/abs/a.txt")
    assert.strictEqual(decoded("file:/abs/a.txt"), "/abs/a.txt")
    assert.strictEqual(decoded("file://localhost/abs/a.txt"), "/abs/a.txt")
    assert.strictEqual(decoded("FILE:///abs/a.txt"), "/abs/a.txt")
    assert.strictEqual(decoded("file:///abs/spa%20ce%25.txt"), "/abs/spa ce%.txt")
    assert.strictEqual(decoded("file:///abs/spa ce%.txt"), "/abs/spa ce%.txt")
    assert.strictEqual(decoded("file:///abs/dir%2Ff.txt"), "/abs/dir/f.txt")
    assert.strictEqual(decoded("file:///abs/dir/../a.txt"), "/abs/a.txt")
    assert.strictEqual(decoded("file:///abs/a.txt/"), "/abs/a.txt")
    assert.strictEqual(decoded("file:///%C3%A9t%C3%A9"), "/été")
    assert.strictEqual(decoded("file:///"), "/")
  })

  it("refuses what Codex refuses, in its words", () => {
    assert.include(decoded("/abs/a.txt"), "invalid URI: relative URL without a base")
    assert.include(decoded("a.txt"), "invalid URI: relative URL without a base")
    assert.include(decoded(""), "invalid URI: relative URL without a base")
    assert.include(decoded("http://x/a"), "unsupported path URI scheme `http`")
    assert.include(decoded("file:///abs/f.txt?x=1"), "query parameters are not allowed in path URIs")
    assert.include(decoded("file:///abs/f.txt#frag"), "fragments are not allowed in path URIs")
    assert.include(decoded("file://otherhost/abs/a.txt"), "'file://otherhost/abs/a.txt' is invalid on")
  })

  it("sends an absolute path as a URI that reads back the same, and refuses a relative one", () => {
    const encode = Schema.encodeUnknownExit(Protocol.PathUri)
    for (const path of ["/a b/%/#?/x", "/été/\n", "/"]) {
      const uri = encode(path)
      assert.strictEqual(uri._tag, "Success")
      if (uri._tag === "Success") assert.strictEqual(decoded(uri.value), path)
    }
    assert.strictEqual(encode("relative/path")._tag, "Failure")
  })
})

describe("Protocol's method table", () => {
  it("names every method once, and the capabilities from the extensions it marks", () => {
    assert.deepStrictEqual(Object.keys(Protocol.requests), [
      "initialize",
      "process/start",
      "process/read",
      "process/write",
      "process/terminate",
      "process/signal",
      "process/resize",
      "process/closeStdin",
      "fs/getMetadata",
      "fs/readFile",
      "fs/writeFile",
      "fs/createDirectory",
      "fs/remove",
      "fs/readDirectory",
      "fs/copy",
      "fs/canonicalize"
    ])
    assert.deepStrictEqual(Protocol.capabilities, [
      "dropped",
      "signal",
      "backpressure",
      "outputNotifications",
      "size",
      "windowBytes",
      "fs/readFile.maxBytes",
      "process/signal",
      "process/resize",
      "process/closeStdin",
      "process/acknowledge"
    ])
    assert.isTrue(Protocol.isRequestMethod("process/read"))
    assert.isFalse(Protocol.isRequestMethod("toString"), "inherited names are not methods")
  })
})
