/**
 * The newline-delimited JSON transport over a pair of streams (what
 * `effect-exec serve --stdio` and a Codex stdio client use), fed as an OS
 * pipe feeds it: in reads that cut lines, and characters, anywhere.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { PassThrough } from "node:stream"
import * as ExecServer from "../src/ExecServer.ts"
import { Executor } from "../src/Executor.ts"
import { fromStreams } from "../src/JsonRpc.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"

const utf8 = (text: string) => Buffer.from(text, "utf8")

/** `bytes` in two writes, cut `at` bytes in. */
const writeSplit = (stream: PassThrough, bytes: Buffer, at: number) => {
  stream.write(bytes.subarray(0, at))
  stream.write(bytes.subarray(at))
}

/** The frames a stream carries, one JSON message a line; `reply(id)` waits for the answer to request `id`. */
const framesOf = (stream: PassThrough) => {
  const frames: Array<any> = []
  let pending = ""
  stream.setEncoding("utf8")
  stream.on("data", (data: string) => {
    pending += data
    let newline = pending.indexOf("\n")
    while (newline !== -1) {
      frames.push(JSON.parse(pending.slice(0, newline)))
      pending = pending.slice(newline + 1)
      newline = pending.indexOf("\n")
    }
  })
  const find = (id: number) => frames.find((frame) => frame.id === id && frame.method === undefined)
  return {
    reply: (id: number) =>
      Effect.promise(() =>
        new Promise<any>((resolve) => {
          const check = () => {
            const found = find(id)
            if (found !== undefined) resolve(found)
            else stream.once("data", () => setImmediate(check))
          }
          check()
        })
      )
  }
}

describe("the stdio transport", () => {
  it.effect("keeps a multi-byte character whole when a read cuts it, in a line cut in two", () =>
    Effect.gen(function*() {
      const input = new PassThrough()
      const frames: Array<string> = []
      fromStreams(input, new PassThrough()).listen({ onFrame: (frame) => frames.push(frame), onClose: () => {} })
      const line = utf8("{\"text\":\"€ and 😀\"}\n")
      const euro = line.indexOf(utf8("€"))
      writeSplit(input, line, euro + 1) // one byte of the euro sign, then its other two
      const emoji = utf8("{\"b\":\"😀\"}\n")
      writeSplit(input, emoji, emoji.indexOf(utf8("😀")) + 3) // three of its four bytes, then the last
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      assert.deepStrictEqual(frames.map((frame) => JSON.parse(frame)), [{ text: "€ and 😀" }, { b: "😀" }])
    }))

  it.live("serves a client whose requests arrive with characters cut across reads", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make()
      const toServer = new PassThrough()
      const toClient = new PassThrough()
      yield* Effect.forkScoped(
        ExecServer.serveStdio(toServer, toClient).pipe(Effect.provideService(Executor, executor))
      )
      const client = framesOf(toClient)
      const send = (message: object, cutInside: string) => {
        const line = utf8(JSON.stringify(message) + "\n")
        writeSplit(toServer, line, line.indexOf(utf8(cutInside)) + 1)
      }
      send({ id: 1, method: "initialize", params: { clientName: "naïve" } }, "ï")
      assert.isString((yield* client.reply(1)).result.sessionId)
      toServer.write("{\"method\":\"initialized\",\"params\":{}}\n")
      send({
        id: 2,
        method: "process/start",
        params: { processId: "p", argv: ["printf", "%s", "€😀"], cwd: "/tmp", env: {}, tty: false }
      }, "😀")
      assert.deepStrictEqual(yield* client.reply(2), { id: 2, result: { processId: "p", sandboxType: "none" } })
      let text = ""
      let afterSeq = 0
      for (let id = 3;; id++) {
        toServer.write(
          JSON.stringify({ id, method: "process/read", params: { processId: "p", afterSeq, waitMs: 1000 } })
        )
        toServer.write("\n")
        const answer = (yield* client.reply(id)).result
        for (const chunk of answer.chunks) text += Buffer.from(chunk.chunk, "base64").toString("utf8")
        afterSeq = answer.nextSeq - 1
        if (answer.closed) break
      }
      assert.strictEqual(text, "€😀", "the argv reached the command whole")
    }))
})
