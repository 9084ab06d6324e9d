/**
 * Binary output frames over the wire (our extension): offered in `initialize`
 * on WebSocket only, taken only by a client that asks in `initialized`, laid
 * out as the README's protocol section says. The frames are read here by
 * hand, not with the library's decoder.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { PassThrough } from "node:stream"
import * as ExecServer from "../src/ExecServer.ts"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import { listenLocal as server } from "./support/servers.ts"
import { connect, fromBase64, handshake, startParams, type WireClient } from "./support/wireClient.ts"

/** One output frame, read field by field as the README lays it out. */
const readFrame = (frame: Buffer) => {
  const idBytes = frame.readUInt16BE(10)
  return {
    kind: frame[0],
    stream: ["stdout", "stderr", "pty"][frame[1]!],
    seq: frame.readUInt32BE(2) * 2 ** 32 + frame.readUInt32BE(6),
    processId: frame.toString("utf8", 12, 12 + idBytes),
    chunk: frame.subarray(12 + idBytes)
  }
}

/** Starts `script` under `sh -c` and waits until the server says it closed. */
const runToClose = (client: WireClient, processId: string, script: string) =>
  Effect.gen(function*() {
    yield* client.call("process/start", startParams(processId, ["sh", "-c", script]))
    return yield* client.notification("process/closed", processId, () => true, 10_000)
  })

/** Output of about 300 KB on stdout (several pipe reads), then a line on stderr. */
const script = "head -c 300000 /dev/zero | tr '\\0' x; printf 'to stderr' >&2"

describe("binary output frames over the wire", () => {
  it.live("are offered in initialize over WebSocket", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const init = yield* handshake(client)
      assert.include(init.capabilities ?? [], "binaryOutput")
    }))

  it.live("never reach a client that did not ask: its output is JSON text", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      yield* handshake(client, {}, {})
      yield* runToClose(client, "p", script)
      const outputs = client.notifications("process/output", "p")
      const stdout = outputs.filter((o) => o.stream === "stdout").map((o) => fromBase64(o.chunk)).join("")
      const stderr = outputs.filter((o) => o.stream === "stderr").map((o) => fromBase64(o.chunk)).join("")
      assert.strictEqual(stdout, "x".repeat(300_000))
      assert.strictEqual(stderr, "to stderr")
      assert.strictEqual(client.binary.length, 0, "no binary frame at all")
    }))

  it.live("carry each chunk of a client that asked, with the documented header; exit and close stay JSON", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      yield* handshake(client, {}, { binaryOutput: true })
      const closed = yield* runToClose(client, "proc-é", script)
      const frames = client.binary.map(readFrame)
      assert.isAbove(frames.length, 1)
      for (const frame of frames) {
        assert.strictEqual(frame.kind, 0x01)
        assert.strictEqual(frame.processId, "proc-é")
      }
      const text = (stream: string) =>
        Buffer.concat(frames.filter((f) => f.stream === stream).map((f) => f.chunk)).toString()
      assert.strictEqual(text("stdout"), "x".repeat(300_000))
      assert.strictEqual(text("stderr"), "to stderr")
      // seqs: distinct, rising, before the exit and the close, which come as JSON
      const seqs = frames.map((f) => f.seq)
      assert.deepStrictEqual(seqs, [...seqs].sort((a, b) => a - b))
      assert.strictEqual(new Set(seqs).size, seqs.length)
      const [exited] = client.notifications("process/exited", "proc-é")
      assert.strictEqual(exited.exitCode, 0)
      assert.isBelow(Math.max(...seqs), closed.seq)
      assert.lengthOf(client.notifications("process/output", "proc-é"), 0, "no JSON copy of the output")
    }))

  it.live("answer a malformed binary frame from a client with -32600 and keep the connection", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      yield* handshake(client, {}, { binaryOutput: true })
      const garbage = [
        Buffer.from([0x01, 0x00, 0xff]), // an output frame's first bytes: no client sends those
        Buffer.from([0xff, 0xfe, 0xfd]), // not UTF-8
        Buffer.alloc(0)
      ]
      const refusals = () => client.received.filter((r) => r.frame.id === -1).map((r) => r.frame.error?.code)
      for (const [index, frame] of garbage.entries()) {
        yield* client.sendRaw(frame, { binary: true })
        yield* client.waitFor(`answer ${index + 1} to a malformed binary frame`, () => refusals().length > index)
      }
      assert.deepStrictEqual(refusals(), [-32600, -32600, -32600])
      const read = yield* client.callError("process/read", { processId: "none" })
      assert.strictEqual(read.code, -32600, "still served")
    }))

  it.live("go to the connection that asked: a session resumed without asking gets JSON", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const first = yield* connect(url)
      const { sessionId } = yield* handshake(first, {}, { binaryOutput: true })
      yield* first.call(
        "process/start",
        startParams("p", ["sh", "-c", "read line; echo \"$line\""], { pipeStdin: true })
      )
      yield* first.close
      const second = yield* connect(url)
      yield* handshake(second, { resumeSessionId: sessionId }, {})
      yield* second.call("process/write", { processId: "p", chunk: Buffer.from("after\n").toString("base64") })
      const output = yield* second.notification("process/output", "p")
      assert.strictEqual(fromBase64(output.chunk), "after\n")
      assert.strictEqual(second.binary.length, 0)
    }))
})

describe("binary output frames on stdio", () => {
  it.live("are not offered, and a client that asks anyway gets JSON text", () =>
    Effect.gen(function*() {
      const input = new PassThrough()
      const output = new PassThrough()
      const lines: Array<any> = []
      let pending = ""
      output.on("data", (data: Buffer) => {
        pending += data.toString("utf8")
        let newline = pending.indexOf("\n")
        while (newline !== -1) {
          lines.push(JSON.parse(pending.slice(0, newline)))
          pending = pending.slice(newline + 1)
          newline = pending.indexOf("\n")
        }
      })
      const until = (predicate: (message: any) => boolean) =>
        Effect.gen(function*() {
          for (let i = 0; i < 500; i++) {
            const found = lines.find(predicate)
            if (found !== undefined) return found
            yield* Effect.sleep(20)
          }
          return yield* Effect.die(new Error(`nothing matched; got ${JSON.stringify(lines).slice(0, 500)}`))
        })
      const send = (message: unknown) => input.write(JSON.stringify(message) + "\n")
      yield* Effect.forkScoped(
        ExecServer.serveStdio(input, output).pipe(Effect.provide(Layer.effect(Executor, LocalExecutor.make())))
      )
      send({ id: 1, method: "initialize", params: { clientName: "stdio-test" } })
      const init = yield* until((m) => m.id === 1)
      assert.notInclude(init.result.capabilities, "binaryOutput")
      send({ method: "initialized", params: { binaryOutput: true } })
      send({ id: 2, method: "process/start", params: startParams("p", ["echo", "over stdio"]) })
      const notified = yield* until((m) => m.method === "process/output")
      assert.strictEqual(fromBase64(notified.params.chunk), "over stdio\n")
      yield* until((m) => m.method === "process/closed")
      input.end()
    }))
})
