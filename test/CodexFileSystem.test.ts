/**
 * The `FileSystem` conformance suite against the released Codex exec-server
 * (@openai/codex 0.169.0), through our remote file system: the same cases as
 * the local file system and our own server pass. Then the limits a Codex
 * server needs from a client: it takes no `maxBytes` (so a file's size is
 * looked at before it is read) and drops a connection over a frame larger
 * than 16 MiB without an answer (so such a write is refused before it is sent).
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as NodeFs from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startCodexServer } from "./support/codexServer.ts"
import { suite } from "./support/FileSystemContract.ts"
import { remoteEnvironment } from "./support/servers.ts"

suite("FileSystem: remote ↔ Codex exec-server 0.169.0", remoteEnvironment(startCodexServer))

describe("FileSystem: remote ↔ Codex exec-server 0.169.0, limits", () => {
  const MiB = 1024 * 1024

  layer(remoteEnvironment(startCodexServer, { maxFileBytes: 32 * MiB }), {
    excludeTestServices: true,
    timeout: "60 seconds"
  })((it) => {
    it.effect("refuses a read over its limit from the size, and a write Codex would drop, keeping the link", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => NodeFs.mkdtempSync(join(tmpdir(), "codex-fs-"))),
          (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
        )
        NodeFs.writeFileSync(join(dir, "big"), Buffer.alloc(32 * MiB + 1))
        const read = yield* Effect.flip(fs.readFile(join(dir, "big")))
        assert.strictEqual(read.reason._tag, "BadArgument")
        assert.include(read.message, `file is too large to read: limit is ${32 * MiB} bytes`)

        const write = yield* Effect.flip(fs.writeFile(join(dir, "new"), new Uint8Array(13 * MiB)))
        assert.strictEqual(write.reason._tag, "BadArgument")
        assert.match(write.message, /file is too large to write: limit is \d+ bytes/)
        assert.isFalse(NodeFs.existsSync(join(dir, "new")))

        // the link is still up, and a write that fits in a Codex frame goes through
        yield* fs.writeFile(join(dir, "fits"), new Uint8Array(8 * MiB).fill(7))
        assert.strictEqual(NodeFs.statSync(join(dir, "fits")).size, 8 * MiB)
        assert.strictEqual((yield* fs.readFile(join(dir, "fits"))).length, 8 * MiB)
      }))
  })
})
