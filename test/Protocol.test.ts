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
    }),
    new Executor.SessionLost({ processId: "p1" })
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
        [-32600, "no environment devbox"],
        [
          -32603,
          "the exec-server no longer has the session process p1 ran in: it expired while the client was disconnected, " +
          "or the server restarted; what became of the process is unknown"
        ]
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
    const relative = encode("relative/path")
    assert.include(relative._tag === "Failure" ? String(relative.cause) : "", "not an absolute path: \"relative/path\"")
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

describe("Protocol.Bytes", () => {
  const decode = Schema.decodeUnknownExit(Protocol.Bytes)
  const decoded = (wire: string) => {
    const exit = decode(wire)
    return exit._tag === "Success" ? [...exit.value] : `refused: ${String(exit.cause)}`
  }

  it("decodes standard base64 with no, one or two padding characters", () => {
    assert.deepStrictEqual(decoded(""), [])
    assert.deepStrictEqual(decoded("aA=="), [104])
    assert.deepStrictEqual(decoded("aGk="), [104, 105])
    assert.deepStrictEqual(decoded("aGV5"), [104, 101, 121])
    assert.deepStrictEqual(decoded("aGV5aA=="), [104, 101, 121, 104])
  })

  it("refuses text that is not base64 with its padding, rather than skip what it cannot read", () => {
    for (const wire of ["aGk", "aA", "aA=", "aGV5a", "aG!=", "aG k", "a===", "aA==aA==", "aGV5\n"]) {
      assert.include(decoded(wire), "invalid base64: expected standard base64 with padding", JSON.stringify(wire))
    }
  })
})

describe("Protocol.Cwd", () => {
  const decode = Schema.decodeUnknownExit(Protocol.Cwd)
  const decoded = (wire: string) => {
    const exit = decode(wire)
    return exit._tag === "Success" ? exit.value : `refused: ${String(exit.cause)}`
  }

  it("refuses a relative path, and a file URI that names no local path, naming what it got", () => {
    assert.include(
      decoded("relative/dir"),
      "invalid URI: cwd must be an absolute path or a file:// URI, got \"relative/dir\""
    )
    assert.include(decoded(""), "cwd must be an absolute path or a file:// URI, got \"\"")
    assert.include(decoded("file://otherhost/tmp"), "got \"file://otherhost/tmp\"")
    assert.include(decoded("file:///tmp/%2F"), "got \"file:///tmp/%2F\"")
    assert.include(decoded("http:///tmp"), "got \"http:///tmp\"")
  })
})

describe("Protocol.isDrained", () => {
  const result = (closed: boolean, chunks: number): Protocol.ReadResult => ({
    chunks: Array.from({ length: chunks }, (_, i) => ({ seq: i + 1, stream: "stdout", chunk: new Uint8Array(1) })),
    nextSeq: chunks + 1,
    exited: closed,
    exitCode: closed ? 0 : null,
    closed,
    failure: null
  })

  it("is true only for a closed process whose read found nothing more", () => {
    assert.isTrue(Protocol.isDrained(result(true, 0)))
    assert.isFalse(Protocol.isDrained(result(true, 1)), "closed, but chunks were held back")
    assert.isFalse(Protocol.isDrained(result(false, 0)))
    assert.isFalse(Protocol.isDrained(result(false, 2)))
  })
})

describe("Protocol.outputNotificationJson", () => {
  it("writes the notification the schema encoding and JSON.stringify would", () => {
    const chunk: Protocol.ProcessChunk = { seq: 7, stream: "stderr", chunk: new Uint8Array([0, 1, 254, 255]) }
    const processId = "p \"quoted\" \\ é"
    assert.deepStrictEqual(JSON.parse(Protocol.outputNotificationJson(processId, chunk)), {
      method: "process/output",
      params: Schema.encodeSync(Protocol.OutputNotification)({ processId, ...chunk })
    })
  })
})

describe("Protocol's method names", () => {
  it("tells the notifications a client may send from requests, server notifications and inherited names", () => {
    assert.isTrue(Protocol.isClientNotificationMethod("initialized"))
    assert.isTrue(Protocol.isClientNotificationMethod("process/acknowledge"))
    for (const name of ["process/read", "process/output", "toString", "__proto__", ""]) {
      assert.isFalse(Protocol.isClientNotificationMethod(name), name)
    }
    assert.isFalse(Protocol.isRequestMethod("initialized"))
    assert.isFalse(Protocol.isRequestMethod("hasOwnProperty"))
  })
})

describe("Protocol.limitOf", () => {
  it("names each limit a -32000 answer's data may carry, and nothing else", () => {
    for (const limit of ["requests", "processesPerSession", "processes", "sessions", "sessionsPerAddress"]) {
      assert.strictEqual(Protocol.limitOf({ data: { limit } }), limit)
    }
    for (const data of [undefined, null, "requests", ["requests"], {}, { limit: "memory" }, { limit: 1 }]) {
      assert.strictEqual(Protocol.limitOf({ data }), undefined, JSON.stringify(data))
    }
  })
})

describe("Protocol.signaledExitCode", () => {
  it("is 128 plus the signal's number, or -1 for no signal or a name that is none", () => {
    assert.strictEqual(Protocol.signaledExitCode("SIGKILL"), 137)
    assert.strictEqual(Protocol.signaledExitCode("SIGTERM"), 143)
    assert.strictEqual(Protocol.signaledExitCode("SIGHUP"), 129)
    for (const signal of [null, "SIGNOPE", "constructor", "__proto__", "toString", ""]) {
      assert.strictEqual(Protocol.signaledExitCode(signal), -1, String(signal))
    }
  })
})

describe("Protocol.errorFromWire, for answers without a typed reason", () => {
  const codex = (code: number, message: string, context: Protocol.ErrorContext = {}) =>
    Protocol.errorFromWire({ code, message }, context)

  it("tells a spawn failure's kind from Codex's message, for a failed start only", () => {
    const spawn = (message: string) => codex(-32603, message, { command: "ls" })
    assert.deepStrictEqual(
      spawn("failed to spawn: Working Directory /x does not exist"),
      new Executor.SpawnFailed({
        kind: "CwdNotFound",
        command: "ls",
        description: "failed to spawn: Working Directory /x does not exist"
      })
    )
    assert.strictEqual((spawn("sh: Command Not Found") as Executor.SpawnFailed).kind, "CommandNotFound")
    assert.strictEqual(
      (spawn("failed to spawn: Permission denied (os error 13)") as Executor.SpawnFailed).kind,
      "PermissionDenied"
    )
    assert.strictEqual((spawn("failed to spawn: out of memory") as Executor.SpawnFailed).kind, "Other")
    assert.deepStrictEqual(
      codex(-32603, "failed to spawn: No such file or directory (os error 2)"),
      new Executor.ServerError({
        code: -32603,
        description: "failed to spawn: No such file or directory (os error 2)"
      }),
      "not a start: an internal error"
    )
    assert.deepStrictEqual(
      codex(-32000, "No such file or directory", { command: "ls" }),
      new Executor.ServerError({ code: -32000, description: "No such file or directory" }),
      "a start refused for a limit is no spawn failure"
    )
  })

  it("reads Codex's sandbox refusals, keeping what follows its words", () => {
    assert.deepStrictEqual(
      codex(-32602, "sandbox intent cannot be enforced on this executor: no bwrap"),
      new Executor.SandboxRefused({ kind: "Unavailable", description: "no bwrap" })
    )
    assert.deepStrictEqual(
      codex(-32602, "sandbox runtime paths are not absolute"),
      new Executor.SandboxRefused({ kind: "Unavailable", description: "sandbox runtime paths are not absolute" })
    )
    assert.deepStrictEqual(
      codex(-32602, "the sandbox intent cannot be enforced on this executor"),
      new Executor.InvalidRequest({
        description: "the sandbox intent cannot be enforced on this executor",
        invalidParams: true
      }),
      "Codex's words only at the start"
    )
    assert.deepStrictEqual(
      codex(-32602, "the sandbox runtime paths are not absolute"),
      new Executor.InvalidRequest({ description: "the sandbox runtime paths are not absolute", invalidParams: true })
    )
    const quoted = "sandbox runtime paths: sandbox intent cannot be enforced on this executor: /tmp"
    assert.deepStrictEqual(
      codex(-32602, quoted),
      new Executor.SandboxRefused({ kind: "Unavailable", description: quoted }),
      "only a message that starts with Codex's words loses them"
    )
    assert.deepStrictEqual(
      codex(-32600, "sandbox runtime paths are not absolute"),
      new Executor.InvalidRequest({ description: "sandbox runtime paths are not absolute", invalidParams: false }),
      "with Codex's code only"
    )
  })

  it("reads process answers by code and words together, with the context's process id", () => {
    assert.deepStrictEqual(codex(-32600, "unknown process id p9"), new Executor.UnknownProcess({ processId: "" }))
    assert.deepStrictEqual(
      codex(-32602, "unknown process id p9", { processId: "p9" }),
      new Executor.InvalidRequest({ description: "unknown process id p9", invalidParams: true })
    )
    assert.deepStrictEqual(
      codex(-32600, "the process unknown process id", { processId: "p9" }),
      new Executor.InvalidRequest({ description: "the process unknown process id", invalidParams: false })
    )
    assert.deepStrictEqual(
      codex(-32602, "process p9 already exists", { processId: "p9" }),
      new Executor.InvalidRequest({ description: "process p9 already exists", invalidParams: true })
    )
    assert.deepStrictEqual(
      codex(-32600, "process p9 already exists; try again", { processId: "p9" }),
      new Executor.InvalidRequest({ description: "process p9 already exists; try again", invalidParams: false })
    )
    assert.deepStrictEqual(
      codex(-32600, "process p9 already exists"),
      new Executor.ProcessIdInUse({ processId: "" })
    )
    assert.deepStrictEqual(
      codex(-32000, "method not found"),
      new Executor.ServerError({ code: -32000, description: "method not found" })
    )
  })

  it("reads an fs answer by code and OS error: others are not file reasons", () => {
    const fs = (code: number, message: string) => codex(code, message, { path: "/p" })
    assert.deepStrictEqual(
      fs(-32603, "Operation not permitted (os error 1)"),
      new Executor.PathAccessDenied({ path: "/p", description: "Operation not permitted (os error 1)" })
    )
    assert.deepStrictEqual(
      fs(-32600, "file is too large to write: limit is 7 bytes"),
      new Executor.FileTooLarge({ path: "/p", operation: "write", limit: 7 })
    )
    assert.deepStrictEqual(
      fs(-32603, "file is too large to write: limit is 7 bytes"),
      new Executor.ServerError({ code: -32603, description: "file is too large to write: limit is 7 bytes" }),
      "too large only with Codex's code"
    )
    assert.deepStrictEqual(
      fs(-32600, "file is too large to read: limit is 7 bytes, or so"),
      new Executor.InvalidRequest({
        description: "file is too large to read: limit is 7 bytes, or so",
        invalidParams: false
      })
    )
    assert.deepStrictEqual(
      fs(-32600, "the file is too large to read: limit is 7 bytes"),
      new Executor.InvalidRequest({
        description: "the file is too large to read: limit is 7 bytes",
        invalidParams: false
      })
    )
    assert.deepStrictEqual(
      fs(-32600, "File exists (os error 17)"),
      new Executor.InvalidRequest({ description: "File exists (os error 17)", invalidParams: false }),
      "an OS error other than access is a file failure only as an internal error"
    )
    assert.deepStrictEqual(
      fs(-32603, "File exists (os error 17) twice"),
      new Executor.ServerError({ code: -32603, description: "File exists (os error 17) twice" }),
      "the OS error must end the message"
    )
    assert.deepStrictEqual(
      fs(-32603, "Unknown (os error 99999)"),
      new Executor.ServerError({ code: -32603, description: "Unknown (os error 99999)" }),
      "an OS error number no OS has"
    )
    assert.deepStrictEqual(
      fs(-32603, "Is a directory (os error 21)"),
      new Executor.FileSystemFailure({
        path: "/p",
        code: "EISDIR",
        errno: 21,
        description: "Is a directory (os error 21)"
      })
    )
    assert.deepStrictEqual(
      codex(-32004, "No such file or directory (os error 2)"),
      new Executor.ServerError({ code: -32004, description: "No such file or directory (os error 2)" }),
      "without a path, no file reason"
    )
  })

  it("reads a typed reason that does not decode, or data without one, as Codex's answer", () => {
    const wire = (data: unknown) =>
      Protocol.errorFromWire({ code: -32600, message: "unknown process id p1", data }, {
        processId: "p1"
      })
    const fromWords = new Executor.UnknownProcess({ processId: "p1" })
    assert.deepStrictEqual(wire({ reason: { _tag: "Nonsense" } }), fromWords)
    assert.deepStrictEqual(wire({ reason: null }), fromWords)
    assert.deepStrictEqual(wire({ limit: "requests" }), fromWords)
    assert.deepStrictEqual(wire(null), fromWords)
    assert.deepStrictEqual(wire("reason"), fromWords)
    assert.deepStrictEqual(
      wire({ reason: { _tag: "ProcessIdInUse", processId: "p2" } }),
      new Executor.ProcessIdInUse({ processId: "p2" }),
      "a typed reason wins over the words"
    )
    assert.deepStrictEqual(
      Protocol.errorFromWire({
        code: -32603,
        message: "gone",
        data: { reason: { _tag: "ConnectionLost", description: "x" } }
      }),
      new Executor.ServerError({ code: -32603, description: "gone" })
    )
  })
})

describe("Protocol.errorToWire", () => {
  it("carries a relayed server error's code and own words, and the reason in data", () => {
    const reason = new Executor.ServerError({ code: -32010, description: "session already attached" })
    assert.deepStrictEqual(Protocol.errorToWire(reason), {
      code: -32010,
      message: "session already attached",
      data: { reason: { _tag: "ServerError", code: -32010, description: "session already attached" } }
    })
    const lost = Protocol.errorToWire(new Executor.ProtocolViolation({ description: "upstream lied" }))
    assert.deepStrictEqual([lost.code, lost.message], [-32603, "the exec-server broke the protocol: upstream lied"])
  })
})
