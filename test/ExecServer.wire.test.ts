/**
 * The exec-server as a client sees it: a plain `ws` WebSocket sending JSON
 * frames to `WebSocketListener.listen` over loopback, with real processes.
 * Codes and messages are the ones `shared/protocol.md` (and Codex 0.169)
 * specify.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { awaitDeath, isAlive } from "./support/processes.ts"
import { listenLocal as server } from "./support/servers.ts"
import {
  base64,
  codexShape,
  connect,
  fromBase64,
  handshake,
  pollUntil,
  readAll,
  refusedStatus,
  startParams,
  type WireClient
} from "./support/wireClient.ts"

/** A server and one client that has completed the handshake. */
const ready = (options: WebSocketListener.Options = {}) =>
  Effect.gen(function*() {
    const { url } = yield* server(options)
    const client = yield* connect(url)
    const init = yield* handshake(client)
    return { url, client, sessionId: init.sessionId }
  })

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The first line a process prints, from its `process/output` notifications, as a pid. */
const pidFromOutput = (client: WireClient, processId: string) =>
  Effect.map(
    client.notification("process/output", processId, (params) => fromBase64(params.chunk).includes("\n")),
    (params) => {
      const pid = Number(fromBase64(params.chunk).trim().split("\n")[0])
      assert.isAbove(pid, 1)
      return pid
    }
  )

// =============================================================================
// Handshake
// =============================================================================

describe("ExecServer over the wire: handshake", () => {
  it.live("refuses a process method before initialize", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const error = yield* client.callError("process/read", { processId: "p" })
      assert.deepStrictEqual(codexShape(error), {
        code: -32600,
        message: "client must call initialize before using exec methods"
      })
    }))

  it.live("refuses a process method after initialize but before initialized", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      yield* client.call("initialize", { clientName: "wire-test" })
      const error = yield* client.callError("process/start", startParams("p", ["true"]))
      assert.deepStrictEqual(codexShape(error), {
        code: -32600,
        message: "client must send initialized before using exec methods"
      })
      // the handshake can still be completed on the same connection
      yield* client.notify("initialized", {})
      const started = yield* client.call("process/start", startParams("p", ["true"]))
      assert.deepStrictEqual(started, { processId: "p", sandboxType: "none" })
    }))

  it.live("accepts initialize only once per connection, before and after initialized", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const first = yield* client.call("initialize", { clientName: "wire-test" })
      const before = yield* client.callError("initialize", { clientName: "wire-test" })
      assert.deepStrictEqual(codexShape(before), {
        code: -32600,
        message: "initialize may only be sent once per connection"
      })
      yield* client.notify("initialized", {})
      const after = yield* client.callError("initialize", { clientName: "wire-test" })
      assert.deepStrictEqual(codexShape(after), {
        code: -32600,
        message: "initialize may only be sent once per connection"
      })
      // the first session is still the connection's
      const resumed = yield* client.callError("initialize", {
        clientName: "wire-test",
        resumeSessionId: first.sessionId
      })
      assert.strictEqual(resumed.code, -32600)
    }))

  it.live("answers initialize with a UUID session id and a capabilities array", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const reply = yield* client.request("initialize", { clientName: "wire-test" }, { id: 1 })
      assert.strictEqual(reply.id, 1)
      assert.isUndefined(reply.error)
      assert.match(reply.result.sessionId, uuid)
      assert.isArray(reply.result.capabilities)
      for (const capability of reply.result.capabilities) assert.isString(capability)
      const other = yield* connect(url)
      const second = yield* other.call("initialize", { clientName: "wire-test" })
      assert.notStrictEqual(second.sessionId, reply.result.sessionId, "each new session gets its own id")
    }))

  it.live("accepts messages with and without \"jsonrpc\": \"2.0\", and echoes string and integer ids", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const init = yield* client.request("initialize", { clientName: "wire-test" }, { id: "init-str", jsonrpc: true })
      assert.strictEqual(init.id, "init-str")
      assert.match(init.result.sessionId, uuid)
      yield* client.notify("initialized", {}, { jsonrpc: true })
      const withMember = yield* client.request("process/start", startParams("a", ["true"]), { id: 7, jsonrpc: true })
      assert.strictEqual(withMember.id, 7)
      assert.deepStrictEqual(withMember.result, { processId: "a", sandboxType: "none" })
      const without = yield* client.request("process/start", startParams("b", ["true"]), { id: "s-b" })
      assert.strictEqual(without.id, "s-b")
      assert.deepStrictEqual(without.result, { processId: "b", sandboxType: "none" })

      // and the same with a handshake sent without the member
      const plain = yield* connect(url)
      const plainInit = yield* plain.request("initialize", { clientName: "wire-test" }, { id: 0 })
      assert.strictEqual(plainInit.id, 0)
      assert.match(plainInit.result.sessionId, uuid)
      yield* plain.notify("initialized")
      const read = yield* plain.request("process/read", { processId: "none" }, { jsonrpc: true })
      assert.deepStrictEqual(codexShape(read.error), { code: -32600, message: "unknown process id none" })
    }))

  it.live("serves a handshake pipelined without waiting for the initialize reply", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const initId = yield* client.send("initialize", { clientName: "wire-test" })
      yield* client.notify("initialized", {})
      const startId = yield* client.send("process/start", startParams("piped", ["true"]))
      const init = yield* client.reply(initId)
      assert.match(init.result.sessionId, uuid)
      const start = yield* client.reply(startId)
      assert.deepStrictEqual(start.result, { processId: "piped", sandboxType: "none" })
    }))
})

// =============================================================================
// Framing and methods
// =============================================================================

describe("ExecServer over the wire: frames and methods", () => {
  it.live("answers a non-JSON text frame with id -1 and -32600, and keeps the connection usable", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      yield* client.sendRaw("this is not json")
      const error = yield* client.reply(-1)
      assert.strictEqual(error.error?.code, -32600)
      assert.isString(error.error?.message)
      assert.isUndefined(error.result)
      // same socket, still served
      const init = yield* client.call("initialize", { clientName: "wire-test" })
      assert.match(init.sessionId, uuid)
      assert.strictEqual(client.socket.readyState, client.socket.OPEN)
    }))

  it.live("answers a JSON frame that is no JSON-RPC message with id -1 and -32600", () =>
    Effect.gen(function*() {
      // Codex answers these (`{}` and `{"id":77}` → "missing field `error`"); a
      // request with a misspelt `method` key must not be left without a reply
      const { url } = yield* server()
      const client = yield* connect(url)
      for (const frame of ["{}", "{\"id\":77}", "{\"id\":78,\"methd\":\"initialize\"}", "42", "[]"]) {
        const before = client.received.length
        yield* client.sendRaw(frame)
        yield* pollUntil(`an id -1 error for ${frame}`, () =>
          client.received.slice(before).some((r) => r.frame.id === -1), 1_000)
        const reply = client.received.slice(before).find((r) =>
          r.frame.id === -1
        )!.frame
        assert.strictEqual(reply.error?.code, -32600, frame)
      }
      const init = yield* client.call("initialize", { clientName: "wire-test" })
      assert.match(init.sessionId, uuid)
    }))

  it.live("accepts a binary frame holding JSON", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const reply = yield* client.request("initialize", { clientName: "wire-test" }, { binary: true })
      assert.isUndefined(reply.error)
      assert.match(reply.result.sessionId, uuid)
    }))

  it.live("answers an unknown method with -32601, before and after the handshake", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const early = yield* client.callError("no/such", {})
      assert.strictEqual(early.code, -32601)
      yield* handshake(client)
      for (const method of ["no/such", "fs/watchMissing", "http/request", "Process/Start"]) {
        const error = yield* client.callError(method, {})
        assert.strictEqual(error.code, -32601, method)
        assert.include(error.message, method)
      }
    }))
})

// =============================================================================
// process/start
// =============================================================================

describe("ExecServer over the wire: process/start", () => {
  it.live("refuses an empty argv with -32602", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const error = yield* client.callError("process/start", startParams("empty", []))
      assert.deepStrictEqual(codexShape(error), { code: -32602, message: "argv must not be empty" })
      const read = yield* client.callError("process/read", { processId: "empty" })
      assert.deepStrictEqual(
        codexShape(read),
        { code: -32600, message: "unknown process id empty" },
        "nothing was registered"
      )
    }))

  it.live("refuses params of the wrong type with -32602 naming the field", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const cases: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
        ["argv", startParams("t1", ["true"], { argv: "true" })],
        ["processId", startParams("t2", ["true"], { processId: 5 })],
        ["tty", startParams("t3", ["true"], { tty: "no" })],
        ["env", startParams("t4", ["true"], { env: { FOO: 1 } })],
        ["pipeStdin", startParams("t5", ["true"], { pipeStdin: "yes" })],
        ["cwd", startParams("t6", ["true"], { cwd: "relative/dir" })]
      ]
      for (const [field, params] of cases) {
        const error = yield* client.callError("process/start", params)
        assert.strictEqual(error.code, -32602, field)
        assert.include(error.message, field, `the message names ${field}: ${error.message}`)
      }
      const missing = yield* client.callError("process/start", {
        processId: "t7",
        argv: ["true"],
        cwd: "/tmp",
        env: {}
      })
      assert.strictEqual(missing.code, -32602)
      assert.include(missing.message, "tty")
      const read = yield* client.callError("process/read", { processId: "t1", waitMs: "soon" })
      assert.strictEqual(read.code, -32602)
      assert.include(read.message, "waitMs")
    }))

  it.live("takes cwd as a plain path and as a file:// URI", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const dir = mkdtempSync(join(tmpdir(), "wire cwd "))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      yield* client.call("process/start", startParams("plain", ["pwd"], { cwd: dir }))
      const uri = pathToFileURL(dir).href
      assert.include(uri, "%20")
      yield* client.call("process/start", startParams("uri", ["pwd"], { cwd: uri }))
      assert.strictEqual((yield* readAll(client, "plain")).text, `${dir}\n`)
      assert.strictEqual((yield* readAll(client, "uri")).text, `${dir}\n`)
    }))

  it.live("lets exactly one of two concurrent starts with one processId win", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const first = yield* client.send("process/start", startParams("dup", ["sleep", "5"]))
      const second = yield* client.send("process/start", startParams("dup", ["sleep", "5"]))
      const replies = [yield* client.reply(first), yield* client.reply(second)]
      const wins = replies.filter((reply) => reply.error === undefined)
      const losses = replies.filter((reply) => reply.error !== undefined)
      assert.strictEqual(wins.length, 1)
      assert.deepStrictEqual(wins[0]!.result, { processId: "dup", sandboxType: "none" })
      assert.deepStrictEqual(losses.map((reply) => codexShape(reply.error)), [{
        code: -32600,
        message: "process dup already exists"
      }])
      // and a later start with the id of a running process is refused the same way
      const again = yield* client.callError("process/start", startParams("dup", ["true"]))
      assert.deepStrictEqual(codexShape(again), { code: -32600, message: "process dup already exists" })
      assert.deepStrictEqual(yield* client.call("process/terminate", { processId: "dup" }), { running: true })
    }))

  it.live("keeps the id of a closed process reserved", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("kept", ["true"]))
      yield* client.notification("process/closed", "kept")
      const error = yield* client.callError("process/start", startParams("kept", ["true"]))
      assert.deepStrictEqual(codexShape(error), { code: -32600, message: "process kept already exists" })
    }))

  it.live("scopes process ids to a session", () =>
    Effect.gen(function*() {
      const { client, url } = yield* ready()
      yield* client.call("process/start", startParams("shared", ["sh", "-c", "printf one"]))
      const other = yield* connect(url)
      yield* handshake(other)
      const unknown = yield* other.callError("process/read", { processId: "shared" })
      assert.deepStrictEqual(codexShape(unknown), { code: -32600, message: "unknown process id shared" })
      yield* other.call("process/start", startParams("shared", ["sh", "-c", "printf two"]))
      assert.strictEqual((yield* readAll(client, "shared")).text, "one")
      assert.strictEqual((yield* readAll(other, "shared")).text, "two")
      assert.deepStrictEqual(client.notifications("process/output", "shared").map((p) => fromBase64(p.chunk)), ["one"])
    }))

  it.live("answers a spawn failure with -32603", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const error = yield* client.callError("process/start", startParams("missing", ["/nonexistent/command"]))
      assert.strictEqual(error.code, -32603)
      assert.isAbove(error.message.length, 0)
    }))

  it.live("names the typed reason of every executor error in data.reason (our extension)", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const unknown = yield* client.callError("process/read", { processId: "nobody" })
      assert.deepStrictEqual(unknown.data, { reason: { _tag: "UnknownProcess", processId: "nobody" } })
      const empty = yield* client.callError("process/start", startParams("empty", []))
      assert.deepStrictEqual(empty.data, {
        reason: { _tag: "InvalidRequest", description: "argv must not be empty", invalidParams: true }
      })
      const missing = yield* client.callError("process/start", startParams("missing", ["/nonexistent/command"]))
      assert.deepInclude(missing.data as object, {
        reason: {
          _tag: "SpawnFailed",
          kind: "CommandNotFound",
          command: "/nonexistent/command",
          description: "command not found: /nonexistent/command"
        }
      })
      // errors of the protocol itself (not of the executor) carry no reason
      const early = yield* client.callError("no/such", {})
      assert.isUndefined(early.data)
    }))
})

// =============================================================================
// Notifications
// =============================================================================

describe("ExecServer over the wire: notifications", () => {
  it.live("sends output, exited and closed with one seq counter", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      // each step once the one before it was pushed: a server that takes its time (a busy machine) cannot find both
      // outputs waiting, nor the exit before the output, so the order is the order they were written
      yield* client.call(
        "process/start",
        startParams("n1", ["sh", "-c", "printf out; read _; printf err >&2; read _; exit 7"], { pipeStdin: true })
      )
      for (const [stream, text] of [["stdout", "out"], ["stderr", "err"]] as const) {
        yield* client.notification("process/output", "n1", (params) => params.stream === stream)
        yield* client.call("process/write", { processId: "n1", chunk: base64("\n"), writeId: text })
      }
      yield* client.notification("process/closed", "n1")
      assert.deepStrictEqual(client.notifications("process/output", "n1"), [
        { processId: "n1", seq: 1, stream: "stdout", chunk: base64("out") },
        { processId: "n1", seq: 2, stream: "stderr", chunk: base64("err") }
      ])
      const exited = client.notifications("process/exited", "n1")
      assert.strictEqual(exited.length, 1)
      assert.strictEqual(exited[0].processId, "n1")
      assert.strictEqual(exited[0].seq, 3)
      assert.strictEqual(exited[0].exitCode, 7)
      assert.deepStrictEqual(client.notifications("process/closed", "n1"), [{ processId: "n1", seq: 4 }])
      // and in that order on the wire
      const order = client.received
        .filter((r) => r.frame.id === undefined && r.frame.params?.processId === "n1")
        .map((r) => `${r.frame.method}:${r.frame.params.seq}`)
      assert.deepStrictEqual(order, ["process/output:1", "process/output:2", "process/exited:3", "process/closed:4"])
    }))

  it.live("sends no process/output with outputNotifications: false, but still exited and closed", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call(
        "process/start",
        startParams("quiet", ["sh", "-c", "printf out; printf err >&2; exit 3"], { outputNotifications: false })
      )
      const closed = yield* client.notification("process/closed", "quiet")
      assert.deepStrictEqual(client.notifications("process/output", "quiet"), [])
      const exited = client.notifications("process/exited", "quiet")
      assert.strictEqual(exited.length, 1)
      assert.strictEqual(exited[0].exitCode, 3)
      assert.strictEqual(closed.seq, exited[0].seq + 1)
      // the output is still there to read
      const { text } = yield* readAll(client, "quiet")
      assert.include(["outerr", "errout"], text)
    }))
})

// =============================================================================
// process/read
// =============================================================================

describe("ExecServer over the wire: process/read", () => {
  it.live("answers an unknown process id with -32600", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const error = yield* client.callError("process/read", { processId: "X", afterSeq: 0, maxBytes: null, waitMs: 0 })
      assert.deepStrictEqual(codexShape(error), { code: -32600, message: "unknown process id X" })
    }))

  it.live("returns the read result shape", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("r1", ["sh", "-c", "printf hi; exit 4"]))
      yield* client.notification("process/closed", "r1")
      const result = yield* client.call("process/read", {
        processId: "r1",
        afterSeq: null,
        maxBytes: null,
        waitMs: null
      })
      assert.deepStrictEqual(result.chunks, [{ seq: 1, stream: "stdout", chunk: base64("hi") }])
      // the answer reaches the end of the log, so nextSeq is past the exit (2) and the close (3), as Codex
      // 0.169 answers: its client, resuming, takes nextSeq - 1 of a closed process for the close's seq
      assert.strictEqual(result.nextSeq, 4)
      assert.strictEqual(result.exited, true)
      assert.strictEqual(result.exitCode, 4)
      assert.strictEqual(result.closed, true)
      assert.strictEqual(result.failure, null)
      // afterSeq past the output: nothing, nextSeq is the process's next seq (after exit 2 and close 3)
      const past = yield* client.call("process/read", { processId: "r1", afterSeq: 1 })
      assert.deepStrictEqual(past.chunks, [])
      assert.strictEqual(past.nextSeq, 4)
      assert.strictEqual(past.closed, true)
    }))

  it.live("reports a running process as not exited, with a null exit code", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("r2", ["sleep", "5"]))
      const result = yield* client.call("process/read", { processId: "r2" })
      assert.deepStrictEqual(result.chunks, [])
      assert.strictEqual(result.nextSeq, 1)
      assert.strictEqual(result.exited, false)
      assert.strictEqual(result.exitCode, null)
      assert.strictEqual(result.closed, false)
      assert.strictEqual(result.failure, null)
      yield* client.call("process/terminate", { processId: "r2" })
    }))
})

// =============================================================================
// process/write
// =============================================================================

describe("ExecServer over the wire: process/write", () => {
  it.live("accepts a write to a process with pipeStdin, with and without writeId", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("cat", ["cat"], { pipeStdin: true }))
      const withId = yield* client.call("process/write", { processId: "cat", chunk: base64("hello\n"), writeId: "w-1" })
      assert.deepStrictEqual(withId, { status: "accepted" })
      const withoutId = yield* client.call("process/write", { processId: "cat", chunk: base64("again\n") })
      assert.deepStrictEqual(withoutId, { status: "accepted" })
      yield* pollUntil(
        "cat echoes both writes",
        () =>
          client.notifications("process/output", "cat").map((p) => fromBase64(p.chunk)).join("") === "hello\nagain\n",
        5_000
      )
      assert.deepStrictEqual(yield* client.call("process/terminate", { processId: "cat" }), { running: true })
    }))

  it.live("answers stdinClosed without pipeStdin, and unknownProcess for an unknown id", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("nostdin", ["sleep", "5"]))
      const closed = yield* client.call("process/write", { processId: "nostdin", chunk: base64("x"), writeId: "w" })
      assert.deepStrictEqual(closed, { status: "stdinClosed" })
      const unknown = yield* client.call("process/write", { processId: "ghost", chunk: base64("x"), writeId: "w" })
      assert.deepStrictEqual(unknown, { status: "unknownProcess" })
      const unknownNoId = yield* client.call("process/write", { processId: "ghost", chunk: base64("x") })
      assert.deepStrictEqual(unknownNoId, { status: "unknownProcess" })
      yield* client.call("process/terminate", { processId: "nostdin" })
    }))
})

// =============================================================================
// tty and process/resize
// =============================================================================

describe("ExecServer over the wire: tty and process/resize", () => {
  it.live("runs a tty process, its output on stream pty, typed into with process/write", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      const argv = ["sh", "-c", "printf ready; read x; echo got:$x; exit 3"]
      yield* client.call("process/start", startParams("tty", argv, { tty: true }))
      yield* client.notification("process/output", "tty", (params) => fromBase64(params.chunk).includes("ready"))
      const status = yield* client.call("process/write", { processId: "tty", chunk: base64("hi\n"), writeId: "w-1" })
      assert.deepStrictEqual(status, { status: "accepted" })
      const exited = yield* client.notification("process/exited", "tty")
      assert.strictEqual(exited.exitCode, 3)
      yield* client.notification("process/closed", "tty")
      const outputs = client.notifications("process/output", "tty")
      assert.deepStrictEqual([...new Set(outputs.map((p) => p.stream))], ["pty"])
      assert.strictEqual(outputs.map((p) => fromBase64(p.chunk)).join(""), "readyhi\r\ngot:hi\r\n")
    }))

  it.live("resizes a terminal with {processId, size: {rows, cols}} and answers {}", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call(
        "process/start",
        startParams("sized", ["sh", "-c", "stty size; read x; stty size"], { tty: true, size: { rows: 30, cols: 100 } })
      )
      yield* client.notification("process/output", "sized", (params) => fromBase64(params.chunk).includes("30 100"))
      assert.deepStrictEqual(
        yield* client.call("process/resize", { processId: "sized", size: { rows: 40, cols: 120 } }),
        {}
      )
      yield* client.call("process/write", { processId: "sized", chunk: base64("\n"), writeId: "w-1" })
      yield* client.notification("process/closed", "sized")
      const output = client.notifications("process/output", "sized").map((p) => fromBase64(p.chunk)).join("")
      assert.strictEqual(output, "30 100\r\n\r\n40 120\r\n")
    }))

  it.live("refuses a resize of a process without a terminal, an unknown one, or to an impossible size", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("piped", ["sleep", "5"]))
      const size = { rows: 10, cols: 10 }
      const piped = yield* client.callError("process/resize", { processId: "piped", size })
      assert.strictEqual(piped.code, -32600)
      assert.include(piped.message, "no terminal")
      assert.strictEqual((yield* client.callError("process/resize", { processId: "ghost", size })).code, -32600)
      for (const bad of [{ rows: 0, cols: 10 }, { rows: 10, cols: 70_000 }, { rows: 1.5, cols: 10 }]) {
        const error = yield* client.callError("process/resize", { processId: "piped", size: bad })
        assert.strictEqual(error.code, -32602)
        assert.include(error.message, "size")
      }
      // Codex's shape only: a flat {rows, cols} names the missing field
      const flat = yield* client.callError("process/resize", { processId: "piped", rows: 10, cols: 10 })
      assert.strictEqual(flat.code, -32602)
      assert.include(flat.message, "size")
      yield* client.call("process/terminate", { processId: "piped" })
    }))
})

// =============================================================================
// process/terminate
// =============================================================================

describe("ExecServer over the wire: process/terminate", () => {
  it.live("kills a running process with its whole group and answers running: true", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("group", ["sh", "-c", "sleep 100 & echo $!; wait"]))
      const grandchild = yield* pidFromOutput(client, "group")
      assert.isTrue(isAlive(grandchild))
      const result = yield* client.call("process/terminate", { processId: "group" })
      assert.deepStrictEqual(result, { running: true })
      yield* client.notification("process/closed", "group")
      yield* awaitDeath(grandchild, 3_000)
      const [exited] = client.notifications("process/exited", "group")
      assert.strictEqual(exited.signal, "SIGKILL", "the signal extension names the signal")
    }))

  it.live("answers running: false for an exited process and for an unknown id", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("done", ["true"]))
      yield* client.notification("process/exited", "done")
      assert.deepStrictEqual(yield* client.call("process/terminate", { processId: "done" }), { running: false })
      assert.deepStrictEqual(yield* client.call("process/terminate", { processId: "ghost" }), { running: false })
    }))
})

// =============================================================================
// Concurrency on one connection
// =============================================================================

describe("ExecServer over the wire: process slots", () => {
  it.live("gives a failed start's slot back, and a closed process's", () =>
    Effect.gen(function*() {
      const { client } = yield* ready({ maxProcessesPerSession: 1 })
      const missing = yield* client.callError("process/start", startParams("missing", ["no-such-command-xyz"]))
      assert.strictEqual(missing.code, -32603)
      const started = yield* client.call(
        "process/start",
        startParams("one", ["sh", "-c", "read line"], {
          pipeStdin: true
        })
      )
      assert.deepStrictEqual(started, { processId: "one", sandboxType: "none" })
      const twice = yield* client.callError("process/start", startParams("one", ["true"]))
      assert.strictEqual(twice.code, -32000, "the one slot is taken (the limit comes before the id check)")
      const full = yield* client.callError("process/start", startParams("two", ["true"]))
      assert.deepStrictEqual(codexShape(full), {
        code: -32000,
        message: "too many processes: this session already runs 1 (the limit); wait for some to close"
      })
      assert.deepStrictEqual(yield* client.call("process/closeStdin", { processId: "one" }), { status: "accepted" })
      yield* client.notification("process/closed", "one")
      // the slot is given back once the closed event is out, which may be just after the client sees it
      let frame = yield* client.request("process/start", startParams("three", ["true"]))
      for (let attempt = 1; frame.error !== undefined; attempt++) {
        assert.isBelow(attempt, 100, `the closed process's slot never came back: ${JSON.stringify(frame.error)}`)
        yield* Effect.sleep(20)
        frame = yield* client.request("process/start", startParams(`three-${attempt}`, ["true"]))
      }
      assert.match(frame.result.processId, /^three/)
    }))
})

describe("ExecServer over the wire: concurrency", () => {
  it.live("answers a terminate sent after a long-poll read before the read", () =>
    Effect.gen(function*() {
      const { client } = yield* ready()
      yield* client.call("process/start", startParams("quiet", ["sleep", "100"]))
      // a wait longer than any test: only the exit can end it
      const readId = yield* client.send("process/read", {
        processId: "quiet",
        afterSeq: 0,
        maxBytes: null,
        waitMs: 3_600_000
      })
      const terminateId = yield* client.send("process/terminate", { processId: "quiet" })
      const terminated = yield* client.reply(terminateId, 10_000)
      assert.deepStrictEqual(terminated.result, { running: true })
      const read = yield* client.reply(readId, 10_000)
      const arrival = (id: string | number) =>
        client.received.findIndex((r) => r.frame.method === undefined && r.frame.id === id)
      assert.isBelow(arrival(terminateId), arrival(readId), "the terminate reply came first")
      assert.strictEqual(read.result.exited, true, "the read woke on the exit")
    }))
})

// =============================================================================
// Sessions
// =============================================================================

describe("ExecServer over the wire: sessions", () => {
  /** Resumes `sessionId` on `client`, retrying while the old connection is still being detached. */
  const resume = (client: WireClient, sessionId: string) =>
    Effect.gen(function*() {
      // generous: how long the detach takes is the machine's load, and a resume that works returns at once
      const deadline = Date.now() + 10_000
      while (true) {
        const reply = yield* client.request("initialize", { clientName: "wire-test", resumeSessionId: sessionId })
        if (reply.error?.code !== -32010 || Date.now() > deadline) return reply
        yield* Effect.sleep(10)
      }
    })

  /**
   * Sends `initialize` on fresh connections until one is answered without an
   * error (under `maxSessionsPerAddress: 1`, refused while another session of
   * this address is attached), and returns that connection.
   */
  const initializeOnceFree = (url: string, params: Record<string, unknown>) =>
    Effect.gen(function*() {
      for (let attempt = 0; attempt < 500; attempt++) {
        const client = yield* connect(url)
        yield* client.send("initialize", { clientName: "wire-test", ...params }, { id: "init" })
        const answer = yield* client.reply("init")
        if (answer.error === undefined) return client
        assert.include([-32000, -32010], answer.error.code, JSON.stringify(answer.error))
        yield* client.close
        yield* Effect.sleep(20)
      }
      return assert.fail("no session could be attached from this address")
    })

  it.live("resumes a detached session on a new connection, with its processes", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const a = yield* connect(url)
      const { sessionId } = yield* handshake(a)
      yield* a.call("process/start", startParams("late", ["sh", "-c", "sleep 0.5; printf late"]))
      yield* a.close

      const b = yield* connect(url)
      const reply = yield* resume(b, sessionId)
      assert.isUndefined(reply.error, JSON.stringify(reply.error))
      assert.strictEqual(reply.result.sessionId, sessionId)
      yield* b.notify("initialized", {})
      const { last, text } = yield* readAll(b, "late")
      assert.strictEqual(text, "late")
      assert.strictEqual(last.exitCode, 0)
    }))

  it.live("tells a resumed client of an exit and close that happened while it was away", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make()
      // one attached session an address: the session is detached once another from here is accepted
      const { url } = yield* Effect.provideService(
        WebSocketListener.listen({ maxSessionsPerAddress: 1 }),
        Executor,
        executor
      )
      const dir = mkdtempSync(join(tmpdir(), "wire-away-"))
      const go = join(dir, "go")
      const a = yield* connect(url)
      const { sessionId } = yield* handshake(a)
      // the process ends only once told, after the session is detached, however long the detach takes
      yield* a.call(
        "process/start",
        startParams("gone", ["sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.01; done; exit 3", go], {
          outputNotifications: false
        })
      )
      yield* a.close
      const probe = yield* initializeOnceFree(url, {})
      yield* probe.close
      writeFileSync(go, "")
      // it exits and closes while nobody is attached: awaited on the server's own executor
      yield* Stream.runDrain(executor.events(`${sessionId}/gone`))
      rmSync(dir, { recursive: true, force: true })

      const b = yield* initializeOnceFree(url, { resumeSessionId: sessionId })
      yield* b.notify("initialized", {})
      const exited = yield* b.notification("process/exited", "gone")
      assert.strictEqual(exited.exitCode, 3)
      const closed = yield* b.notification("process/closed", "gone")
      assert.strictEqual(closed.seq, exited.seq + 1)
    }))

  it.live("refuses to resume an unknown session id, and the connection can still initialize", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const unknown = crypto.randomUUID()
      const error = yield* client.callError("initialize", { clientName: "wire-test", resumeSessionId: unknown })
      assert.deepStrictEqual(codexShape(error), { code: -32600, message: `unknown session id ${unknown}` })
      const fresh = yield* client.call("initialize", { clientName: "wire-test", resumeSessionId: null })
      assert.match(fresh.sessionId, uuid)
      assert.notStrictEqual(fresh.sessionId, unknown)
    }))

  it.live("refuses to resume a session still attached to another connection", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const a = yield* connect(url)
      const { sessionId } = yield* handshake(a)
      const b = yield* connect(url)
      const error = yield* b.callError("initialize", { clientName: "wire-test", resumeSessionId: sessionId })
      assert.deepStrictEqual(error, {
        code: -32010,
        message: `session ${sessionId} is already attached to another connection`
      })
      // the attached connection keeps working
      const started = yield* a.call("process/start", startParams("still", ["true"]))
      assert.deepStrictEqual(started, { processId: "still", sandboxType: "none" })
    }))

  it.live("kills a detached session's processes after the TTL and forgets the session", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ sessionTtl: "300 millis" })
      const a = yield* connect(url)
      const { sessionId } = yield* handshake(a)
      yield* a.call("process/start", startParams("sleeper", ["sh", "-c", "echo $$; exec sleep 100"]))
      const pid = yield* pidFromOutput(a, "sleeper")
      assert.isTrue(isAlive(pid))
      yield* a.close
      // (that it outlives the disconnect until the TTL is asserted in virtual time: ExecServer.sessions.test.ts)
      yield* awaitDeath(pid, 5_000)
      const b = yield* connect(url)
      const error = yield* b.callError("initialize", { clientName: "wire-test", resumeSessionId: sessionId })
      assert.deepStrictEqual(codexShape(error), { code: -32600, message: `unknown session id ${sessionId}` })
    }))
})

// =============================================================================
// Upgrade checks and listening
// =============================================================================

describe("ExecServer over the wire: upgrade and listen", () => {
  it.live("requires the bearer token when one is set", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ token: Redacted.make("s3cret") })
      assert.strictEqual(yield* refusedStatus(url), 401)
      assert.strictEqual(yield* refusedStatus(url, { headers: { Authorization: "Bearer wrong" } }), 401)
      assert.strictEqual(yield* refusedStatus(url, { headers: { Authorization: "s3cret" } }), 401)
      const client = yield* connect(url, { headers: { Authorization: "Bearer s3cret" } })
      const init = yield* client.call("initialize", { clientName: "wire-test" })
      assert.match(init.sessionId, uuid)
    }))

  it.live("refuses a browser Origin that is not allowed with 403", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ allowedOrigins: ["https://allowed.example"] })
      assert.strictEqual(yield* refusedStatus(url, { origin: "https://evil.example" }), 403)
      const allowed = yield* connect(url, { origin: "https://allowed.example" })
      assert.match((yield* allowed.call("initialize", { clientName: "wire-test" })).sessionId, uuid)
      const noOrigin = yield* connect(url)
      assert.match((yield* noOrigin.call("initialize", { clientName: "wire-test" })).sessionId, uuid)
    }))

  it.live("refuses to listen off loopback without a token", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(server({ listen: "ws://0.0.0.0:0" }))
      assert.strictEqual(error._tag, "ListenError")
      assert.strictEqual(error.option, "token")
      // a library's user set an option, not a flag: the message names the option
      assert.match(error.message, /^token is required to listen on 0\.0\.0\.0: /)
    }))

  it.live("refuses a host name in the listen address", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(server({ listen: "ws://localhost:0" }))
      assert.strictEqual(error._tag, "ListenError")
      assert.strictEqual(error.option, "listen")
      assert.strictEqual(
        error.message,
        "listen needs an IP address, not the host name localhost (try ws://127.0.0.1:0)"
      )
    }))

  it.live("binds 127.0.0.1 on a free port and reports it", () =>
    Effect.gen(function*() {
      const { port, url } = yield* server()
      assert.isAbove(port, 0)
      assert.strictEqual(url, `ws://127.0.0.1:${port}`)
    }))
})
