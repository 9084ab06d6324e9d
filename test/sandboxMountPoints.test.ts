/**
 * Mount points created on the host for a sandbox: removed once the last
 * sandbox using them is gone, never while one is, never when they were not
 * ours or got content. Real directories; the registry is a private scratch
 * directory per test.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { MountPoints } from "../src/internal/sandbox/mountPoints.ts"
import { scratchDir } from "./support/sandbox.ts"

const setup = (label: string) => {
  const dir = scratchDir(label)
  const mountPoints = new MountPoints(join(dir.path, "registry"))
  mountPoints.prepare()
  const workspace = join(dir.path, "ws")
  mkdirSync(workspace)
  return { dir, mountPoints, workspace }
}

describe("sandbox mount points", () => {
  it("creates a missing path and removes it after the last of two claims", () => {
    const { dir, mountPoints, workspace } = setup("claims")
    using _ = dir
    const path = join(workspace, ".codex")
    const first = mountPoints.claim([path])
    const second = mountPoints.claim([path])
    assert.isTrue(existsSync(path))
    first()
    assert.isTrue(existsSync(path), "still used by the second sandbox")
    first()
    assert.isTrue(existsSync(path), "a release runs once")
    second()
    assert.isFalse(existsSync(path))
  })

  it("never removes a path it did not create, even when empty", () => {
    const { dir, mountPoints, workspace } = setup("theirs")
    using _ = dir
    const path = join(workspace, ".git")
    mkdirSync(path)
    mountPoints.claim([path])()
    assert.isTrue(existsSync(path))
  })

  it("leaves a path it created once it has content", () => {
    const { dir, mountPoints, workspace } = setup("content")
    using _ = dir
    const path = join(workspace, ".agents")
    const release = mountPoints.claim([path])
    writeFileSync(join(path, "skill.md"), "written on the host meanwhile")
    release()
    assert.isTrue(existsSync(join(path, "skill.md")))
    // and forgets it was ours: a later claim and release leave it too
    mountPoints.claim([path])()
    assert.isTrue(existsSync(join(path, "skill.md")))
  })

  it("ignores the claims of a process that died without releasing", () => {
    const { dir, mountPoints, workspace } = setup("dead")
    using _ = dir
    const path = join(workspace, ".aws")
    const release = mountPoints.claim([path])
    // a claim left by a process that is gone (its pid no longer exists)
    const dead = spawnSync("true").pid!
    const claims = readdirSync(mountPoints.directory).find((name) => name.endsWith(".claims"))!
    writeFileSync(join(mountPoints.directory, claims, `${dead}-1`), "")
    release()
    assert.isFalse(existsSync(path))
  })

  it("refuses a registry that is not private", () => {
    const dir = scratchDir("shared")
    using _ = dir
    const registry = join(dir.path, "registry")
    mkdirSync(registry, { mode: 0o777 })
    spawnSync("chmod", ["777", registry])
    assert.throws(() => new MountPoints(registry).prepare(), /not a private directory/)
  })
})
