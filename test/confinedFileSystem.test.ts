/**
 * The confined file system on its own, without a server: each operation
 * under a policy, against real files, directories and links in a scratch
 * directory outside /tmp, with the typed error a refused request gets and a
 * look at the disk afterwards. The wire tests (`ExecServer.fs.test.ts`,
 * `FileSystemSandbox.test.ts`) compare the answers with Codex's; these reach
 * the paths they do not: link chains and loops, relative links, trees past
 * their depth, `/` itself, descriptors of deleted files.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as NodeFs from "node:fs"
import { join } from "node:path"
import type { ExecutorError } from "../src/Executor.ts"
import { ConfinedFileSystem } from "../src/internal/fs/confinedFileSystem.ts"
import { HostFileSystem } from "../src/internal/fs/hostFileSystem.ts"
import { resolvePolicy } from "../src/internal/sandbox/policy.ts"
import { openDescriptors, openedSince } from "./support/descriptors.ts"
import { entry, restricted, scratchDir } from "./support/sandbox.ts"

/**
 * A scratch layout: `ws` (written), `ws/ro` (read only), `ws/hid` (denied:
 * Permission denied), `out` beside it (read only where `/` is readable, not
 * there at all where it is not), each with a file `f`.
 */
const layout = Effect.acquireRelease(
  Effect.sync(() => {
    const before = openDescriptors()
    const dir = scratchDir("confined")
    const ws = join(dir.path, "ws")
    const out = join(dir.path, "out")
    for (const directory of [ws, join(ws, "ro"), join(ws, "hid"), out]) {
      NodeFs.mkdirSync(directory, { recursive: true })
      NodeFs.writeFileSync(join(directory, "f"), `${directory}\n`)
    }
    return { before, dir, base: dir.path, ws, out }
  }),
  ({ before, dir }) =>
    Effect.sync(() => {
      // every operation, refused or not, let go of what it held
      // of files and directories: a path, not a pipe or a socket
      const held = openedSince(before).filter((descriptor) => descriptor.includes(" → /"))
      dir[Symbol.dispose]()
      assert.deepStrictEqual(held, [], "descriptors left open")
    })
)

/**
 * The confined file system of a policy: `/` readable (`rootRead`) or not, `ws`
 * writable, `ws/ro` read, `ws/hid` and `ws/secret` (missing unless a test makes
 * it) denied.
 */
const confined = (ws: string, rootRead: boolean) =>
  Effect.map(
    Effect.orDie(resolvePolicy(
      restricted([
        ...(rootRead ? [entry("root", "read")] : []),
        entry(ws, "write"),
        entry(join(ws, "ro"), "read"),
        entry(join(ws, "hid"), "deny"),
        // denied, and made by the tests that need it
        entry(join(ws, "secret"), "deny")
      ]),
      { tmpdir: undefined }
    )),
    (policy) => new ConfinedFileSystem(new HostFileSystem(), policy)
  )

/** The OS error code of a refusal (`PathNotFound` ENOENT, `PathAccessDenied` EACCES), or an invalid request's words. */
const codeOf = (error: ExecutorError): string => {
  const reason = error.reason
  switch (reason._tag) {
    case "PathNotFound":
      return "ENOENT"
    case "PathAccessDenied":
      return reason.description === "Permission denied (os error 13)" ? "EACCES" : reason.description
    case "FileSystemFailure":
      return reason.code
    case "InvalidRequest":
      return `invalid: ${reason.description}`
    default:
      return reason._tag
  }
}

/** The code `effect` fails with; "succeeded" when it does not fail. */
const refusal = <A>(effect: Effect.Effect<A, ExecutorError>) =>
  Effect.match(effect, { onFailure: codeOf, onSuccess: () => "succeeded" })

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString("utf8")
const base64 = (data: string) => Buffer.from(data).toString("base64")

/** A chain of `count` links in `dir`: `link0` → `link1` → … → `target` (relative names when `relative`). */
const chain = (dir: string, count: number, target: string, relative: boolean) => {
  for (let i = 0; i < count; i++) {
    const next = i === count - 1 ? target : `link${i + 1}`
    NodeFs.symlinkSync(relative || next === target ? next : join(dir, next), join(dir, `link${i}`))
  }
}

describe("ConfinedFileSystem: writeFile", () => {
  it.effect("follows links to their end, relative ones from the link's directory, each step checked", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.mkdirSync(join(ws, "sub"))
      // a relative link resolves from its own directory, not the process's
      NodeFs.symlinkSync("../new", join(ws, "sub", "up"))
      yield* files.writeFile(join(ws, "sub", "up"), base64("up"))
      assert.strictEqual(NodeFs.readFileSync(join(ws, "new"), "utf8"), "up")
      // three links in a row, the last one to a name that does not exist yet
      chain(ws, 3, "made", true)
      yield* files.writeFile(join(ws, "link0"), base64("chained"))
      assert.strictEqual(NodeFs.readFileSync(join(ws, "made"), "utf8"), "chained")
      // a relative link that leaves the workspace: read only there
      NodeFs.symlinkSync("../out/f", join(ws, "toOut"))
      assert.strictEqual(yield* refusal(files.writeFile(join(ws, "toOut"), base64("x"))), "EROFS")
      assert.strictEqual(NodeFs.readFileSync(join(out, "f"), "utf8"), `${out}\n`)
    }))

  it.effect("gives up after 40 links with ELOOP, as the kernel does, and follows 40", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.mkdirSync(join(ws, "forty"))
      chain(join(ws, "forty"), 40, "end", false)
      yield* files.writeFile(join(ws, "forty", "link0"), base64("40"))
      assert.strictEqual(NodeFs.readFileSync(join(ws, "forty", "end"), "utf8"), "40")
      NodeFs.mkdirSync(join(ws, "fortyOne"))
      chain(join(ws, "fortyOne"), 41, "end", false)
      assert.strictEqual(yield* refusal(files.writeFile(join(ws, "fortyOne", "link0"), base64("x"))), "ELOOP")
      assert.isFalse(NodeFs.existsSync(join(ws, "fortyOne", "end")))
      NodeFs.symlinkSync("loop", join(ws, "loop"))
      assert.strictEqual(yield* refusal(files.writeFile(join(ws, "loop"), base64("x"))), "ELOOP")
    }))

  it.effect("refuses a link whose target names a directory (a trailing /, ., ..) with EISDIR, read-only or not", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.mkdirSync(join(ws, "ro", "sub"))
      // a directory is EISDIR before the file system's being read-only, as for open(2)
      const targets = [["slash", "ro/"], ["dot", "ro/."], ["dots", "ro/sub/.."], ["wsDots", "."], [
        "root",
        "/"
      ]] as const
      for (const [name, target] of targets) {
        NodeFs.symlinkSync(target, join(ws, name))
        assert.strictEqual(yield* refusal(files.writeFile(join(ws, name), base64("x"))), "EISDIR", name)
      }
      assert.strictEqual(yield* refusal(files.writeFile("/", base64("x"))), "EISDIR")
      assert.deepStrictEqual(NodeFs.readdirSync(join(ws, "ro")).sort(), ["f", "sub"])
    }))

  it.effect("refuses read-only and hidden places with EROFS, EACCES and ENOENT, writing nothing", () =>
    Effect.gen(function*() {
      const { base, out, ws } = yield* layout
      const readable = yield* confined(ws, true)
      const hidden = yield* confined(ws, false)
      assert.strictEqual(yield* refusal(readable.writeFile(join(ws, "ro", "f"), base64("x"))), "EROFS")
      assert.strictEqual(yield* refusal(readable.writeFile(join(ws, "hid", "f"), base64("x"))), "EACCES")
      assert.strictEqual(yield* refusal(readable.writeFile(join(ws, "hid"), base64("x"))), "EACCES")
      assert.strictEqual(yield* refusal(readable.writeFile(join(out, "g"), base64("x"))), "EROFS")
      assert.strictEqual(yield* refusal(hidden.writeFile(join(out, "g"), base64("x"))), "ENOENT")
      assert.strictEqual(yield* refusal(hidden.writeFile(join(base, "g"), base64("x"))), "ENOENT")
      // through a link in the workspace, the target's place decides
      NodeFs.symlinkSync(join(ws, "hid", "g"), join(ws, "toHid"))
      NodeFs.symlinkSync(join(out, "g"), join(ws, "toOut"))
      assert.strictEqual(yield* refusal(readable.writeFile(join(ws, "toHid"), base64("x"))), "EACCES")
      assert.strictEqual(yield* refusal(hidden.writeFile(join(ws, "toOut"), base64("x"))), "ENOENT")
      assert.strictEqual(NodeFs.readFileSync(join(ws, "ro", "f"), "utf8"), `${join(ws, "ro")}\n`)
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
      assert.deepStrictEqual(NodeFs.readdirSync(join(ws, "hid")), ["f"])
      yield* hidden.writeFile(join(ws, "g"), base64("g"))
      assert.strictEqual(NodeFs.readFileSync(join(ws, "g"), "utf8"), "g")
    }))
})

describe("ConfinedFileSystem: reads", () => {
  it.effect("reads, lists, describes and resolves what the policy shows, and hides the rest", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const readable = yield* confined(ws, true)
      const hidden = yield* confined(ws, false)
      assert.strictEqual(text(yield* readable.readFile(join(out, "f"))), `${out}\n`)
      assert.strictEqual(yield* refusal(hidden.readFile(join(out, "f"))), "ENOENT")
      assert.strictEqual(yield* refusal(readable.readFile(join(ws, "hid", "f"))), "EACCES")
      // what is below a hidden directory is that directory's denial, whether or not it exists
      assert.strictEqual(yield* refusal(readable.readFile(join(ws, "hid", "missing"))), "EACCES")
      assert.strictEqual(yield* refusal(readable.getMetadata(join(ws, "hid", "missing", "deeper"))), "EACCES")
      assert.strictEqual(yield* refusal(readable.readFile(join(ws, "missing"))), "ENOENT")
      assert.strictEqual(yield* refusal(hidden.readFile(join(out, "missing"))), "ENOENT")
      assert.strictEqual(yield* readable.canonicalize(join(ws, "ro", "..", "f")), join(ws, "f"))
      NodeFs.symlinkSync(join(ws, "ro"), join(ws, "toRo"))
      assert.strictEqual(yield* hidden.canonicalize(join(ws, "toRo")), join(ws, "ro"))
      assert.strictEqual(yield* refusal(readable.canonicalize(join(ws, "hid"))), "EACCES")
      assert.strictEqual(yield* refusal(hidden.canonicalize(out)), "ENOENT")
    }))

  it.effect("gives metadata through a link, isSymlink of the link itself; of / too", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.symlinkSync(join(ws, "ro"), join(ws, "toRo"))
      const throughLink = yield* files.getMetadata(join(ws, "toRo"))
      assert.deepStrictEqual([throughLink.isDirectory, throughLink.isFile, throughLink.isSymlink], [true, false, true])
      const file = yield* files.getMetadata(join(ws, "f"))
      assert.deepStrictEqual([file.isDirectory, file.isFile, file.isSymlink, file.size], [
        false,
        true,
        false,
        `${ws}\n`.length
      ])
      const root = yield* files.getMetadata("/")
      assert.deepStrictEqual([root.isDirectory, root.isSymlink], [true, false])
      // a link that is itself hidden is not described, wherever it leads
      NodeFs.symlinkSync(join(ws, "f"), join(ws, "hid", "back"))
      assert.strictEqual(yield* refusal(files.getMetadata(join(ws, "hid", "back"))), "EACCES")
      const hidden = yield* confined(ws, false)
      assert.strictEqual(yield* refusal(hidden.getMetadata("/")), "ENOENT")
    }))

  it.effect("takes a link whose target ends in / or /. as naming a directory: a file there is ENOTDIR", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      // as the kernel does (open(2) and stat(2) of these links: "Not a directory")
      for (const target of ["f/", "f/.", `${ws}/f/`, `${ws}/f/.`]) {
        const link = join(ws, `to${target.length}`)
        NodeFs.symlinkSync(target, link)
        assert.strictEqual(yield* refusal(files.readFile(link)), "ENOTDIR", target)
        assert.strictEqual(yield* refusal(files.getMetadata(link)), "ENOTDIR", target)
        assert.strictEqual(yield* refusal(files.canonicalize(link)), "ENOTDIR", target)
        NodeFs.unlinkSync(link)
      }
      // a directory there is reached, listed, described as one
      for (const target of ["ro/", "ro/."]) {
        const link = join(ws, `to${target.length}`)
        NodeFs.symlinkSync(target, link)
        assert.strictEqual(yield* files.canonicalize(link), join(ws, "ro"), target)
        assert.deepStrictEqual((yield* files.readDirectory(link)).entries.map((entry) => entry.fileName), ["f"])
        assert.isTrue((yield* files.getMetadata(link)).isDirectory, target)
        assert.strictEqual(yield* refusal(files.readFile(link)), `invalid: path \`${link}\` is not a file`, target)
        NodeFs.unlinkSync(link)
      }
    }))

  it.effect("lists a directory with links typed through them, leaving out those that lead where it cannot see", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const hidden = yield* confined(ws, false)
      NodeFs.symlinkSync(join(ws, "ro"), join(ws, "toRo"))
      NodeFs.symlinkSync(join(ws, "hid"), join(ws, "toHid"))
      NodeFs.symlinkSync(out, join(ws, "toOut"))
      NodeFs.symlinkSync(join(ws, "nowhere"), join(ws, "dangling"))
      const listed = yield* hidden.readDirectory(ws)
      const entries = Object.fromEntries(
        listed.entries.map((entry) => [entry.fileName, [entry.isDirectory, entry.isFile]])
      )
      assert.deepStrictEqual(entries, {
        f: [false, true],
        ro: [true, false],
        hid: [true, false],
        toRo: [true, false]
      })
      assert.strictEqual(yield* refusal(hidden.readDirectory(join(ws, "hid"))), "EACCES")
      assert.strictEqual(yield* refusal(hidden.readDirectory(out)), "ENOENT")
      assert.strictEqual(yield* refusal(hidden.readDirectory(join(ws, "f"))), "ENOTDIR")
    }))
})

describe("ConfinedFileSystem: createDirectory", () => {
  it.effect("makes parents through directories it may pass, refusing hidden ones and files in the way", () =>
    Effect.gen(function*() {
      const { base, out, ws } = yield* layout
      const hidden = yield* confined(ws, false)
      yield* hidden.createDirectory(join(ws, "a", "b", "c"), true)
      assert.isTrue(NodeFs.statSync(join(ws, "a", "b", "c")).isDirectory())
      // existing: fine when recursive, EEXIST when not; a file there is EEXIST either way
      yield* hidden.createDirectory(join(ws, "a", "b"), true)
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(ws, "a"), false)), "EEXIST")
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(ws, "f"), true)), "EEXIST")
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(ws, "f", "x"), true)), "ENOTDIR")
      // through a hidden directory: its denial; in a place never mounted: not there
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(ws, "hid", "x", "y"), true)), "EACCES")
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(ws, "hid"), true)), "EACCES")
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(out, "x"), true)), "ENOENT")
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(base, "new", "x"), true)), "ENOENT")
      assert.strictEqual(yield* refusal(hidden.createDirectory(join(out, "x"), false)), "ENOENT")
      // an existing directory it cannot see is not there
      assert.strictEqual(yield* refusal(hidden.createDirectory(out, true)), "ENOENT")
      const readable = yield* confined(ws, true)
      assert.strictEqual(yield* refusal(readable.createDirectory(join(out, "x"), true)), "EROFS")
      assert.strictEqual(yield* refusal(readable.createDirectory(join(ws, "ro", "x"), false)), "EROFS")
      assert.strictEqual(yield* refusal(readable.createDirectory(join(ws, "ro", "f"), false)), "EEXIST")
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
      assert.deepStrictEqual(NodeFs.readdirSync(join(ws, "hid")), ["f"])
      assert.isFalse(NodeFs.existsSync(join(base, "new")))
      // `/` exists; recursive, it is fine where it is visible
      yield* readable.createDirectory("/", true)
      assert.strictEqual(yield* refusal(hidden.createDirectory("/", true)), "ENOENT")
      assert.strictEqual(yield* refusal(readable.createDirectory("/", false)), "EEXIST")
    }))

  it.effect("makes a directory at the end of a link chain in the workspace, never through a dangling link", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.mkdirSync(join(ws, "real"))
      NodeFs.symlinkSync("real", join(ws, "toReal"))
      yield* files.createDirectory(join(ws, "toReal", "x", "y"), true)
      assert.isTrue(NodeFs.statSync(join(ws, "real", "x", "y")).isDirectory())
      NodeFs.symlinkSync(join(ws, "gone"), join(ws, "dangling"))
      assert.strictEqual(yield* refusal(files.createDirectory(join(ws, "dangling"), true)), "ENOENT")
      assert.strictEqual(yield* refusal(files.createDirectory(join(ws, "dangling", "x"), true)), "ENOENT")
      assert.isFalse(NodeFs.existsSync(join(ws, "gone")))
      NodeFs.symlinkSync(out, join(ws, "toOut"))
      assert.strictEqual(yield* refusal(files.createDirectory(join(ws, "toOut", "x"), true)), "EROFS")
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
    }))
})

describe("ConfinedFileSystem: remove", () => {
  it.effect("removes a file, a link (never its target), an empty directory and a tree; refuses the rest", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.symlinkSync(out, join(ws, "toOut"))
      yield* files.remove(join(ws, "toOut"), false, false)
      assert.isFalse(NodeFs.existsSync(join(ws, "toOut")))
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
      yield* files.remove(join(ws, "f"), false, false)
      assert.isFalse(NodeFs.existsSync(join(ws, "f")))
      NodeFs.mkdirSync(join(ws, "empty"))
      yield* files.remove(join(ws, "empty"), false, false)
      assert.isFalse(NodeFs.existsSync(join(ws, "empty")))
      NodeFs.mkdirSync(join(ws, "tree", "sub"), { recursive: true })
      NodeFs.writeFileSync(join(ws, "tree", "sub", "f"), "f")
      NodeFs.symlinkSync(out, join(ws, "tree", "sub", "out"))
      assert.strictEqual(yield* refusal(files.remove(join(ws, "tree"), false, false)), "ENOTEMPTY")
      yield* files.remove(join(ws, "tree"), true, false)
      assert.isFalse(NodeFs.existsSync(join(ws, "tree")))
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
      // refused: outside, read only, hidden, a tree holding any of those
      assert.strictEqual(yield* refusal(files.remove(join(out, "f"), false, false)), "EROFS")
      assert.strictEqual(yield* refusal(files.remove(join(ws, "ro", "f"), false, false)), "EROFS")
      assert.strictEqual(yield* refusal(files.remove(join(ws, "hid", "f"), false, false)), "EACCES")
      NodeFs.mkdirSync(join(ws, "ro", "empty"))
      assert.strictEqual(yield* refusal(files.remove(join(ws, "ro", "empty"), false, false)), "EROFS")
      assert.strictEqual(yield* refusal(files.remove(join(ws, "ro"), true, true)), "EROFS")
      assert.strictEqual(yield* refusal(files.remove(out, true, true)), "EROFS")
      assert.strictEqual(yield* refusal(files.remove(ws, true, true)), "EROFS")
      assert.strictEqual(yield* refusal(files.remove("/", true, true)), "EBUSY")
      assert.deepStrictEqual(NodeFs.readdirSync(ws).sort(), ["hid", "ro"])
      assert.deepStrictEqual(NodeFs.readdirSync(join(ws, "ro")).sort(), ["empty", "f"])
      const hidden = yield* confined(ws, false)
      // where nothing is mounted, the file is not there: an error without force, nothing with it
      assert.strictEqual(yield* refusal(hidden.remove(join(out, "f"), false, false)), "ENOENT")
      yield* hidden.remove(join(out, "f"), false, true)
      assert.strictEqual(yield* refusal(hidden.remove(join(ws, "hid"), true, true)), "EACCES")
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
    }))

  it.effect("ignores a missing path only with force, its parent missing too", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      assert.strictEqual(yield* refusal(files.remove(join(ws, "missing"), false, false)), "ENOENT")
      assert.strictEqual(yield* refusal(files.remove(join(ws, "missing", "x"), false, false)), "ENOENT")
      yield* files.remove(join(ws, "missing"), false, true)
      yield* files.remove(join(ws, "missing", "x"), true, true)
      // force hides no other refusal
      assert.strictEqual(yield* refusal(files.remove(join(ws, "f", "x"), false, true)), "ENOTDIR")
    }))

  it.effect("refuses a tree deeper than maxTreeDepth, removing only what it reached", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      const deep = (levels: number) => join(ws, ...Array.from({ length: levels }, () => "d"))
      NodeFs.mkdirSync(deep(258), { recursive: true })
      NodeFs.writeFileSync(join(deep(258), "f"), "")
      assert.strictEqual(
        yield* refusal(files.remove(join(ws, "d"), true, false)),
        "invalid: the tree is deeper than 256 directories"
      )
      assert.isTrue(NodeFs.existsSync(join(deep(258), "f")))
      NodeFs.rmSync(deep(258), { recursive: true })
      yield* files.remove(join(ws, "d"), true, false)
      assert.isFalse(NodeFs.existsSync(join(ws, "d")))
    }))
})

describe("ConfinedFileSystem: copy", () => {
  it.effect("copies a file (through a link at the destination), a link as a link, and a tree", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const files = yield* confined(ws, true)
      yield* files.copy(join(ws, "f"), join(ws, "g"), false)
      assert.strictEqual(NodeFs.readFileSync(join(ws, "g"), "utf8"), `${ws}\n`)
      NodeFs.symlinkSync("h", join(ws, "toH"))
      yield* files.copy(join(out, "f"), join(ws, "toH"), false)
      assert.strictEqual(NodeFs.readFileSync(join(ws, "h"), "utf8"), `${out}\n`)
      NodeFs.symlinkSync("../out/f", join(ws, "link"))
      yield* files.copy(join(ws, "link"), join(ws, "linkCopy"), false)
      assert.strictEqual(NodeFs.readlinkSync(join(ws, "linkCopy")), "../out/f")
      NodeFs.mkdirSync(join(ws, "tree", "sub", "subsub"), { recursive: true })
      NodeFs.writeFileSync(join(ws, "tree", "sub", "subsub", "f"), "deep")
      NodeFs.symlinkSync(out, join(ws, "tree", "sub", "out"))
      yield* files.copy(join(ws, "tree"), join(ws, "copy"), true)
      assert.strictEqual(NodeFs.readFileSync(join(ws, "copy", "sub", "subsub", "f"), "utf8"), "deep")
      assert.strictEqual(NodeFs.readlinkSync(join(ws, "copy", "sub", "out")), out)
      // into an existing tree: merged
      yield* files.copy(join(ws, "ro"), join(ws, "copy"), true)
      assert.deepStrictEqual(NodeFs.readdirSync(join(ws, "copy")).sort(), ["f", "sub"])
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
      // a directory of the tree where the destination holds a file: EEXIST, as create_dir_all says
      NodeFs.mkdirSync(join(ws, "clash"))
      NodeFs.writeFileSync(join(ws, "clash", "sub"), "file")
      assert.strictEqual(yield* refusal(files.copy(join(ws, "tree"), join(ws, "clash"), true)), "EEXIST")
      assert.strictEqual(NodeFs.readFileSync(join(ws, "clash", "sub"), "utf8"), "file")
    }))

  it.effect("refuses to copy from where it cannot see, or to where it cannot write, copying nothing", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const files = yield* confined(ws, true)
      const hidden = yield* confined(ws, false)
      assert.strictEqual(yield* refusal(files.copy(join(ws, "hid", "f"), join(ws, "g"), false)), "EACCES")
      assert.strictEqual(yield* refusal(hidden.copy(join(out, "f"), join(ws, "g"), false)), "ENOENT")
      assert.strictEqual(yield* refusal(files.copy(join(ws, "hid"), join(ws, "g"), true)), "EACCES")
      assert.strictEqual(yield* refusal(hidden.copy(out, join(ws, "g"), true)), "ENOENT")
      // a tree holding a hidden directory
      assert.strictEqual(yield* refusal(files.copy(ws, join(out, "g"), true)), "EACCES")
      assert.strictEqual(yield* refusal(files.copy(join(ws, "f"), join(ws, "ro", "g"), false)), "EROFS")
      assert.strictEqual(yield* refusal(files.copy(join(ws, "f"), join(out, "g"), false)), "EROFS")
      assert.strictEqual(yield* refusal(hidden.copy(join(ws, "f"), join(out, "g"), false)), "ENOENT")
      NodeFs.symlinkSync(join(ws, "hid", "g"), join(ws, "toHid"))
      assert.strictEqual(yield* refusal(files.copy(join(ws, "f"), join(ws, "toHid"), false)), "EACCES")
      NodeFs.symlinkSync(out, join(ws, "link"))
      assert.strictEqual(yield* refusal(files.copy(join(ws, "link"), join(ws, "ro", "link"), false)), "EROFS")
      assert.strictEqual(yield* refusal(files.copy(join(ws, "ro"), join(out, "ro"), true)), "EROFS")
      NodeFs.mkdirSync(join(ws, "tree"))
      NodeFs.symlinkSync(out, join(ws, "tree", "link"))
      NodeFs.writeFileSync(join(ws, "tree", "file"), "")
      assert.strictEqual(yield* refusal(files.copy(join(ws, "tree"), join(ws, "ro", "tree"), true)), "EROFS")
      // merged into an existing read-only directory: each entry refused, whether a directory, a link or a file
      for (
        const [tree, make] of [
          ["tree2", (path: string) => NodeFs.mkdirSync(path)],
          ["tree3", (path: string) => NodeFs.symlinkSync(out, path)],
          ["tree4", (path: string) => NodeFs.writeFileSync(path, "")]
        ] as const
      ) {
        NodeFs.mkdirSync(join(ws, tree))
        make(join(ws, tree, "entry"))
        assert.strictEqual(yield* refusal(files.copy(join(ws, tree), join(ws, "ro"), true)), "EROFS", tree)
      }
      assert.deepStrictEqual(NodeFs.readdirSync(out), ["f"])
      assert.deepStrictEqual(NodeFs.readdirSync(join(ws, "ro")), ["f"])
      assert.deepStrictEqual(NodeFs.readdirSync(join(ws, "hid")), ["f"])
      assert.isFalse(NodeFs.existsSync(join(ws, "g")))
    }))

  it.effect("refuses what is not a file, a link or a directory, into itself, and without recursive", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      assert.strictEqual(
        yield* refusal(files.copy("/dev/null", join(ws, "null"), false)),
        "invalid: fs/copy only supports regular files, directories, and symlinks"
      )
      // what the source is, before the destination is looked at
      for (const destination of ["/", join(ws, "hid", "null"), join(ws, "ro", "null")]) {
        assert.strictEqual(
          yield* refusal(files.copy("/dev/null", destination, false)),
          "invalid: fs/copy only supports regular files, directories, and symlinks",
          destination
        )
      }
      NodeFs.mkdirSync(join(ws, "tree"))
      assert.strictEqual(
        yield* refusal(files.copy(join(ws, "tree"), join(ws, "copy"), false)),
        "invalid: fs/copy requires recursive: true when sourcePath is a directory"
      )
      assert.strictEqual(
        yield* refusal(files.copy(join(ws, "tree"), join(ws, "tree", "in"), true)),
        "invalid: fs/copy cannot copy a directory to itself or one of its descendants"
      )
      // / has no name in a parent to copy from, nor to copy to
      assert.strictEqual(yield* refusal(files.copy("/", join(ws, "copy"), true)), "EINVAL")
      assert.strictEqual(yield* refusal(files.copy(join(ws, "f"), "/", false)), "EISDIR")
      // a link to a device inside a tree is copied as a link; a FIFO is refused, named
      NodeFs.symlinkSync("/dev/null", join(ws, "tree", "null"))
      yield* files.copy(join(ws, "tree"), join(ws, "copy"), true)
      assert.strictEqual(NodeFs.readlinkSync(join(ws, "copy", "null")), "/dev/null")
      execFileSync("mkfifo", [join(ws, "tree", "fifo")])
      assert.strictEqual(
        yield* refusal(files.copy(join(ws, "tree"), join(ws, "copy2"), true)),
        `invalid: fs/copy only supports regular files, directories, and symlinks: ${join(ws, "tree", "fifo")}`
      )
    }))

  it.effect("refuses a tree deeper than maxTreeDepth", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      const deep = (levels: number) => join(ws, "tree", ...Array.from({ length: levels }, () => "d"))
      NodeFs.mkdirSync(deep(257), { recursive: true })
      assert.strictEqual(
        yield* refusal(files.copy(join(ws, "tree"), join(ws, "copy"), true)),
        "invalid: the tree is deeper than 256 directories"
      )
      NodeFs.rmdirSync(deep(257))
      yield* files.copy(join(ws, "tree"), join(ws, "copy"), true)
      assert.isTrue(NodeFs.statSync(join(ws, "copy", ...Array.from({ length: 256 }, () => "d"))).isDirectory())
    }))
})

describe("ConfinedFileSystem: links inside a hidden directory", () => {
  it.effect("are not followed, wherever they lead: the directory's denial, as in the sandbox", () =>
    Effect.gen(function*() {
      const { out, ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.symlinkSync(join(ws, "f"), join(ws, "hid", "link"))
      NodeFs.symlinkSync(ws, join(ws, "hid", "dirlink"))
      // a link in the workspace that passes through one
      NodeFs.symlinkSync("hid/dirlink", join(ws, "via"))
      for (
        const [what, effect] of [
          ["readFile", files.readFile(join(ws, "hid", "link"))],
          ["canonicalize", files.canonicalize(join(ws, "hid", "link"))],
          ["getMetadata", files.getMetadata(join(ws, "hid", "link"))],
          ["readDirectory", files.readDirectory(join(ws, "hid", "dirlink"))],
          ["readFile below", files.readFile(join(ws, "hid", "dirlink", "f"))],
          ["readFile via", files.readFile(join(ws, "via", "f"))],
          ["writeFile below", files.writeFile(join(ws, "hid", "dirlink", "g"), base64("x"))],
          ["writeFile via", files.writeFile(join(ws, "via", "g"), base64("x"))],
          ["createDirectory below", files.createDirectory(join(ws, "hid", "dirlink", "d"), true)],
          ["copy from below", files.copy(join(ws, "hid", "dirlink", "f"), join(ws, "g"), false)],
          ["remove below", files.remove(join(ws, "hid", "dirlink", "f"), false, false)]
        ] as const
      ) {
        assert.strictEqual(yield* refusal(effect as Effect.Effect<unknown, ExecutorError>), "EACCES", what)
      }
      assert.deepStrictEqual(NodeFs.readdirSync(ws).sort(), ["f", "hid", "ro", "via"])
      // listed, a link through one is left out, as a dangling one is
      assert.deepStrictEqual((yield* files.readDirectory(ws)).entries.map((entry) => entry.fileName).sort(), [
        "f",
        "hid",
        "ro"
      ])
      // where nothing is mounted, a link is not there
      const hidden = yield* confined(ws, false)
      NodeFs.symlinkSync(join(ws, "f"), join(out, "link"))
      assert.strictEqual(yield* refusal(hidden.readFile(join(out, "link"))), "ENOENT")
      assert.strictEqual(yield* refusal(hidden.canonicalize(join(out, "link"))), "ENOENT")
      // and a link in a visible place is followed through .. and ., relative or not
      NodeFs.symlinkSync("./ro/../ro/./f", join(ws, "dots"))
      assert.strictEqual(text(yield* hidden.readFile(join(ws, "dots"))), `${join(ws, "ro")}\n`)
      assert.strictEqual(yield* hidden.canonicalize(join(ws, "dots")), join(ws, "ro", "f"))
    }))

  it.effect("nor is a path read through a denied name, whatever is there: nothing, a file, a link", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      const secret = join(ws, "secret")
      assert.strictEqual(yield* refusal(files.readFile(join(secret, "f"))), "EACCES", "nothing there")
      NodeFs.writeFileSync(secret, "")
      assert.strictEqual(yield* refusal(files.readFile(join(secret, "f"))), "EACCES", "a file there")
      NodeFs.rmSync(secret)
      NodeFs.symlinkSync(join(ws, "ro"), secret)
      assert.strictEqual(yield* refusal(files.readFile(join(secret, "f"))), "EACCES", "a link there")
      // a link in the workspace whose target goes into a denied directory and out again
      NodeFs.symlinkSync("hid/../f", join(ws, "inAndOut"))
      assert.strictEqual(yield* refusal(files.readFile(join(ws, "inAndOut"))), "EACCES")
    }))

  it.effect("nor is a denied name removed, copied or written through, whatever is there", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      const secret = join(ws, "secret")
      // nothing there: its denial, with force or without, not "not there"
      assert.strictEqual(yield* refusal(files.remove(secret, false, true)), "EACCES", "remove, forced")
      assert.strictEqual(yield* refusal(files.remove(secret, true, false)), "EACCES", "remove")
      // a directory there: its denial before what it is
      NodeFs.mkdirSync(secret)
      assert.strictEqual(yield* refusal(files.copy(secret, join(ws, "g"), false)), "EACCES", "copy a directory")
      NodeFs.rmdirSync(secret)
      // a link there, reached through another link: not followed, though it leads where writing is allowed
      NodeFs.symlinkSync("g", secret)
      NodeFs.symlinkSync("secret", join(ws, "toSecret"))
      assert.strictEqual(yield* refusal(files.writeFile(join(ws, "toSecret"), base64("x"))), "EACCES", "write")
      assert.isFalse(NodeFs.existsSync(join(ws, "g")))
      assert.strictEqual(NodeFs.readlinkSync(secret), "g")
    }))

  it.effect("a read follows 40 links, not 41, as the kernel does", () =>
    Effect.gen(function*() {
      const { ws } = yield* layout
      const files = yield* confined(ws, true)
      NodeFs.mkdirSync(join(ws, "forty"))
      chain(join(ws, "forty"), 40, join(ws, "f"), true)
      assert.strictEqual(text(yield* files.readFile(join(ws, "forty", "link0"))), `${ws}\n`)
      NodeFs.mkdirSync(join(ws, "fortyOne"))
      chain(join(ws, "fortyOne"), 41, join(ws, "f"), true)
      assert.strictEqual(yield* refusal(files.readFile(join(ws, "fortyOne", "link0"))), "ELOOP")
      assert.strictEqual(yield* refusal(files.canonicalize(join(ws, "fortyOne", "link0"))), "ELOOP")
    }))
})
