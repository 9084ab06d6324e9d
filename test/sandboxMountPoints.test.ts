/**
 * Mount points created on the host for a sandbox: removed once the last
 * sandbox using them is gone, never while one is, never when they were not
 * ours or got content. Real directories; the registry is a private scratch
 * directory per test.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Holdings } from "../src/internal/local/localProcess.ts"
import { MountPoints } from "../src/internal/sandbox/mountPoints.ts"
import { scratchDir } from "./support/sandbox.ts"

const setup = (label: string) =>
  Effect.gen(function*() {
    const dir = scratchDir(label)
    const mountPoints = new MountPoints(join(dir.path, "registry"))
    yield* mountPoints.prepare()
    const workspace = join(dir.path, "ws")
    mkdirSync(workspace)
    /** Claims `paths` for one sandbox; returns its release. */
    const claim = (paths: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const holdings = new Holdings()
        yield* mountPoints.claim(paths, holdings.hold)
        return () => holdings.releaseAll()
      })
    return { dir, mountPoints, workspace, claim }
  })

describe("sandbox mount points", () => {
  it.effect("creates a missing path and removes it after the last of two claims", () =>
    Effect.gen(function*() {
      const { claim, dir, workspace } = yield* setup("claims")
      using _ = dir
      const path = join(workspace, ".codex")
      const first = yield* claim([path])
      const second = yield* claim([path])
      assert.isTrue(existsSync(path))
      first()
      assert.isTrue(existsSync(path), "still used by the second sandbox")
      first()
      assert.isTrue(existsSync(path), "a release runs once")
      second()
      assert.isFalse(existsSync(path))
    }))

  it.effect("never removes a path it did not create, even when empty", () =>
    Effect.gen(function*() {
      const { claim, dir, workspace } = yield* setup("theirs")
      using _ = dir
      const path = join(workspace, ".git")
      mkdirSync(path)
      ;(yield* claim([path]))()
      assert.isTrue(existsSync(path))
    }))

  it.effect("leaves a path it created once it has content", () =>
    Effect.gen(function*() {
      const { claim, dir, workspace } = yield* setup("content")
      using _ = dir
      const path = join(workspace, ".agents")
      const release = yield* claim([path])
      writeFileSync(join(path, "skill.md"), "written on the host meanwhile")
      release()
      assert.isTrue(existsSync(join(path, "skill.md"))) // and forgets it was ours: a later claim and release leave it too
      ;(yield* claim([path]))()
      assert.isTrue(existsSync(join(path, "skill.md")))
    }))

  it.effect("ignores the claims of a process that died without releasing", () =>
    Effect.gen(function*() {
      const { claim, dir, mountPoints, workspace } = yield* setup("dead")
      using _ = dir
      const path = join(workspace, ".aws")
      const release = yield* claim([path])
      // a claim left by a process that is gone (its pid no longer exists)
      const dead = spawnSync("true").pid!
      const claims = readdirSync(mountPoints.directory).find((name) => name.endsWith(".claims"))!
      writeFileSync(join(mountPoints.directory, claims, `${dead}-1`), "")
      release()
      assert.isFalse(existsSync(path))
    }))

  it.effect("refuses a registry that is not private", () =>
    Effect.gen(function*() {
      const dir = scratchDir("shared")
      using _ = dir
      const registry = join(dir.path, "registry")
      mkdirSync(registry, { mode: 0o777 })
      spawnSync("chmod", ["777", registry])
      const error = yield* Effect.flip(new MountPoints(registry).prepare())
      assert.match(error.message, /not a private directory/)
    }))

  it.effect("creates a registry of its own, private; refuses a file, a link or a group-readable directory there", () =>
    Effect.gen(function*() {
      const dir = scratchDir("registry")
      using _ = dir
      const fresh = join(dir.path, "fresh")
      yield* new MountPoints(fresh).prepare()
      assert.strictEqual(statSync(fresh).mode & 0o777, 0o700)
      yield* new MountPoints(fresh).prepare()
      const file = join(dir.path, "file")
      writeFileSync(file, "", { mode: 0o600 })
      const link = join(dir.path, "link")
      symlinkSync(fresh, link)
      const grouped = join(dir.path, "grouped")
      mkdirSync(grouped)
      spawnSync("chmod", ["750", grouped])
      for (const registry of [file, link, grouped]) {
        const error = yield* Effect.flip(new MountPoints(registry).prepare())
        assert.strictEqual(error.message, `${registry} is not a private directory of this user`)
      }
    }))

  it.effect("creates nothing through a parent swapped for a link, and gives back what it claimed before", () =>
    Effect.gen(function*() {
      const { claim, dir, workspace } = yield* setup("swapped")
      using _ = dir
      const elsewhere = join(dir.path, "elsewhere")
      mkdirSync(elsewhere)
      symlinkSync(elsewhere, join(workspace, "linked"))
      const first = join(workspace, ".codex")
      const error = yield* Effect.flip(claim([first, join(workspace, "linked", ".git")]))
      assert.match(error.message, /is not where the policy saw it/)
      assert.deepStrictEqual(readdirSync(elsewhere), [])
      assert.isFalse(existsSync(first), "the first claim given back")
    }))
})
