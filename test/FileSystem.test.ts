/**
 * The `FileSystem` of every environment, through one conformance suite: Node's
 * (`Environment.layerLocal`) and ours over a loopback WebSocket (the remote
 * file system talking to our exec-server's `fs/*` methods). The Codex
 * exec-server runs it in `CodexFileSystem.test.ts`. Then what only the remote
 * file system does: refusing what the protocol cannot do, and its limits.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import type * as PlatformError from "effect/PlatformError"
import * as Stream from "effect/Stream"
import * as NodeFs from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Environment from "../src/Environment.ts"
import { suite } from "./support/FileSystemContract.ts"
import { environmentOverWebSocket } from "./support/servers.ts"

suite("FileSystem: local (Environment.layerLocal)", Environment.layerLocal)
suite("FileSystem: remote ↔ ExecServer over WebSocket", environmentOverWebSocket())

/** The tag of a file-system failure, and its description. */
const failure = <A, R>(effect: Effect.Effect<A, PlatformError.PlatformError, R>) =>
  Effect.map(Effect.flip(effect), (error) => ({ tag: error.reason._tag, message: error.message }))

const scratchDir = Effect.acquireRelease(
  Effect.sync(() => NodeFs.mkdtempSync(join(tmpdir(), "remote-fs-"))),
  (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
)

describe("FileSystem: remote, what the protocol cannot do", () => {
  layer(environmentOverWebSocket(), { excludeTestServices: true })((it) => {
    it.effect("refuses with BadArgument what it could only approximate, and touches nothing", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* scratchDir
        const file = join(dir, "f.txt")
        NodeFs.writeFileSync(file, "original")
        const refusals = [
          fs.rename(file, join(dir, "g.txt")),
          fs.chmod(file, 0o600),
          fs.chown(file, 0, 0),
          fs.symlink(file, join(dir, "link")),
          fs.link(file, join(dir, "hard")),
          fs.readLink(file),
          fs.truncate(file, 1),
          fs.utimes(file, 0, 0),
          Effect.scoped(fs.open(file)),
          fs.writeFileString(file, "appended", { flag: "a" }),
          fs.writeFileString(file, "moded", { mode: 0o600 }),
          fs.makeDirectory(join(dir, "d"), { mode: 0o700 }),
          fs.access(file, { readable: true }),
          fs.copy(file, join(dir, "copy"), { preserveTimestamps: true }),
          Stream.runDrain(fs.watch(dir))
        ]
        for (const refusal of refusals) assert.strictEqual((yield* failure(refusal)).tag, "BadArgument")
        assert.deepStrictEqual(NodeFs.readdirSync(dir), ["f.txt"])
        assert.strictEqual(NodeFs.readFileSync(file, "utf8"), "original")
      }))

    it.effect("copies onto an existing path only with overwrite", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* scratchDir
        NodeFs.writeFileSync(join(dir, "from"), "new")
        NodeFs.writeFileSync(join(dir, "to"), "old")
        assert.strictEqual((yield* failure(fs.copy(join(dir, "from"), join(dir, "to")))).tag, "AlreadyExists")
        assert.strictEqual(NodeFs.readFileSync(join(dir, "to"), "utf8"), "old")
        yield* fs.copy(join(dir, "from"), join(dir, "to"), { overwrite: true })
        assert.strictEqual(NodeFs.readFileSync(join(dir, "to"), "utf8"), "new")
      }))
  })
})

describe("FileSystem: remote limits", () => {
  const limit = 1024

  layer(environmentOverWebSocket({}, { maxFileBytes: limit }), { excludeTestServices: true })((it) => {
    it.effect("refuses, itself, files over its own maxFileBytes: reads, writes and sinks", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* scratchDir
        NodeFs.writeFileSync(join(dir, "big"), Buffer.alloc(limit + 1))
        const tooLarge = (operation: string) => ({
          tag: "BadArgument",
          message: `FileSystem.${operation === "read" ? "readFile" : operation}: file is too large to ${
            operation === "read" ? "read" : "write"
          }: limit is ${limit} bytes`
        })
        assert.deepStrictEqual(yield* failure(fs.readFile(join(dir, "big"))), tooLarge("read"))
        assert.deepStrictEqual(
          yield* failure(fs.writeFile(join(dir, "new"), new Uint8Array(limit + 1))),
          tooLarge("writeFile")
        )
        assert.deepStrictEqual(
          yield* failure(Stream.run(Stream.make(new Uint8Array(limit), new Uint8Array(1)), fs.sink(join(dir, "sunk")))),
          tooLarge("sink")
        )
        assert.deepStrictEqual(NodeFs.readdirSync(dir), ["big"])
        yield* fs.writeFile(join(dir, "exact"), new Uint8Array(limit))
        assert.strictEqual((yield* fs.readFile(join(dir, "exact"))).length, limit)
      }))
  })

  layer(environmentOverWebSocket({ maxFileBytes: limit }), { excludeTestServices: true })((it) => {
    it.effect("reports the server's own limit as a BadArgument naming it", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* scratchDir
        NodeFs.writeFileSync(join(dir, "big"), Buffer.alloc(limit + 1))
        assert.deepStrictEqual(yield* failure(fs.readFile(join(dir, "big"))), {
          tag: "BadArgument",
          message: `FileSystem.readFile: file is too large to read: limit is ${limit} bytes`
        })
        assert.strictEqual(
          (yield* failure(fs.writeFile(join(dir, "new"), new Uint8Array(limit + 1)))).tag,
          "BadArgument"
        )
        assert.isFalse(NodeFs.existsSync(join(dir, "new")))
      }))
  })
})
