/**
 * The server's host file system on its own, for a limit a wire test cannot
 * reach cheaply: the size of a listing.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { HostFileSystem } from "../src/internal/fs/hostFileSystem.ts"

const scratch = Effect.acquireRelease(
  Effect.sync(() => NodeFs.mkdtempSync(join(tmpdir(), "host-fs-"))),
  (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
)

describe("HostFileSystem", () => {
  it.effect("refuses to list a directory with more than maxDirectoryEntries entries", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      for (const name of ["a", "b", "c"]) NodeFs.writeFileSync(join(dir, name), "")
      const files = new HostFileSystem({ maxDirectoryEntries: 3 })
      assert.strictEqual((yield* files.readDirectory(dir)).entries.length, 3)
      NodeFs.writeFileSync(join(dir, "d"), "")
      const error = yield* Effect.flip(files.readDirectory(dir))
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.include(error.message, "more than 3 entries")
    }))

  it.effect("reads a file that holds more than the in-flight budget's share, up to maxFileBytes", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      NodeFs.writeFileSync(join(dir, "f"), Buffer.alloc(5000, 1))
      // a budget smaller than the file is taken whole, not waited for forever
      const files = new HostFileSystem({ maxBytesInFlight: 1000, maxFileBytes: 10_000 })
      assert.strictEqual((yield* files.readFile(join(dir, "f"))).length, 5000)
      yield* files.writeFile(join(dir, "g"), Buffer.alloc(5000, 2).toString("base64"))
      assert.strictEqual(NodeFs.statSync(join(dir, "g")).size, 5000)
    }))
})
