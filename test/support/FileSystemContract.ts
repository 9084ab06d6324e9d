/**
 * The conformance suite of an environment's `FileSystem` (Effect's own
 * interface): every environment runs it unchanged, with the environment's
 * executor beside it — Node's file system here, ours over a loopback
 * WebSocket, and the real Codex exec-server through our remote file system.
 * All of them run on this machine, so what the file system does is checked on
 * disk with `node:fs` too.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PlatformError from "effect/PlatformError"
import * as Stream from "effect/Stream"
import * as NodeFs from "node:fs"
import { join } from "node:path"
import * as Environment from "../../src/Environment.ts"
import * as Exec from "../../src/Exec.ts"
import * as OutputSink from "../../src/OutputSink.ts"

/** The tag of a file-system failure: `NotFound`, `AlreadyExists`, … or `BadArgument`. */
const failureOf = <A, R>(effect: Effect.Effect<A, PlatformError.PlatformError, R>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.isTrue(PlatformError.isPlatformError(error), `not a PlatformError: ${String(error)}`)
    return error.reason._tag
  })

/** A fresh scratch directory made by the file system under test, removed with the test's scope. */
const scratch = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "fs-contract-" }))

const bytes = (text: string) => new TextEncoder().encode(text)

/** Registers the suite for the file system (and environment) provided by `environmentLayer`. */
export const suite = (
  name: string,
  environmentLayer: Layer.Layer<FileSystem.FileSystem | Environment.Environment, unknown>
) =>
  describe(name, () => {
    layer(environmentLayer, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
      it.effect("writes a file and reads back every byte value", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* scratch
          const data = Uint8Array.from({ length: 1024 }, (_, i) => i % 256)
          yield* fs.writeFile(join(dir, "all-bytes.bin"), data)
          assert.deepStrictEqual(yield* fs.readFile(join(dir, "all-bytes.bin")), new Uint8Array(data))
          assert.deepStrictEqual(new Uint8Array(NodeFs.readFileSync(join(dir, "all-bytes.bin"))), data)
        }))

      it.effect("writes and reads UTF-8 text, truncating what was there", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const path = join(yield* scratch, "text.txt")
          yield* fs.writeFileString(path, "a much longer first version of the file\n")
          yield* fs.writeFileString(path, "é ✓ 日本\n")
          assert.strictEqual(yield* fs.readFileString(path), "é ✓ 日本\n")
          assert.strictEqual(NodeFs.readFileSync(path, "utf8"), "é ✓ 日本\n")
          yield* fs.writeFile(path, new Uint8Array(0))
          assert.strictEqual(NodeFs.statSync(path).size, 0)
        }))

      it.effect("tells a missing file: NotFound on read, exists false until it is written", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const path = join(yield* scratch, "missing.txt")
          assert.strictEqual(yield* failureOf(fs.readFile(path)), "NotFound")
          assert.strictEqual(yield* failureOf(fs.stat(path)), "NotFound")
          assert.isFalse(yield* fs.exists(path))
          yield* fs.writeFileString(path, "here")
          assert.isTrue(yield* fs.exists(path))
        }))

      it.effect("refuses a write into a missing directory until makeDirectory creates it", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* scratch
          const path = join(dir, "a", "b", "c.txt")
          assert.strictEqual(yield* failureOf(fs.writeFileString(path, "x")), "NotFound")
          assert.strictEqual(yield* failureOf(fs.makeDirectory(join(dir, "a", "b"))), "NotFound")
          yield* fs.makeDirectory(join(dir, "a", "b"), { recursive: true })
          yield* fs.writeFileString(path, "x")
          assert.strictEqual(NodeFs.readFileSync(path, "utf8"), "x")
        }))

      it.effect("makes a directory once: AlreadyExists without recursive, nothing to do with it", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const path = join(yield* scratch, "once")
          yield* fs.makeDirectory(path)
          assert.isTrue(NodeFs.statSync(path).isDirectory())
          assert.strictEqual(yield* failureOf(fs.makeDirectory(path)), "AlreadyExists")
          yield* fs.makeDirectory(path, { recursive: true })
        }))

      it.effect("stats a file, a directory and a link (lstat), with size and modification time", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* scratch
          const file = join(dir, "sized.txt")
          const before = Date.now() - 2_000
          yield* fs.writeFileString(file, "12345")
          NodeFs.symlinkSync(file, join(dir, "link"))
          const info = yield* fs.stat(file)
          assert.strictEqual(info.type, "File")
          assert.strictEqual(Number(info.size), 5)
          const mtime = Option.getOrThrow(info.mtime).getTime()
          assert.isTrue(mtime >= before && mtime <= Date.now() + 2_000, `mtime ${mtime}`)
          assert.strictEqual((yield* fs.stat(dir)).type, "Directory")
          assert.strictEqual((yield* fs.stat(join(dir, "link"))).type, "File")
          assert.strictEqual((yield* fs.lstat(join(dir, "link"))).type, "SymbolicLink")
        }))

      it.effect("lists a directory, its entries' types, and (recursively) what is below", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* scratch
          NodeFs.mkdirSync(join(dir, "sub", "deeper"), { recursive: true })
          NodeFs.writeFileSync(join(dir, "top.txt"), "t")
          NodeFs.writeFileSync(join(dir, "sub", "deeper", "leaf.txt"), "l")
          assert.deepStrictEqual((yield* fs.readDirectory(dir)).toSorted(), ["sub", "top.txt"])
          assert.deepStrictEqual(
            (yield* fs.readDirectoryEntries(dir)).map((entry) => [entry.name, entry.type]).toSorted(),
            [["sub", "Directory"], ["top.txt", "File"]]
          )
          assert.deepStrictEqual(
            (yield* fs.readDirectory(dir, { recursive: true })).toSorted(),
            ["sub", "sub/deeper", "sub/deeper/leaf.txt", "top.txt"]
          )
          assert.strictEqual(yield* failureOf(fs.readDirectory(join(dir, "nope"))), "NotFound")
        }))

      it.effect("removes a file, a tree with recursive, and a missing path only with force", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* scratch
          NodeFs.mkdirSync(join(dir, "tree", "inner"), { recursive: true })
          NodeFs.writeFileSync(join(dir, "tree", "inner", "f"), "f")
          NodeFs.writeFileSync(join(dir, "file"), "f")
          yield* fs.remove(join(dir, "file"))
          assert.isFalse(NodeFs.existsSync(join(dir, "file")))
          yield* fs.remove(join(dir, "tree"), { recursive: true })
          assert.isFalse(NodeFs.existsSync(join(dir, "tree")))
          assert.strictEqual(yield* failureOf(fs.remove(join(dir, "gone"))), "NotFound")
          yield* fs.remove(join(dir, "gone"), { force: true })
        }))

      it.effect("copies a file over another, and a directory tree to a new place", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* scratch
          NodeFs.writeFileSync(join(dir, "from.txt"), "source")
          NodeFs.writeFileSync(join(dir, "to.txt"), "old contents")
          yield* fs.copyFile(join(dir, "from.txt"), join(dir, "to.txt"))
          assert.strictEqual(NodeFs.readFileSync(join(dir, "to.txt"), "utf8"), "source")
          NodeFs.mkdirSync(join(dir, "tree", "inner"), { recursive: true })
          NodeFs.writeFileSync(join(dir, "tree", "inner", "leaf.txt"), "leaf")
          yield* fs.copy(join(dir, "tree"), join(dir, "copy"))
          assert.strictEqual(NodeFs.readFileSync(join(dir, "copy", "inner", "leaf.txt"), "utf8"), "leaf")
          assert.strictEqual(NodeFs.readFileSync(join(dir, "tree", "inner", "leaf.txt"), "utf8"), "leaf")
          assert.strictEqual(yield* failureOf(fs.copyFile(join(dir, "nope"), join(dir, "x"))), "NotFound")
        }))

      it.effect("resolves links and `..` in realPath", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = NodeFs.realpathSync(yield* scratch)
          NodeFs.mkdirSync(join(dir, "real"))
          NodeFs.symlinkSync(join(dir, "real"), join(dir, "alias"))
          assert.strictEqual(yield* fs.realPath(`${dir}/alias/../alias`), join(dir, "real"))
        }))

      it.effect("makes temporary directories and files, and removes scoped ones with the scope", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* Effect.scoped(Effect.gen(function*() {
            const dir = yield* fs.makeTempDirectoryScoped({ prefix: "scoped-" })
            assert.isTrue(NodeFs.statSync(dir).isDirectory())
            assert.match(dir, /\/scoped-[^/]+$/)
            return dir
          }))
          assert.isFalse(NodeFs.existsSync(dir))
          const file = yield* Effect.scoped(Effect.gen(function*() {
            const file = yield* fs.makeTempFileScoped({ suffix: ".json" })
            assert.strictEqual(NodeFs.readFileSync(file, "utf8"), "")
            assert.isTrue(file.endsWith(".json"))
            return file
          }))
          assert.isFalse(NodeFs.existsSync(file))
        }))

      it.effect("streams a file in chunks, from an offset, and writes one from a stream (sink)", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const path = join(yield* scratch, "streamed.txt")
          yield* Stream.make("abc", "def", "ghij").pipe(Stream.map(bytes), Stream.run(fs.sink(path)))
          assert.strictEqual(NodeFs.readFileSync(path, "utf8"), "abcdefghij")
          const chunks = yield* Stream.runCollect(fs.stream(path, { chunkSize: 4, offset: 1, bytesToRead: 7 }))
          const text = chunks.map((chunk) => new TextDecoder().decode(chunk))
          assert.strictEqual(text.join(""), "bcdefgh")
          assert.isTrue(text.every((piece) => piece.length <= 4))
        }))

      it.effect("resolves a relative path against the environment's working directory", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const environment = yield* Environment.Environment
          const cwd = yield* environment.executor.defaultCwd
          const name = `fs-contract-relative-${crypto.randomUUID()}.txt`
          yield* Effect.acquireRelease(
            fs.writeFileString(name, "relative"),
            () => Effect.sync(() => NodeFs.rmSync(join(cwd, name), { force: true }))
          )
          assert.strictEqual(NodeFs.readFileSync(join(cwd, name), "utf8"), "relative")
          assert.strictEqual(yield* fs.readFileString(`./${name}`), "relative")
        }))

      it.effect("shares its files with the environment's commands, both ways", () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* scratch
          yield* fs.writeFileString(join(dir, "in.txt"), "from the file system")
          const run = (script: string) =>
            Exec.run({ command: ["sh", "-c", script], cwd: dir }).pipe(Effect.provide(OutputSink.layerDiscard))
          assert.strictEqual((yield* run("cat in.txt")).stdout.text, "from the file system")
          yield* run("printf 'from a command' > out.txt")
          assert.strictEqual(yield* fs.readFileString(join(dir, "out.txt")), "from a command")
        }))
    })
  })
