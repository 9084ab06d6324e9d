/**
 * Sandbox policy resolution and the access decision the `fs/*` methods share
 * with the process sandbox: Codex's precedence (most specific path, then deny
 * > write > read), special paths, protected names inside writable roots,
 * symlinks, and the refusals for what cannot be enforced as written. Real
 * directories, real symlinks.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { SandboxRefused } from "../src/Executor.ts"
import { realPathOf } from "../src/internal/fs/paths.ts"
import { mountLayout } from "../src/internal/sandbox/bwrapArgs.ts"
import { registryDirectory } from "../src/internal/sandbox/mountPoints.ts"
import {
  accessOf,
  canRead,
  canReadTree,
  canWrite,
  canWriteTree,
  denialOf,
  type ResolvedPolicy,
  resolvePolicy
} from "../src/internal/sandbox/policy.ts"
import type * as Protocol from "../src/Protocol.ts"
import * as Sandbox from "../src/Sandbox.ts"
import { scratchRoot } from "./support/sandbox.ts"

const special = (value: Protocol.SandboxSpecialPath): Protocol.SandboxPath => ({ type: "special", value })
const path = (absolute: string): Protocol.SandboxPath => ({ type: "path", path: absolute })
const entry = (
  target: Protocol.SandboxPath,
  access: Protocol.SandboxEntry["access"]
): Protocol.SandboxEntry => ({ path: target, access })

const restricted = (
  entries: ReadonlyArray<Protocol.SandboxEntry>,
  roots: ReadonlyArray<string>,
  network: Protocol.SandboxNetwork = "restricted"
): Protocol.SandboxContext => ({
  permissions: { type: "managed", file_system: { type: "restricted", entries }, network },
  workspaceRoots: roots,
  windowsSandboxLevel: "disabled"
})

/**
 * A fresh real directory (its own symlinks resolved) with a workspace and a
 * sibling outside it; not under /tmp, which the presets make writable.
 */
const scratch = () => {
  mkdirSync(scratchRoot, { recursive: true })
  const base = realpathSync(mkdtempSync(join(scratchRoot, "policy-")))
  const workspace = join(base, "ws")
  const outside = join(base, "outside")
  mkdirSync(join(workspace, ".git"), { recursive: true })
  mkdirSync(outside)
  return { base, workspace, outside, [Symbol.dispose]: () => rmSync(base, { recursive: true, force: true }) }
}

const resolve = (context: Protocol.SandboxContext, tmpdirValue?: string) =>
  resolvePolicy(context, { tmpdir: tmpdirValue })

const refusal = (exit: Exit.Exit<ResolvedPolicy, SandboxRefused>): string | undefined =>
  Exit.isFailure(exit)
    ? exit.cause.reasons.flatMap((reason) => (reason._tag === "Fail" ? [reason.error.description] : []))[0]
    : undefined

describe("sandbox policy", () => {
  it.effect("workspace-write: the workspace writable, .git and the other protected names read-only, the rest read", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const wire = Sandbox.toWire(Sandbox.workspaceWrite(), dirs.workspace)!
      const policy = yield* resolve(wire)
      assert.strictEqual(policy.confinement, "full")
      assert.strictEqual(accessOf(policy, join(dirs.workspace, "src/main.ts")), "write")
      assert.strictEqual(accessOf(policy, join(dirs.workspace, ".git")), "read")
      assert.strictEqual(accessOf(policy, join(dirs.workspace, ".git/hooks/pre-commit")), "read")
      // protected whether or not they exist
      assert.strictEqual(accessOf(policy, join(dirs.workspace, ".codex/config.toml")), "read")
      assert.strictEqual(accessOf(policy, join(dirs.workspace, ".aws")), "read")
      assert.strictEqual(accessOf(policy, join(dirs.outside, "x")), "read")
      assert.strictEqual(accessOf(policy, "/tmp/anything"), "write")
      assert.strictEqual(accessOf(policy, "/etc/passwd"), "read")
      // the sandboxes' own registry of mount points is hidden from them, /tmp or not
      assert.isFalse(yield* canRead(policy, join(registryDirectory(), "claims")))
    }))

  it.effect("read-only: nothing writable, everything readable", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const policy = yield* resolve(Sandbox.toWire(Sandbox.readOnly(), dirs.workspace)!)
      assert.strictEqual(accessOf(policy, join(dirs.workspace, "a")), "read")
      assert.strictEqual(accessOf(policy, "/tmp/a"), "read")
      assert.isTrue(yield* canRead(policy, "/etc/hostname"))
      assert.isFalse(yield* canWrite(policy, join(dirs.workspace, "a")))
    }))

  it.effect("the most specific path wins; on a tie deny beats write beats read; no rule: denied", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const sub = join(dirs.workspace, "sub")
      const deep = join(sub, "deep")
      mkdirSync(deep, { recursive: true })
      const policy = yield* resolve(restricted([
        entry(special({ kind: "project_roots" }), "write"),
        entry(path(sub), "read"),
        entry(path(deep), "write"),
        entry(path(join(dirs.workspace, "tie")), "write"),
        entry(path(join(dirs.workspace, "tie")), "read"),
        entry(path(join(dirs.workspace, "tie")), "deny")
      ], [dirs.workspace]))
      assert.strictEqual(accessOf(policy, join(sub, "file")), "read")
      assert.strictEqual(accessOf(policy, join(deep, "file")), "write")
      assert.strictEqual(accessOf(policy, join(dirs.workspace, "tie/x")), "deny")
      assert.strictEqual(accessOf(policy, join(dirs.outside, "x")), "deny", "no rule covers it, and / is not listed")
      assert.strictEqual(accessOf(policy, "/etc/passwd"), "deny")
    }))

  it.effect("`none` is deny; a deny entry inside a readable root hides it", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const policy = yield* resolve(restricted([
        entry(special({ kind: "root" }), "read"),
        entry(path(dirs.outside), "none")
      ], []))
      assert.isFalse(yield* canRead(policy, join(dirs.outside, "secret")))
      assert.isTrue(yield* canRead(policy, join(dirs.workspace, "x")))
    }))

  it.effect("project_roots means the workspace roots only; with none it grants nothing", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const entries = [entry(special({ kind: "root" }), "read"), entry(special({ kind: "project_roots" }), "write")]
      const withRoots = yield* resolve(restricted(entries, [dirs.workspace, dirs.outside]))
      assert.isTrue(yield* canWrite(withRoots, join(dirs.outside, "x")))
      const withoutRoots = yield* resolve({ ...restricted(entries, []), cwd: dirs.workspace })
      assert.isFalse(yield* canWrite(withoutRoots, join(dirs.workspace, "x")), "cwd is not a project root")
    }))

  it.effect("project_roots subpaths join each root; one that leaves its root is refused", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      mkdirSync(join(dirs.workspace, "build"))
      const policy = yield* resolve(restricted([
        entry(special({ kind: "root" }), "read"),
        entry(special({ kind: "project_roots", subpath: "build" }), "write")
      ], [dirs.workspace]))
      assert.isTrue(yield* canWrite(policy, join(dirs.workspace, "build/out.o")))
      assert.isFalse(yield* canWrite(policy, join(dirs.workspace, "src.c")))
      const escaping = yield* Effect.exit(resolve(restricted([
        entry(special({ kind: "project_roots", subpath: "../outside" }), "write")
      ], [dirs.workspace])))
      assert.match(refusal(escaping) ?? "", /leaves its root/)
    }))

  it.effect("tmpdir is the command's TMPDIR; slash_tmp is /tmp", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const entries = [
        entry(special({ kind: "root" }), "read"),
        entry(special({ kind: "tmpdir" }), "write"),
        entry(special({ kind: "slash_tmp" }), "write")
      ]
      const policy = yield* resolve(restricted(entries, []), dirs.outside)
      assert.isTrue(yield* canWrite(policy, join(dirs.outside, "t")))
      assert.isTrue(yield* canWrite(policy, "/tmp/t"))
      const noTmpdir = yield* resolve(restricted(entries, []))
      assert.isFalse(yield* canWrite(noTmpdir, join(dirs.workspace, "t")))
    }))

  it.effect("symlinks resolve: a link into a read-only place is read-only, a linked root is its target", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      symlinkSync(dirs.outside, join(dirs.workspace, "escape"))
      const linkedRoot = join(dirs.base, "linked-ws")
      symlinkSync(dirs.workspace, linkedRoot)
      const policy = yield* resolve(Sandbox.toWire(Sandbox.workspaceWrite({ roots: [linkedRoot] }), linkedRoot)!)
      assert.isFalse(
        yield* canWrite(policy, join(dirs.workspace, "escape/file")),
        "the link leads outside the workspace"
      )
      assert.isTrue(yield* canWrite(policy, join(linkedRoot, "new/file")), "a missing path below a linked root")
      assert.isFalse(yield* canWrite(policy, join(linkedRoot, ".git/config")))
      assert.strictEqual(yield* Effect.promise(() => realPathOf(join(linkedRoot, "a/b"))), join(dirs.workspace, "a/b"))
    }))

  it.effect("a write root that does not exist grants nothing; a write entry narrowed nowhere is full disk write", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const missing = yield* resolve(restricted([
        entry(special({ kind: "root" }), "read"),
        entry(path(join(dirs.base, "not-yet")), "write")
      ], []))
      assert.isFalse(yield* canWrite(missing, join(dirs.base, "not-yet/x")))
      const wholeDisk = yield* resolve(restricted([entry(special({ kind: "root" }), "write")], [], "restricted"))
      assert.strictEqual(wholeDisk.confinement, "network")
      const narrowed = yield* resolve(restricted([
        entry(special({ kind: "root" }), "write"),
        entry(path(dirs.outside), "read")
      ], []))
      assert.strictEqual(narrowed.confinement, "full")
      assert.isFalse(yield* canWrite(narrowed, join(dirs.outside, "x")))
      assert.isTrue(yield* canWrite(narrowed, join(dirs.workspace, "x")))
    }))

  it.effect("confinement: none for disabled and for full access with the network on; network for external", () =>
    Effect.gen(function*() {
      const base = { windowsSandboxLevel: "disabled" } as const
      const confinement = (permissions: Protocol.SandboxPermissions) =>
        Effect.map(resolve({ ...base, permissions }), (policy) => policy.confinement)
      assert.strictEqual(yield* confinement({ type: "disabled" }), "none")
      assert.strictEqual(yield* confinement({ type: "external", network: "enabled" }), "none")
      assert.strictEqual(yield* confinement({ type: "external", network: "restricted" }), "network")
      assert.strictEqual(
        yield* confinement({ type: "managed", file_system: { type: "unrestricted" }, network: "enabled" }),
        "none"
      )
      assert.strictEqual(
        yield* confinement({ type: "managed", file_system: { type: "unrestricted" }, network: "restricted" }),
        "network"
      )
    }))

  it.effect("minimal is the system's read set, where / is not readable", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const policy = yield* resolve(restricted([
        entry(special({ kind: "minimal" }), "read"),
        entry(special({ kind: "project_roots" }), "write")
      ], [dirs.workspace]))
      assert.isTrue(yield* canRead(policy, "/usr/bin/env"))
      assert.isTrue(yield* canRead(policy, "/etc/passwd"))
      assert.isFalse(yield* canRead(policy, join(dirs.outside, "x")))
      assert.isTrue(yield* canWrite(policy, join(dirs.workspace, "x")))
    }))

  it.effect("refuses what it cannot enforce as written, and ignores only what narrows access", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const refused = (entries: ReadonlyArray<Protocol.SandboxEntry>, extra: Partial<Protocol.SandboxContext> = {}) =>
        Effect.map(Effect.exit(resolve({ ...restricted(entries, [dirs.workspace]), ...extra })), refusal)
      const root = entry(special({ kind: "root" }), "read")
      assert.match(
        (yield* refused([root, entry({ type: "glob_pattern", pattern: "**/*.env" }, "deny")])) ?? "",
        /glob_pattern/
      )
      assert.match(
        (yield* refused([root, entry(special({ kind: "unknown", path: ":future" }), "deny")])) ?? "",
        /future/
      )
      assert.match(
        (yield* refused([root, entry(special({ kind: "project_roots" }), "write")], { useLegacyLandlock: true })) ?? "",
        /useLegacyLandlock/
      )
      // ignoring these narrows access: a write glob (Codex gives it no effect), an unknown special path to write
      assert.isUndefined(yield* refused([root, entry({ type: "glob_pattern", pattern: "/tmp/*" }, "write")]))
      assert.isUndefined(yield* refused([root, entry(special({ kind: "unknown", path: ":future" }), "write")]))
    }))

  it.effect("a protected name that is a symlink is refused: it could be re-pointed", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      symlinkSync(dirs.outside, join(dirs.workspace, ".codex"))
      const exit = yield* Effect.exit(resolve(Sandbox.toWire(Sandbox.workspaceWrite(), dirs.workspace)!))
      assert.match(refusal(exit) ?? "", /\.codex is a symlink/)
    }))

  it.effect("a worktree's .git file protects the git directory it points to", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      rmSync(join(dirs.workspace, ".git"), { recursive: true })
      const gitDir = join(dirs.base, "main-repo/.git/worktrees/ws")
      mkdirSync(gitDir, { recursive: true })
      writeFileSync(join(dirs.workspace, ".git"), `gitdir: ${gitDir}\n`)
      const policy = yield* resolve(
        Sandbox.toWire(Sandbox.workspaceWrite({ roots: [dirs.workspace, dirs.base] }), dirs.workspace)!
      )
      assert.isFalse(yield* canWrite(policy, join(gitDir, "HEAD")))
      assert.isTrue(yield* canWrite(policy, join(dirs.base, "other")))
    }))

  it.effect("hidden paths deny everything at and below them, whatever a more specific rule grants", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const hidden = join(dirs.base, "registry")
      const below = join(hidden, "granted")
      mkdirSync(below, { recursive: true })
      const policy = yield* resolvePolicy(
        restricted([entry(special({ kind: "root" }), "read"), entry(path(below), "write")], [dirs.workspace]),
        { tmpdir: undefined, hidden: [hidden] }
      )
      assert.strictEqual(accessOf(policy, join(below, "f")), "deny")
      assert.strictEqual(accessOf(policy, hidden), "deny")
      assert.strictEqual(denialOf(policy, join(below, "f")), "EACCES")
      // the sandbox mounts nothing below the hidden path: no bind of the granted directory inside it
      const layout = yield* mountLayout(policy)
      assert.deepStrictEqual(
        layout.ops.filter((op) => op.path.startsWith(hidden)),
        [{ path: hidden, access: "deny" }]
      )
    }))

  it.effect("a missing path kept from a writable root gets a placeholder at its first missing component only", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const cache = join(dirs.workspace, "cache")
      const policy = yield* resolve(restricted([
        entry(special({ kind: "root" }), "read"),
        entry(special({ kind: "project_roots" }), "write"),
        entry(path(join(cache, "keys")), "deny"),
        entry(path(join(cache, "certs/pem")), "read"),
        entry(path(join(dirs.outside, "ghost")), "deny")
      ], [dirs.workspace]))
      const layout = yield* mountLayout(policy)
      // the protected names that do not exist (.agents, .codex, .aws) and the cache; nothing outside the workspace
      assert.deepStrictEqual(
        [...layout.placeholders].sort(),
        [".agents", ".aws", "cache", ".codex"].map((name) => join(dirs.workspace, name)).sort()
      )
      assert.deepStrictEqual(layout.ops.filter((op) => op.path.startsWith(cache)), [{ path: cache, access: "deny" }])
    }))

  it.effect("a denied directory hides what rules below it grant, as its unreadable mount does; no rule: not there", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const open = join(dirs.outside, "open")
      mkdirSync(open)
      const entries = [
        entry(special({ kind: "project_roots" }), "write"),
        entry(path(dirs.outside), "deny"),
        entry(path(open), "write")
      ]
      const policy = yield* resolve(
        restricted([entry(special({ kind: "root" }), "read"), ...entries], [dirs.workspace])
      )
      // the sandbox mounts the denied directory unreadable: what is below cannot be reached
      assert.strictEqual(accessOf(policy, join(open, "f")), "deny")
      assert.strictEqual(denialOf(policy, join(open, "f")), "EACCES")
      assert.strictEqual(denialOf(policy, dirs.outside), "EACCES")
      assert.strictEqual(accessOf(policy, join(dirs.workspace, "f")), "write")
      // where / is not readable, a denied directory is not mounted at all, and what is below it is mounted as asked
      const rootless = yield* resolve(restricted(entries, [dirs.workspace]))
      assert.strictEqual(accessOf(rootless, join(open, "f")), "write")
      // no rule covers /etc: nothing is mounted there
      assert.strictEqual(accessOf(rootless, "/etc/passwd"), "deny")
      assert.strictEqual(denialOf(rootless, "/etc/passwd"), "ENOENT")
    }))

  it.effect("refuses a path longer than PATH_MAX, and a policy naming more paths than it may hold", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const root = entry(special({ kind: "root" }), "read")
      const long = join(dirs.base, "a".repeat(200), ..."b".repeat(30).split("").map(() => "c".repeat(200)))
      assert.match(
        refusal(yield* Effect.exit(resolve(restricted([root, entry(path(long), "deny")], [dirs.workspace])))) ?? "",
        /a path of \d+ bytes .*longer than any this host opens/
      )
      // 200 project_roots subpaths over 3 roots: 600 paths
      const roots = [0, 1, 2].map((i) => join(dirs.base, `root${i}`))
      const many = Array.from(
        { length: 200 },
        (_, i) => entry(special({ kind: "project_roots", subpath: `s${i}` }), "deny")
      )
      assert.match(
        refusal(yield* Effect.exit(resolve(restricted([root, ...many], roots)))) ?? "",
        /a policy that names more than 264 paths/
      )
    }))

  it.effect("resolves the existing part of a deep path and keeps the rest as written, links included", () =>
    Effect.gen(function*() {
      const real = (path: string) => Effect.promise(() => realPathOf(path))
      using dirs = scratch()
      mkdirSync(join(dirs.outside, "x/y"), { recursive: true })
      symlinkSync(dirs.outside, join(dirs.workspace, "link"))
      const missing = Array.from({ length: 1_500 }, (_, i) => `m${i % 7}`).join("/")
      assert.strictEqual(yield* real(join(dirs.workspace, "link/x/y", missing)), join(dirs.outside, "x/y", missing))
      assert.strictEqual(yield* real(join(dirs.workspace, "link/x/y")), join(dirs.outside, "x/y"))
      assert.strictEqual(yield* real(join(dirs.workspace, "link/nothing")), join(dirs.outside, "nothing"))
      assert.strictEqual(yield* real("/no-such-top/a/b"), "/no-such-top/a/b")
      assert.strictEqual(yield* real("/"), "/")
      // a file in the middle resolves no further: what is below it is kept as written
      writeFileSync(join(dirs.outside, "file"), "")
      assert.strictEqual(yield* real(join(dirs.workspace, "link/file/below")), join(dirs.outside, "file/below"))
    }))

  it.effect("reads only the head of a .git file, however large a client made it", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      rmSync(join(dirs.workspace, ".git"), { recursive: true })
      const gitDir = join(dirs.base, "main-repo/.git/worktrees/ws")
      mkdirSync(gitDir, { recursive: true })
      // 64 MiB of newlines after the line git writes
      writeFileSync(
        join(dirs.workspace, ".git"),
        Buffer.concat([Buffer.from(`gitdir: ${gitDir}\n`), Buffer.alloc(64 * 1024 * 1024, 10)])
      )
      const policy = yield* resolve(
        Sandbox.toWire(Sandbox.workspaceWrite({ roots: [dirs.workspace, dirs.base] }), dirs.workspace)!
      )
      assert.isFalse(yield* canWrite(policy, join(gitDir, "HEAD")), "the git directory it points to stays protected")
      assert.isTrue(yield* canWrite(policy, join(dirs.base, "other")))
    }))

  it.effect("a tree is readable with no denied path inside it, writable with nothing read-only or hidden inside", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const secret = join(dirs.workspace, "src/secret")
      const docs = join(dirs.workspace, "docs")
      mkdirSync(secret, { recursive: true })
      mkdirSync(docs)
      const policy = yield* resolve(restricted([
        entry(special({ kind: "root" }), "read"),
        entry(special({ kind: "project_roots" }), "write"),
        entry(path(secret), "deny"),
        entry(path(join(docs, "published")), "read")
      ], [dirs.workspace]))
      assert.isFalse(canReadTree(policy, dirs.workspace), "a denied directory inside")
      assert.isFalse(canReadTree(policy, join(dirs.workspace, "src")))
      assert.isFalse(canReadTree(policy, secret))
      assert.isTrue(canReadTree(policy, docs))
      assert.isTrue(canReadTree(policy, dirs.outside))
      assert.isFalse(canWriteTree(policy, dirs.workspace), ".git and a denied directory inside")
      assert.isFalse(canWriteTree(policy, join(dirs.workspace, "src")), "a denied directory inside")
      assert.isFalse(canWriteTree(policy, docs), "a read-only path inside, existing or not")
      assert.isTrue(canWriteTree(policy, join(docs, "drafts")))
      assert.isFalse(canWriteTree(policy, join(dirs.workspace, ".git")))
      assert.isFalse(canWriteTree(policy, dirs.outside), "read-only itself")
      // a protected name inside a tree that no rule narrows
      const nested = yield* resolve(restricted([
        entry(special({ kind: "root" }), "read"),
        entry(path(dirs.base), "write")
      ], []))
      assert.isTrue(canWriteTree(nested, dirs.outside))
      assert.isFalse(canWriteTree(nested, dirs.base), "its .codex, .git… are read-only")
      // a policy that confines no file access: every tree
      const unconfined = yield* resolve({ permissions: { type: "disabled" }, windowsSandboxLevel: "disabled" })
      assert.isTrue(canReadTree(unconfined, "/"))
      assert.isTrue(canWriteTree(unconfined, "/"))
    }))

  it.effect("each special path: cwd is the workspace roots, an empty subpath is the roots, a relative TMPDIR nothing", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const root = entry(special({ kind: "root" }), "read")
      const cwd = yield* resolve(restricted([root, entry(special({ kind: "current_working_directory" }), "write")], [
        dirs.workspace
      ]))
      assert.strictEqual(accessOf(cwd, join(dirs.workspace, "x")), "write")
      assert.strictEqual(accessOf(cwd, join(dirs.outside, "x")), "read")
      const emptySubpath = yield* resolve(
        restricted([root, entry(special({ kind: "project_roots", subpath: "" }), "write")], [dirs.workspace])
      )
      assert.strictEqual(accessOf(emptySubpath, join(dirs.workspace, "x")), "write")
      const relative = yield* resolve(restricted([root, entry(special({ kind: "tmpdir" }), "write")], []), "tmp")
      assert.strictEqual(relative.confinement, "full")
      assert.deepStrictEqual(relative.rules.filter((rule) => rule.access === "write"), [])
    }))

  it.effect("refuses a read glob, a denied minimal set, an absolute subpath, and more entries than it holds", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const refused = (entries: ReadonlyArray<Protocol.SandboxEntry>) =>
        Effect.map(Effect.exit(resolve(restricted(entries, [dirs.workspace]))), refusal)
      const root = entry(special({ kind: "root" }), "read")
      assert.match((yield* refused([root, entry({ type: "glob_pattern", pattern: "*.pem" }, "read")])) ?? "", /glob/)
      assert.match((yield* refused([root, entry(special({ kind: "minimal" }), "none")])) ?? "", /minimal read set/)
      assert.match(
        (yield* refused([root, entry(special({ kind: "project_roots", subpath: "/etc" }), "write")])) ?? "",
        /"\/etc" is not relative/
      )
      const entries = (count: number) =>
        Array.from({ length: count }, (_, i) => entry(path(join(dirs.outside, `e${i}`)), "deny"))
      assert.isUndefined(yield* refused(entries(256)))
      assert.strictEqual(yield* refused(entries(257)), "a policy of 257 entries (at most 256)")
    }))

  it.effect("refuses a path of more than 4096 bytes, not one of exactly 4096", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const root = entry(special({ kind: "root" }), "read")
      const ofLength = (bytes: number) => {
        const head = join(dirs.outside, "p")
        const rest = bytes - head.length - 1
        return join(
          head,
          ...Array.from({ length: Math.ceil(rest / 201) }, (_, i) => "d".repeat(Math.min(200, rest - i * 201)))
        )
      }
      assert.strictEqual(Buffer.byteLength(ofLength(4096)), 4096)
      const exit = (bytes: number) => Effect.exit(resolve(restricted([root, entry(path(ofLength(bytes)), "deny")], [])))
      assert.isUndefined(refusal(yield* exit(4096)))
      assert.strictEqual(
        refusal(yield* exit(4097)),
        `a path of 4097 bytes (${JSON.stringify(ofLength(4097).slice(0, 64))}…): longer than any this host opens`
      )
    }))

  it.effect("the minimal set only where / is not readable; a write narrowed only by a rule it overrides is full disk", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      const minimal = entry(special({ kind: "minimal" }), "read")
      const writable = yield* resolve(restricted([
        entry(special({ kind: "root" }), "write"),
        minimal,
        entry(path(dirs.outside), "deny")
      ], []))
      assert.strictEqual(accessOf(writable, "/etc/passwd"), "write", "not narrowed to the read set")
      assert.deepStrictEqual(writable.links, [])
      const overridden = yield* resolve(restricted([
        entry(special({ kind: "root" }), "write"),
        entry(path(dirs.outside), "read"),
        entry(path(dirs.outside), "write")
      ], []))
      assert.strictEqual(overridden.confinement, "network")
    }))

  it.effect("a .git file's relative gitdir is read from the worktree's directory", () =>
    Effect.gen(function*() {
      using dirs = scratch()
      rmSync(join(dirs.workspace, ".git"), { recursive: true })
      const gitDir = join(dirs.base, "main-repo/.git/worktrees/ws")
      mkdirSync(gitDir, { recursive: true })
      writeFileSync(join(dirs.workspace, ".git"), "gitdir: ../main-repo/.git/worktrees/ws\n")
      const policy = yield* resolve(
        Sandbox.toWire(Sandbox.workspaceWrite({ roots: [dirs.workspace, dirs.base] }), dirs.workspace)!
      )
      assert.isTrue(policy.protectedPaths.includes(gitDir))
      assert.strictEqual(accessOf(policy, join(gitDir, "HEAD")), "read")
    }))
})
