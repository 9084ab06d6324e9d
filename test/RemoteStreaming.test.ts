/**
 * Lossless remote streaming: everything a child writes arrives, byte-exact,
 * through Exec.run over our exec-server, however fast it writes.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"
import { listenLocal, remoteOverWebSocket } from "./support/servers.ts"
import * as WebSocketProxy from "./support/webSocketProxy.ts"

const MiB = 1024 * 1024

describe("remote streaming", () => {
  layer(
    Layer.mergeAll(
      Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(remoteOverWebSocket)),
      OutputSink.layerDiscard
    ),
    {
      excludeTestServices: true,
      timeout: "300 seconds"
    }
  )((it) => {
    it.effect(
      "returns all 256 MiB byte-exact with fullBuffer (checksum of what the child wrote)",
      () =>
        Effect.gen(function*() {
          // the child writes random bytes and, on stderr, the sha256 of exactly what it wrote
          const result = yield* Exec.run({
            command: ["bash", "-c", `head -c ${256 * MiB} /dev/urandom | tee >(sha256sum | cut -d' ' -f1 >&2)`],
            cwd: "/tmp",
            capture: "fullBuffer"
          })
          assert.strictEqual(result.exitCode, 0)
          assert.strictEqual(result.stdout.totalBytes, 256 * MiB)
          assert.strictEqual(result.stdout.bytes.length, 256 * MiB)
          assert.strictEqual(result.droppedByExecutor, 0)
          const received = createHash("sha256").update(result.stdout.bytes).digest("hex")
          assert.strictEqual(received, result.stderr.text.trim())
        }),
      // seconds alone; over two minutes on a machine at load 16
      300_000
    )
  })
})

describe("remote streaming as binary frames", () => {
  it.live("the client asks for them, and every chunk of the output crosses as one, none as JSON", () =>
    Effect.gen(function*() {
      const { url } = yield* listenLocal()
      const proxy = yield* WebSocketProxy.start(url)
      const result = yield* Exec.run({
        command: ["sh", "-c", "seq 1 100000; echo done >&2"],
        cwd: "/tmp",
        capture: "fullBuffer"
      }).pipe(Effect.provide(Layer.mergeAll(Environment.layerRemote({ url: proxy.url }), OutputSink.layerDiscard)))
      const expected = Array.from({ length: 100_000 }, (_, i) => `${i + 1}\n`).join("")
      assert.strictEqual(result.stdout.text, expected)
      assert.strictEqual(result.stderr.text, "done\n")
      const initialized = proxy.frames.find((f) => f.from === "client" && f.message.method === "initialized")
      assert.deepStrictEqual(initialized?.message.params, { binaryOutput: true })
      const fromServer = proxy.frames.filter((f) => f.from === "server")
      assert.isAbove(fromServer.filter((f) => f.binary).length, 0)
      assert.isFalse(fromServer.some((f) => f.message.method === "process/output"), "no output as JSON")
    }))
})
