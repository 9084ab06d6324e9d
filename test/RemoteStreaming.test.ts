/**
 * Lossless remote streaming: everything a child writes arrives, byte-exact,
 * through Exec.run over our exec-server, however fast it writes.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"

import { remoteOverWebSocket } from "./support/servers.ts"

const MiB = 1024 * 1024

describe("remote streaming", () => {
  layer(
    Layer.mergeAll(
      Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(remoteOverWebSocket)),
      OutputSink.layerDiscard
    ),
    {
      excludeTestServices: true,
      timeout: "120 seconds"
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
      120_000
    )
  })
})
