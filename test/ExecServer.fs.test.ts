/**
 * The `fs/*` methods as a client sees them: a plain `ws` WebSocket sending
 * JSON frames to our exec-server over loopback, real files in a scratch
 * directory. Shapes, defaults, codes and messages are the ones measured on the
 * Codex 0.169 binary (`notes/codex-fs-pty.md`); hostile input (sizes over the
 * limit, bad base64, NUL bytes, relative paths, FIFOs) gets a typed answer and
 * never a hang or a crash.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { execFileSync } from "node:child_process"
import * as NodeFs from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as Protocol from "../src/Protocol.ts"
import * as Sandbox from "../src/Sandbox.ts"
import type * as WebSocketListener from "../src/WebSocketListener.ts"
import { listenLocal as server } from "./support/servers.ts"
import { base64, codexShape, connect, type Frame, handshake, startParams } from "./support/wireClient.ts"

/** A scratch directory for one test, removed with its scope. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => NodeFs.realpathSync(NodeFs.mkdtempSync(join(tmpdir(), "fs-wire-")))),
  (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
)

/** A server, a client past the handshake, and a scratch directory with `uri(…)` for paths in it. */
const ready = (options: WebSocketListener.Options = {}) =>
  Effect.gen(function*() {
    const { url } = yield* server(options)
    const client = yield* connect(url)
    yield* handshake(client)
    const dir = yield* scratch
    const uri = (...parts: ReadonlyArray<string>) => pathToFileURL(join(dir, ...parts)).href
    return { client, dir, uri }
  })

const notFound = { code: -32004, message: "No such file or directory (os error 2)" }

/** The typed reason our server adds to an error (`data.reason`). */
const reasonOf = (error: Frame["error"]) => (error?.data as { reason?: { _tag: string } } | undefined)?.reason

// =============================================================================
// fs/getMetadata
// =============================================================================

describe("ExecServer over the wire: fs/getMetadata", () => {
  it.live("tells a file, a directory, and a link (through it, but isSymlink of the link itself)", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.writeFileSync(join(dir, "a.txt"), "hello\n")
      NodeFs.mkdirSync(join(dir, "sub"))
      NodeFs.symlinkSync(join(dir, "sub"), join(dir, "link-dir"))
      const file = yield* client.call("fs/getMetadata", { path: uri("a.txt"), sandbox: null })
      assert.deepStrictEqual(Object.keys(file), [
        "isDirectory",
        "isFile",
        "isSymlink",
        "size",
        "createdAtMs",
        "modifiedAtMs"
      ])
      assert.deepStrictEqual({ ...file, createdAtMs: 0, modifiedAtMs: 0 }, {
        isDirectory: false,
        isFile: true,
        isSymlink: false,
        size: 6,
        createdAtMs: 0,
        modifiedAtMs: 0
      })
      assert.strictEqual(file.modifiedAtMs, Math.trunc(NodeFs.statSync(join(dir, "a.txt")).mtimeMs))
      const link = yield* client.call("fs/getMetadata", { path: uri("link-dir") })
      assert.deepStrictEqual([link.isDirectory, link.isFile, link.isSymlink], [true, false, true])
      const special = yield* client.call("fs/getMetadata", { path: "file:///dev/null" })
      assert.deepStrictEqual([special.isDirectory, special.isFile, special.isSymlink], [false, false, false])
    }))

  it.live("answers a missing path and a dangling link with -32004 and the OS's words, a path through a file with -32603", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.writeFileSync(join(dir, "a.txt"), "")
      NodeFs.symlinkSync(join(dir, "nowhere"), join(dir, "dangling"))
      const missing = yield* client.callError("fs/getMetadata", { path: uri("missing") })
      assert.deepStrictEqual(codexShape(missing), notFound)
      assert.deepStrictEqual(reasonOf(missing), {
        _tag: "PathNotFound",
        path: join(dir, "missing"),
        description: notFound.message
      } as never)
      assert.deepStrictEqual(codexShape(yield* client.callError("fs/getMetadata", { path: uri("dangling") })), notFound)
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/getMetadata", { path: uri("a.txt", "x") })),
        { code: -32603, message: "Not a directory (os error 20)" }
      )
    }))
})

// =============================================================================
// fs/readFile and fs/writeFile
// =============================================================================

describe("ExecServer over the wire: fs/readFile", () => {
  it.live("returns a file's bytes as base64, through a link, and files whose stat says 0 bytes", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256))
      NodeFs.writeFileSync(join(dir, "bin"), bytes)
      NodeFs.symlinkSync(join(dir, "bin"), join(dir, "link"))
      assert.deepStrictEqual(yield* client.call("fs/readFile", { path: uri("bin"), sandbox: null }), {
        dataBase64: bytes.toString("base64")
      })
      assert.strictEqual(
        (yield* client.call("fs/readFile", { path: uri("link") })).dataBase64,
        bytes.toString("base64")
      )
      const status = yield* client.call("fs/readFile", { path: "file:///proc/self/status" })
      assert.include(Buffer.from(status.dataBase64, "base64").toString(), "Pid:")
    }))

  it.live("refuses a directory, a device and a FIFO as 'not a file' (-32600), at once", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.mkdirSync(join(dir, "sub"))
      execFileSync("mkfifo", [join(dir, "fifo")])
      for (
        const [path, shown] of [[uri("sub"), join(dir, "sub")], ["file:///dev/null", "/dev/null"], [
          uri("fifo"),
          join(dir, "fifo")
        ]]
      ) {
        const error = yield* client.callError("fs/readFile", { path })
        assert.deepStrictEqual(codexShape(error), { code: -32600, message: `path \`${shown}\` is not a file` })
      }
      assert.deepStrictEqual(codexShape(yield* client.callError("fs/readFile", { path: uri("missing") })), notFound)
    }))
})

describe("ExecServer over the wire: fs/writeFile", () => {
  it.live("creates, truncates, writes through a link, and writes an empty file from \"\"", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      assert.deepStrictEqual(
        yield* client.call("fs/writeFile", { path: uri("new.txt"), dataBase64: base64("a long first text") }),
        {}
      )
      yield* client.call("fs/writeFile", { path: uri("new.txt"), dataBase64: base64("short"), sandbox: null })
      assert.strictEqual(NodeFs.readFileSync(join(dir, "new.txt"), "utf8"), "short")
      NodeFs.symlinkSync(join(dir, "target.txt"), join(dir, "link"))
      yield* client.call("fs/writeFile", { path: uri("link"), dataBase64: base64("via the link") })
      assert.strictEqual(NodeFs.readFileSync(join(dir, "target.txt"), "utf8"), "via the link")
      yield* client.call("fs/writeFile", { path: uri("empty"), dataBase64: "" })
      assert.strictEqual(NodeFs.statSync(join(dir, "empty")).size, 0)
    }))

  it.live("answers a missing parent with -32004 and a directory with -32603 'Is a directory'", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.mkdirSync(join(dir, "sub"))
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/writeFile", { path: uri("no", "such.txt"), dataBase64: "" })),
        notFound
      )
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/writeFile", { path: uri("sub"), dataBase64: "" })),
        { code: -32603, message: "Is a directory (os error 21)" }
      )
    }))

  it.live("refuses bad base64 with -32600 in Codex's words and writes nothing", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      const cases = [
        ["!!!notbase64", "Invalid symbol 33, offset 0."],
        ["YWI", "Invalid padding"],
        ["-_-_", "Invalid symbol 45, offset 0."],
        ["YWJj\nZGVm", "Invalid symbol 10, offset 4."]
      ]
      for (const [dataBase64, problem] of cases) {
        const error = yield* client.callError("fs/writeFile", { path: uri("bad.txt"), dataBase64 })
        assert.deepStrictEqual(codexShape(error), {
          code: -32600,
          message: `fs/writeFile requires valid base64 dataBase64: ${problem}`
        })
      }
      assert.isFalse(NodeFs.existsSync(join(dir, "bad.txt")))
      const missing = yield* client.callError("fs/writeFile", { path: uri("bad.txt") })
      assert.strictEqual(missing.code, -32602)
      assert.include(missing.message, "dataBase64")
    }))

  it.live("does not block on a FIFO without a reader", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      execFileSync("mkfifo", [join(dir, "fifo")])
      const error = yield* client.callError("fs/writeFile", { path: uri("fifo"), dataBase64: base64("x") })
      assert.deepStrictEqual(codexShape(error), { code: -32603, message: "No such device or address (os error 6)" })
    }))
})

// =============================================================================
// fs/createDirectory, fs/remove, fs/readDirectory
// =============================================================================

describe("ExecServer over the wire: fs/createDirectory", () => {
  it.live("creates parents unless recursive is false; an existing directory is fine only then", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      assert.deepStrictEqual(yield* client.call("fs/createDirectory", { path: uri("a", "b", "c") }), {})
      assert.isTrue(NodeFs.statSync(join(dir, "a", "b", "c")).isDirectory())
      yield* client.call("fs/createDirectory", { path: uri("a", "b", "c"), recursive: null })
      yield* client.call("fs/createDirectory", { path: uri("a", "b", "c"), recursive: true })
      const exists = { code: -32603, message: "File exists (os error 17)" }
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/createDirectory", { path: uri("a"), recursive: false })),
        exists
      )
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/createDirectory", { path: uri("x", "y"), recursive: false })),
        notFound
      )
      NodeFs.writeFileSync(join(dir, "file"), "")
      assert.deepStrictEqual(codexShape(yield* client.callError("fs/createDirectory", { path: uri("file") })), exists)
    }))
})

describe("ExecServer over the wire: fs/remove", () => {
  it.live("removes a tree and ignores a missing path by default; unlinks a link, never its target", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.mkdirSync(join(dir, "tree", "deep"), { recursive: true })
      NodeFs.writeFileSync(join(dir, "tree", "deep", "f"), "f")
      NodeFs.mkdirSync(join(dir, "kept"))
      NodeFs.writeFileSync(join(dir, "kept", "f"), "f")
      NodeFs.symlinkSync(join(dir, "kept"), join(dir, "link"))
      assert.deepStrictEqual(yield* client.call("fs/remove", { path: uri("tree") }), {})
      assert.isFalse(NodeFs.existsSync(join(dir, "tree")))
      yield* client.call("fs/remove", { path: uri("tree"), recursive: null, force: null })
      yield* client.call("fs/remove", { path: uri("link") })
      assert.isFalse(NodeFs.existsSync(join(dir, "link")))
      assert.isTrue(NodeFs.existsSync(join(dir, "kept", "f")))
    }))

  it.live("without force a missing path is -32004; without recursive a full directory is -32603, an empty one goes", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/remove", { path: uri("missing"), force: false })),
        notFound
      )
      NodeFs.mkdirSync(join(dir, "full"))
      NodeFs.writeFileSync(join(dir, "full", "f"), "")
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/remove", { path: uri("full"), recursive: false })),
        { code: -32603, message: "Directory not empty (os error 39)" }
      )
      NodeFs.mkdirSync(join(dir, "empty"))
      yield* client.call("fs/remove", { path: uri("empty"), recursive: false })
      assert.isFalse(NodeFs.existsSync(join(dir, "empty")))
    }))
})

describe("ExecServer over the wire: fs/readDirectory", () => {
  it.live("lists entries typed through links, leaves dangling links out", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.writeFileSync(join(dir, "file"), "")
      NodeFs.mkdirSync(join(dir, "sub"))
      NodeFs.symlinkSync(join(dir, "sub"), join(dir, "link-dir"))
      NodeFs.symlinkSync(join(dir, "nowhere"), join(dir, "dangling"))
      const { entries } = yield* client.call("fs/readDirectory", { path: uri(), sandbox: null })
      assert.deepStrictEqual(
        entries.toSorted((a: { fileName: string }, b: { fileName: string }) => a.fileName.localeCompare(b.fileName)),
        [
          { fileName: "file", isDirectory: false, isFile: true },
          { fileName: "link-dir", isDirectory: true, isFile: false },
          { fileName: "sub", isDirectory: true, isFile: false }
        ]
      )
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/readDirectory", { path: uri("file") })),
        { code: -32603, message: "Not a directory (os error 20)" }
      )
      assert.deepStrictEqual(codexShape(yield* client.callError("fs/readDirectory", { path: uri("nope") })), notFound)
    }))
})

// =============================================================================
// fs/copy, fs/canonicalize
// =============================================================================

describe("ExecServer over the wire: fs/copy", () => {
  it.live("copies a tree (merging into an existing one, links as links) and a file", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.mkdirSync(join(dir, "src", "inner"), { recursive: true })
      NodeFs.writeFileSync(join(dir, "src", "inner", "leaf"), "leaf")
      NodeFs.symlinkSync("inner/leaf", join(dir, "src", "rel-link"))
      NodeFs.mkdirSync(join(dir, "dest"))
      NodeFs.writeFileSync(join(dir, "dest", "already"), "here")
      yield* client.call("fs/copy", { sourcePath: uri("src"), destinationPath: uri("dest"), recursive: true })
      assert.strictEqual(NodeFs.readFileSync(join(dir, "dest", "inner", "leaf"), "utf8"), "leaf")
      assert.strictEqual(NodeFs.readFileSync(join(dir, "dest", "already"), "utf8"), "here")
      assert.strictEqual(NodeFs.readlinkSync(join(dir, "dest", "rel-link")), "inner/leaf")
      yield* client.call("fs/copy", {
        sourcePath: uri("src", "inner", "leaf"),
        destinationPath: uri("copy"),
        recursive: false
      })
      assert.strictEqual(NodeFs.readFileSync(join(dir, "copy"), "utf8"), "leaf")
    }))

  it.live("refuses a directory without recursive, a copy into itself, a device, and a missing recursive field", () =>
    Effect.gen(function*() {
      const { client, uri } = yield* ready()
      yield* client.call("fs/createDirectory", { path: uri("src", "inner") })
      const refused = (params: object) => Effect.map(client.callError("fs/copy", params), codexShape)
      assert.deepStrictEqual(
        yield* refused({ sourcePath: uri("src"), destinationPath: uri("other"), recursive: false }),
        { code: -32600, message: "fs/copy requires recursive: true when sourcePath is a directory" }
      )
      assert.deepStrictEqual(
        yield* refused({ sourcePath: uri("src"), destinationPath: uri("src", "inner", "again"), recursive: true }),
        { code: -32600, message: "fs/copy cannot copy a directory to itself or one of its descendants" }
      )
      assert.deepStrictEqual(
        yield* refused({ sourcePath: "file:///dev/null", destinationPath: uri("null"), recursive: false }),
        { code: -32600, message: "fs/copy only supports regular files, directories, and symlinks" }
      )
      assert.deepStrictEqual(
        yield* refused({ sourcePath: uri("gone"), destinationPath: uri("x"), recursive: false }),
        notFound
      )
      const missingField = yield* client.callError("fs/copy", { sourcePath: uri("src"), destinationPath: uri("x") })
      assert.strictEqual(missingField.code, -32602)
      assert.include(missingField.message, "recursive")
    }))
})

describe("ExecServer over the wire: fs/canonicalize", () => {
  it.live("resolves links and .. into a file URI", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      NodeFs.mkdirSync(join(dir, "real"))
      NodeFs.writeFileSync(join(dir, "a.txt"), "")
      NodeFs.symlinkSync(join(dir, "real"), join(dir, "link"))
      assert.deepStrictEqual(yield* client.call("fs/canonicalize", { path: `${uri("link")}/../a.txt` }), {
        path: uri("a.txt")
      })
    }))
})

// =============================================================================
// Paths, the handshake, sandbox, limits and hostile input
// =============================================================================

describe("ExecServer over the wire: fs paths", () => {
  it.live("reads every file URI form Codex reads, and refuses plain and relative paths with -32602", () =>
    Effect.gen(function*() {
      const { client, dir } = yield* ready()
      NodeFs.writeFileSync(join(dir, "spa ce%.txt"), "x")
      NodeFs.mkdirSync(join(dir, "sub"))
      NodeFs.writeFileSync(join(dir, "sub", "f"), "x")
      for (
        const path of [
          `file:${dir}/spa%20ce%25.txt`,
          `file://localhost${dir}/spa ce%.txt`,
          `FILE://${dir}/spa%20ce%.txt`,
          `file://${dir}/sub%2Ff`,
          `file://${dir}/sub/../sub/f/`
        ]
      ) {
        const metadata = yield* client.call("fs/getMetadata", { path })
        assert.isTrue(metadata.isFile, path)
      }
      for (const path of [join(dir, "sub", "f"), "sub/f", ""]) {
        const error = yield* client.callError("fs/getMetadata", { path })
        assert.strictEqual(error.code, -32602, path)
        assert.include(error.message, "invalid URI: relative URL without a base")
      }
      for (
        const [path, words] of [
          ["http://x/a", "unsupported path URI scheme `http`"],
          [`file://${dir}/f?x=1`, "query parameters are not allowed in path URIs"],
          [`file://${dir}/f#frag`, "fragments are not allowed in path URIs"],
          [`file://otherhost${dir}/f`, "is invalid on 'linux'"]
        ]
      ) {
        const error = yield* client.callError("fs/getMetadata", { path })
        assert.strictEqual(error.code, -32602, path)
        assert.include(error.message, words)
      }
    }))

  it.live("refuses a NUL byte in a path with -32600, whichever way it is written", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready()
      for (const path of [`${uri()}/a%00b`, `file://${dir}/a\u0000b`]) {
        const error = yield* client.callError("fs/writeFile", { path, dataBase64: base64("x") })
        assert.deepStrictEqual(codexShape(error), {
          code: -32600,
          message: "file name contained an unexpected NUL byte"
        })
      }
      assert.deepStrictEqual(NodeFs.readdirSync(dir), [])
    }))

  it.live("answers a wrong type in any field with -32602 naming it", () =>
    Effect.gen(function*() {
      const { client, uri } = yield* ready()
      const cases: ReadonlyArray<readonly [string, object, string]> = [
        ["fs/getMetadata", { path: 5 }, "path"],
        ["fs/writeFile", { path: uri("f"), dataBase64: 5 }, "dataBase64"],
        ["fs/createDirectory", { path: uri("d"), recursive: "yes" }, "recursive"],
        ["fs/remove", { path: uri("d"), force: 1 }, "force"],
        ["fs/readFile", { path: uri("f"), maxBytes: -1 }, "maxBytes"]
      ]
      for (const [method, params, field] of cases) {
        const error = yield* client.callError(method, params)
        assert.strictEqual(error.code, -32602, method)
        assert.include(error.message, field)
      }
      const absent = yield* client.callError("fs/getMetadata", undefined)
      assert.strictEqual(absent.code, -32602)
    }))
})

describe("ExecServer over the wire: fs and the handshake", () => {
  it.live("refuses fs methods before initialize and before initialized, in Codex's words", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const client = yield* connect(url)
      const params = { path: "file:///tmp" }
      assert.deepStrictEqual(codexShape(yield* client.callError("fs/getMetadata", params)), {
        code: -32600,
        message: "client must call initialize before using filesystem methods"
      })
      yield* client.call("initialize", { clientName: "wire-test" })
      assert.deepStrictEqual(codexShape(yield* client.callError("fs/readDirectory", params)), {
        code: -32600,
        message: "client must send initialized before using filesystem methods"
      })
      yield* client.notify("initialized", {})
      assert.isTrue((yield* client.call("fs/getMetadata", params)).isDirectory)
    }))
})

describe("ExecServer over the wire: fs sandbox", () => {
  /** A workspace outside /tmp (which workspace-write leaves writable), with a `.git` inside and a file beside it. */
  const sandboxed = (options: Parameters<typeof server>[0] = {}) =>
    Effect.gen(function*() {
      const { url } = yield* server(options)
      const client = yield* connect(url)
      yield* handshake(client)
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => NodeFs.realpathSync(NodeFs.mkdtempSync("/var/tmp/fs-sandbox-"))),
        (path) => Effect.sync(() => NodeFs.rmSync(path, { recursive: true, force: true }))
      )
      const workspace = join(dir, "ws")
      NodeFs.mkdirSync(join(workspace, ".git"), { recursive: true })
      NodeFs.writeFileSync(join(workspace, ".git", "HEAD"), "ref")
      NodeFs.writeFileSync(join(dir, "beside.txt"), "beside")
      const uri = (...parts: ReadonlyArray<string>) => pathToFileURL(join(dir, ...parts)).href
      const encode = Schema.encodeSync(Protocol.SandboxContext)
      // as JSON, the way a client sends it: a test edits its entries freely
      const policy: any = encode(Sandbox.toWire(Sandbox.workspaceWrite({ roots: [workspace] }), workspace)!)
      return { client, dir, workspace, uri, policy }
    })

  it.live("lets a policy's writable roots be written and everything else only read, as it would a process", () =>
    Effect.gen(function*() {
      const { client, dir, policy, uri, workspace } = yield* sandboxed()
      const write = (path: string) => client.request("fs/writeFile", { path, dataBase64: base64("x"), sandbox: policy })
      assert.isUndefined((yield* write(uri("ws", "inside.txt"))).error)
      assert.strictEqual(NodeFs.readFileSync(join(workspace, "inside.txt"), "utf8"), "x")
      for (const path of [uri("outside.txt"), uri("ws", ".git", "config")]) {
        const { error } = yield* write(path)
        assert.deepStrictEqual(codexShape(error), { code: -32603, message: "Read-only file system (os error 30)" })
        assert.isFalse(NodeFs.existsSync(fileURLToPath(path)), `${path} was not written`)
      }
      const read = yield* client.call("fs/readFile", { path: uri("beside.txt"), sandbox: policy })
      assert.strictEqual(Buffer.from(read.dataBase64, "base64").toString(), "beside", "root is readable")
      // a recursive removal of the workspace would take its .git with it: refused, nothing removed
      const removal = yield* client.callError("fs/remove", {
        path: uri("ws"),
        recursive: true,
        force: true,
        sandbox: policy
      })
      assert.strictEqual(removal.code, -32603)
      assert.isTrue(NodeFs.existsSync(join(workspace, ".git", "HEAD")))
      assert.isTrue(NodeFs.existsSync(join(dir, "beside.txt")))
    }))

  it.live("hides a denied path from reads, recursive copies included", () =>
    Effect.gen(function*() {
      const { client, policy, uri, workspace } = yield* sandboxed()
      NodeFs.mkdirSync(join(workspace, "secret"))
      NodeFs.writeFileSync(join(workspace, "secret", "key"), "k")
      const entries = [
        ...policy.permissions.file_system.entries,
        { path: { type: "path", path: uri("ws", "secret") }, access: "deny" }
      ]
      const denying = {
        ...policy,
        permissions: { ...policy.permissions, file_system: { type: "restricted", entries } }
      }
      const read = yield* client.callError("fs/readFile", { path: uri("ws", "secret", "key"), sandbox: denying })
      assert.deepStrictEqual(codexShape(read), { code: -32600, message: "Permission denied (os error 13)" })
      const copy = yield* client.callError("fs/copy", {
        sourcePath: uri("ws"),
        destinationPath: uri("ws", "copy"),
        recursive: true,
        sandbox: denying
      })
      assert.strictEqual(copy.code, -32600)
      assert.isFalse(NodeFs.existsSync(join(workspace, "copy")))
    }))

  it.live("refuses a policy it cannot enforce, and one that does not decode, touching nothing", () =>
    Effect.gen(function*() {
      const { client, policy, uri } = yield* sandboxed()
      const glob = {
        ...policy,
        permissions: {
          ...policy.permissions,
          file_system: {
            type: "restricted",
            entries: [...policy.permissions.file_system.entries, {
              path: { type: "glob_pattern", pattern: "**/*.pem" },
              access: "deny"
            }]
          }
        }
      }
      const refused = yield* client.callError("fs/writeFile", {
        path: uri("ws", "f"),
        dataBase64: base64("x"),
        sandbox: glob
      })
      assert.strictEqual(reasonOf(refused)?._tag, "SandboxRefused")
      assert.include(refused.message, "sandbox intent cannot be enforced")
      const malformed = yield* client.callError("fs/writeFile", {
        path: uri("ws", "f"),
        dataBase64: base64("x"),
        sandbox: { permissions: { type: "managed" } }
      })
      assert.strictEqual(malformed.code, -32602)
      assert.isFalse(NodeFs.existsSync(fileURLToPath(uri("ws", "f"))))
    }))

  it.live("when the executor requires a sandbox, refuses every call without a policy", () =>
    Effect.gen(function*() {
      const { client, policy, uri } = yield* sandboxed({ requireSandbox: true })
      const refused = yield* client.callError("fs/getMetadata", { path: uri("beside.txt"), sandbox: null })
      assert.strictEqual(reasonOf(refused)?._tag, "SandboxRefused")
      assert.isTrue((yield* client.call("fs/getMetadata", { path: uri("beside.txt"), sandbox: policy })).isFile)
      // one switch: the executor's, which refuses an unsandboxed start as well
      const start = yield* client.callError("process/start", startParams("unconfined", ["true"]))
      assert.strictEqual(reasonOf(start)?._tag, "SandboxRefused")
    }))
})

describe("ExecServer over the wire: fs limits", () => {
  const limit = 1024 * 1024

  it.live("refuses a write over maxFileBytes with -32600 and writes nothing; one at the limit is written", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready({ maxFileBytes: limit })
      const error = yield* client.callError("fs/writeFile", {
        path: uri("big"),
        dataBase64: Buffer.alloc(limit + 1, 1).toString("base64")
      })
      assert.deepStrictEqual(codexShape(error), {
        code: -32600,
        message: `file is too large to write: limit is ${limit} bytes`
      })
      assert.strictEqual(reasonOf(error)?._tag, "FileTooLarge")
      assert.isFalse(NodeFs.existsSync(join(dir, "big")))
      yield* client.call("fs/writeFile", { path: uri("big"), dataBase64: Buffer.alloc(limit, 1).toString("base64") })
      assert.strictEqual(NodeFs.statSync(join(dir, "big")).size, limit)
    }))

  it.live("refuses a read over maxFileBytes, or over the client's own maxBytes, with -32600", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready({ maxFileBytes: limit })
      NodeFs.writeFileSync(join(dir, "big"), Buffer.alloc(limit + 1))
      NodeFs.writeFileSync(join(dir, "small"), Buffer.alloc(100))
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/readFile", { path: uri("big") })),
        { code: -32600, message: `file is too large to read: limit is ${limit} bytes` }
      )
      assert.deepStrictEqual(
        codexShape(yield* client.callError("fs/readFile", { path: uri("small"), maxBytes: 99 })),
        { code: -32600, message: "file is too large to read: limit is 99 bytes" }
      )
      assert.strictEqual(
        (yield* client.call("fs/readFile", { path: uri("small"), maxBytes: 100 })).dataBase64.length,
        136
      )
    }))

  it.live("reads no further while requests in flight hold maxPendingRequestBytes, then serves every one once", () =>
    Effect.gen(function*() {
      const { client, dir, uri } = yield* ready({ maxPendingRequestBytes: 4 * limit, maxConcurrentRequests: 1 })
      const frames = Array.from(
        { length: 8 },
        (_, i) =>
          JSON.stringify({
            id: `w${i}`,
            method: "fs/writeFile",
            params: { path: uri(`f${i}`), dataBase64: Buffer.alloc(limit, i).toString("base64") }
          })
      )
      yield* client.sendAll(frames)
      const replies = yield* Effect.forEach(frames, (_, i) => client.reply(`w${i}`))
      // nothing refused: the server stopped reading instead, and went on once answers freed room
      for (const reply of replies) assert.deepStrictEqual(reply.result, {}, JSON.stringify(reply.error))
      for (let i = 0; i < frames.length; i++) {
        assert.isTrue(NodeFs.readFileSync(join(dir, `f${i}`)).equals(Buffer.alloc(limit, i)))
      }
      assert.strictEqual(client.received.filter((r) => String(r.frame.id).startsWith("w")).length, frames.length)
    }))
})
