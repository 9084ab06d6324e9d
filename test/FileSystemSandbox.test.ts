/**
 * `fs/*` calls with a sandbox policy, where links and path tricks meet the
 * policy: dangling links, links to directories the policy does not grant or
 * hides, `%2F..` in a URI, a link swapped while calls run, and policies that
 * confine nothing under `requireSandbox`. The shared cases run against our
 * server and Codex's exec-server 0.169, whose fs helper runs inside its own
 * sandbox: its answers are the reference. JSON frames over loopback, real
 * files and links in a scratch directory outside /tmp.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as NodeFs from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { registryDirectory } from "../src/internal/sandbox/mountPoints.ts"
import { startCodexServer } from "./support/codexServer.ts"
import { entry, restricted, scratchDir } from "./support/sandbox.ts"
import { listenLocal } from "./support/servers.ts"
import { base64, codexShape, connect, type Frame, fromBase64, handshake } from "./support/wireClient.ts"

const readOnlyFileSystem = { code: -32603, message: "Read-only file system (os error 30)" }
const notFound = { code: -32004, message: "No such file or directory (os error 2)" }
const permissionDenied = { code: -32600, message: "Permission denied (os error 13)" }

const uri = (path: string) => pathToFileURL(path).href

/** A policy in Codex's wire shape: `entries` of `[path, access]`, the root's access first when given. */
const policy = (root: "read" | null, entries: ReadonlyArray<readonly [string, "read" | "write" | "deny"]>) =>
  restricted([
    ...(root === null ? [] : [entry("root", root)]),
    ...entries.map(([path, access]) => entry(uri(path), access))
  ])

/**
 * A scratch layout outside /tmp, as a sandboxed command could have left it in
 * its workspace: `ws/dangling` → a missing file outside, `ws/l` → a directory
 * outside (`secret/deep`), `ws/inlink` → `ws/key`; and `secret/key` beside.
 */
const layout = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = scratchDir("fs-links")
    const ws = join(dir.path, "ws")
    const secret = join(dir.path, "secret")
    NodeFs.mkdirSync(ws)
    NodeFs.mkdirSync(join(secret, "deep"), { recursive: true })
    NodeFs.writeFileSync(join(secret, "key"), "TOP SECRET\n")
    NodeFs.writeFileSync(join(secret, "deep", "file"), "deep\n")
    NodeFs.writeFileSync(join(ws, "key"), "ws key\n")
    NodeFs.symlinkSync(join(dir.path, "outside-created"), join(ws, "dangling"))
    NodeFs.symlinkSync(join(secret, "deep"), join(ws, "l"))
    NodeFs.symlinkSync(join(ws, "key"), join(ws, "inlink"))
    return { dir, base: dir.path, ws, secret }
  }),
  ({ dir }) => Effect.sync(() => dir[Symbol.dispose]())
)

/** A client of `server` past the handshake, and a call that answers its error in Codex's shape (or "ok"). */
const client = (server: Effect.Effect<{ readonly url: string }, unknown, Scope.Scope>) =>
  Effect.gen(function*() {
    const { url } = yield* Effect.orDie(server)
    const wire = yield* connect(url, { timeoutMs: 10_000 })
    yield* handshake(wire)
    const outcome = (method: string, params: Record<string, unknown>) =>
      Effect.map(
        wire.request(method, params),
        (frame: Frame) => frame.error === undefined ? { ok: frame.result } : { error: codexShape(frame.error) }
      )
    return { wire, outcome }
  })

const servers = {
  ours: listenLocal(),
  "Codex 0.169": startCodexServer
} as const

for (const [name, server] of Object.entries(servers)) {
  describe(`fs/* with a sandbox, links and paths (${name})`, () => {
    it.live("a dangling link is not written through; a link to a file inside is", () =>
      Effect.gen(function*() {
        const { outcome } = yield* client(server)
        const { base, ws } = yield* layout
        const workspace = policy("read", [[ws, "write"]])
        assert.deepStrictEqual(
          yield* outcome("fs/writeFile", {
            path: uri(join(ws, "dangling")),
            dataBase64: base64("x"),
            sandbox: workspace
          }),
          { error: readOnlyFileSystem }
        )
        assert.isFalse(NodeFs.existsSync(join(base, "outside-created")), "nothing was created outside")
        assert.deepStrictEqual(
          yield* outcome("fs/writeFile", {
            path: uri(join(ws, "inlink")),
            dataBase64: base64("via link"),
            sandbox: workspace
          }),
          { ok: {} }
        )
        assert.strictEqual(NodeFs.readFileSync(join(ws, "key"), "utf8"), "via link")
      }), { timeout: 60_000 })

    it.live(
      "a link to a directory outside: nothing written, made or copied into it; removing it removes the link",
      () =>
        Effect.gen(function*() {
          const { outcome } = yield* client(server)
          const { secret, ws } = yield* layout
          const workspace = policy("read", [[ws, "write"]])
          const through = (name: string) => uri(join(ws, "l", name))
          assert.deepStrictEqual(
            yield* outcome("fs/writeFile", { path: through("x"), dataBase64: base64("x"), sandbox: workspace }),
            { error: readOnlyFileSystem }
          )
          assert.deepStrictEqual(
            yield* outcome("fs/createDirectory", { path: through("d"), sandbox: workspace }),
            { error: readOnlyFileSystem }
          )
          assert.deepStrictEqual(
            yield* outcome("fs/copy", {
              sourcePath: uri(join(ws, "key")),
              destinationPath: through("c"),
              recursive: false,
              sandbox: workspace
            }),
            { error: readOnlyFileSystem }
          )
          assert.deepStrictEqual(NodeFs.readdirSync(join(secret, "deep")), ["file"])
          assert.deepStrictEqual(yield* outcome("fs/remove", { path: uri(join(ws, "l")), sandbox: workspace }), {
            ok: {}
          })
          assert.isFalse(NodeFs.existsSync(join(ws, "l")))
          assert.deepStrictEqual(NodeFs.readdirSync(join(secret, "deep")), ["file"], "its target is untouched")
        }),
      { timeout: 60_000 }
    )

    it.live(
      "a path no rule grants is not there: reads, metadata, listings and real paths through a link",
      () =>
        Effect.gen(function*() {
          const { outcome } = yield* client(server)
          const { secret, ws } = yield* layout
          const onlyWorkspace = policy(null, [[ws, "write"]])
          for (
            const [method, params] of [
              ["fs/readFile", { path: uri(join(secret, "key")) }],
              ["fs/readFile", { path: uri(join(ws, "l", "file")) }],
              ["fs/getMetadata", { path: uri(join(ws, "l")) }],
              ["fs/readDirectory", { path: uri(join(ws, "l")) }],
              ["fs/canonicalize", { path: uri(join(ws, "l")) }]
            ] as const
          ) {
            assert.deepStrictEqual(
              yield* outcome(method, { ...params, sandbox: onlyWorkspace }),
              { error: notFound },
              `${method} ${params.path}`
            )
          }
          const read = yield* outcome("fs/readFile", { path: uri(join(ws, "inlink")), sandbox: onlyWorkspace })
          assert.strictEqual(fromBase64((read as { ok: { dataBase64: string } }).ok.dataBase64), "ws key\n")
        }),
      { timeout: 60_000 }
    )

    it.live("a directory the policy denies is hidden behind a link too", () =>
      Effect.gen(function*() {
        const { outcome } = yield* client(server)
        const { secret, ws } = yield* layout
        const denying = policy("read", [[ws, "write"], [secret, "deny"]])
        assert.deepStrictEqual(
          yield* outcome("fs/readFile", { path: uri(join(ws, "l", "file")), sandbox: denying }),
          { error: permissionDenied }
        )
        assert.deepStrictEqual(
          yield* outcome("fs/readFile", { path: uri(join(secret, "key")), sandbox: denying }),
          { error: permissionDenied }
        )
      }), { timeout: 60_000 })

    it.live("a link inside a denied directory is not followed, wherever it leads", () =>
      Effect.gen(function*() {
        const { outcome } = yield* client(server)
        const { secret, ws } = yield* layout
        // secret/back → ws, a directory every rule below lets be read and written
        NodeFs.symlinkSync(ws, join(secret, "back"))
        const denying = policy("read", [[ws, "write"], [secret, "deny"]])
        for (
          const [method, params] of [
            ["fs/readFile", { path: uri(join(secret, "back", "key")) }],
            ["fs/readDirectory", { path: uri(join(secret, "back")) }],
            ["fs/canonicalize", { path: uri(join(secret, "back")) }],
            ["fs/writeFile", { path: uri(join(secret, "back", "new")), dataBase64: base64("x") }]
          ] as const
        ) {
          assert.deepStrictEqual(
            yield* outcome(method, { ...params, sandbox: denying }),
            { error: permissionDenied },
            `${method} ${params.path}`
          )
        }
        assert.isFalse(NodeFs.existsSync(join(ws, "new")))
      }), { timeout: 60_000 })

    it.live("a link whose target ends in / names a directory: a file there is not read", () =>
      Effect.gen(function*() {
        const { outcome } = yield* client(server)
        const { ws } = yield* layout
        NodeFs.symlinkSync("key/", join(ws, "slash"))
        NodeFs.symlinkSync(`${join(ws, "key")}/.`, join(ws, "dot"))
        const workspace = policy("read", [[ws, "write"]])
        for (const link of ["slash", "dot"]) {
          assert.deepStrictEqual(
            yield* outcome("fs/readFile", { path: uri(join(ws, link)), sandbox: workspace }),
            { error: { code: -32603, message: "Not a directory (os error 20)" } },
            link
          )
        }
      }), { timeout: 60_000 })

    it.live("%2F.. is resolved as written, once decoded: not after the link before it", () =>
      Effect.gen(function*() {
        const { outcome } = yield* client(server)
        const { ws } = yield* layout
        // ws/l → secret/deep: after the link, `..` would be secret, and `key` its TOP SECRET
        const tricky = `${uri(ws)}/l%2F..%2Fkey`
        for (const sandbox of [null, policy(null, [[ws, "write"]])]) {
          const read = yield* outcome("fs/readFile", { path: tricky, sandbox })
          assert.strictEqual(fromBase64((read as { ok: { dataBase64: string } }).ok.dataBase64), "ws key\n")
        }
        const written = yield* outcome("fs/writeFile", {
          path: `${uri(ws)}/l%2F..%2Fnew`,
          dataBase64: base64("n"),
          sandbox: policy("read", [[ws, "write"]])
        })
        assert.deepStrictEqual(written, { ok: {} })
        assert.strictEqual(NodeFs.readFileSync(join(ws, "new"), "utf8"), "n")
      }), { timeout: 60_000 })
  })
}

describe("fs/* with a sandbox (ours)", () => {
  it.live(
    "a link swapped in and out of the workspace while writes and reads run: nothing outside is touched",
    () =>
      Effect.gen(function*() {
        const { outcome } = yield* client(listenLocal())
        const { base, secret, ws } = yield* layout
        NodeFs.mkdirSync(join(ws, "inside"))
        NodeFs.writeFileSync(join(ws, "inside", "key"), "inside\n")
        NodeFs.symlinkSync(join(ws, "inside"), join(ws, "swap"))
        // a process that points ws/swap at ws/inside and at secret, over and over (a rename is atomic)
        const swapper = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(process.execPath, [
              "-e",
              `const fs = require("node:fs"); const [swap, a, b] = process.argv.slice(1); let i = 0
             for (;;) { const t = swap + ".t"; try { fs.rmSync(t, { force: true }); fs.symlinkSync(i++ % 2 ? a : b, t); fs.renameSync(t, swap) } catch {} }`,
              join(ws, "swap"),
              join(ws, "inside"),
              secret
            ], { stdio: "ignore" })
          ),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        assert.isDefined(swapper.pid)
        const denying = policy("read", [[ws, "write"], [secret, "deny"]])
        let written = 0
        let refused = 0
        for (let i = 0; i < 300; i++) {
          const write = yield* outcome("fs/writeFile", {
            path: uri(join(ws, "swap", `f${i}`)),
            dataBase64: base64("x"),
            sandbox: denying
          })
          if ("ok" in write) written++
          else refused++
          const read = yield* outcome("fs/readFile", { path: uri(join(ws, "swap", "key")), sandbox: denying })
          if ("ok" in read) {
            assert.strictEqual(fromBase64((read as { ok: { dataBase64: string } }).ok.dataBase64), "inside\n")
          } else assert.deepStrictEqual(read, { error: permissionDenied })
        }
        assert.deepStrictEqual(
          NodeFs.readdirSync(secret).sort(),
          ["deep", "key"],
          `nothing written into the denied directory (${written} writes landed inside, ${refused} refused)`
        )
        assert.isFalse(NodeFs.existsSync(join(base, "outside-created")))
      }),
    { timeout: 60_000 }
  )

  it.live("with requireSandbox, a policy that confines no file access is refused like no policy", () =>
    Effect.gen(function*() {
      const { outcome, wire } = yield* client(listenLocal({ requireSandbox: true }))
      const { base, ws } = yield* layout
      const confinesNothing = [
        { permissions: { type: "disabled" }, windowsSandboxLevel: "disabled" },
        { permissions: { type: "external", network: "restricted" }, windowsSandboxLevel: "disabled" },
        {
          permissions: { type: "managed", file_system: { type: "unrestricted" }, network: "restricted" },
          windowsSandboxLevel: "disabled"
        },
        {
          permissions: {
            type: "managed",
            file_system: {
              type: "restricted",
              entries: [{ path: { type: "special", value: { kind: "root" } }, access: "write" }]
            },
            network: "enabled"
          },
          windowsSandboxLevel: "disabled"
        }
      ]
      for (const sandbox of confinesNothing) {
        const frame = yield* wire.request("fs/writeFile", {
          path: uri(join(base, "unconfined")),
          dataBase64: base64("x"),
          sandbox
        })
        assert.strictEqual(
          (frame.error?.data as { reason?: { _tag: string; kind: string } } | undefined)?.reason?.kind,
          "Required",
          JSON.stringify(sandbox.permissions)
        )
        assert.isFalse(NodeFs.existsSync(join(base, "unconfined")))
      }
      assert.deepStrictEqual(
        yield* outcome("fs/writeFile", {
          path: uri(join(ws, "confined")),
          dataBase64: base64("x"),
          sandbox: policy("read", [[ws, "write"]])
        }),
        { ok: {} }
      )
    }))

  it.live("the sandboxes' own registry stays hidden, whatever a rule below it grants", () =>
    Effect.gen(function*() {
      const { outcome } = yield* client(listenLocal())
      const registry = registryDirectory()
      NodeFs.mkdirSync(registry, { recursive: true, mode: 0o700 })
      const inside = NodeFs.mkdtempSync(join(registry, "test-hidden-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => NodeFs.rmSync(inside, { recursive: true, force: true })))
      const granting = policy("read", [[inside, "write"]])
      assert.deepStrictEqual(
        yield* outcome("fs/writeFile", { path: uri(join(inside, "f")), dataBase64: base64("x"), sandbox: granting }),
        { error: permissionDenied }
      )
      assert.deepStrictEqual(
        yield* outcome("fs/readDirectory", { path: uri(registry), sandbox: granting }),
        { error: permissionDenied }
      )
      assert.isFalse(NodeFs.existsSync(join(inside, "f")))
    }))

  it.live("a recursive removal or copy walks the tree without following its links", () =>
    Effect.gen(function*() {
      const { outcome } = yield* client(listenLocal())
      const { secret, ws } = yield* layout
      const workspace = policy("read", [[ws, "write"]])
      NodeFs.mkdirSync(join(ws, "tree", "sub"), { recursive: true })
      NodeFs.writeFileSync(join(ws, "tree", "sub", "f"), "f")
      NodeFs.symlinkSync(secret, join(ws, "tree", "sub", "out"))
      assert.deepStrictEqual(
        yield* outcome("fs/copy", {
          sourcePath: uri(join(ws, "tree")),
          destinationPath: uri(join(ws, "copy")),
          recursive: true,
          sandbox: workspace
        }),
        { ok: {} }
      )
      assert.strictEqual(NodeFs.readlinkSync(join(ws, "copy", "sub", "out")), secret, "the link is copied as a link")
      assert.strictEqual(NodeFs.readFileSync(join(ws, "copy", "sub", "f"), "utf8"), "f")
      for (const tree of ["tree", "copy"]) {
        assert.deepStrictEqual(
          yield* outcome("fs/remove", { path: uri(join(ws, tree)), recursive: true, sandbox: workspace }),
          { ok: {} }
        )
        assert.isFalse(NodeFs.existsSync(join(ws, tree)))
      }
      assert.deepStrictEqual(NodeFs.readdirSync(secret).sort(), ["deep", "key"], "what the links led to is untouched")
    }))
})
