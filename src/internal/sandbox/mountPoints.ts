/**
 * Mount points a sandbox needs on the host. To keep a missing `.git` (or any
 * path a policy keeps read-only or hidden inside a writable root) from being
 * created by the sandboxed command, something must be mounted on it, and a
 * mount needs its target to exist: so the path is created on the host, as an
 * empty directory, before the sandbox starts.
 *
 * Such a path must be removed once no sandbox uses it, and never while one
 * does: removing a mount point on the host detaches the mount in every
 * sandbox using it, and the command there could then create the path. So
 * every use is a claim, a file in a registry directory the sandboxes cannot
 * see (each sandbox hides it), shared by every process of this user:
 *
 * - claim: create the claim file, then create the path if it is missing (and
 *   record that we made it);
 * - release: delete the claim and the claims of dead processes, then remove
 *   the claims directory, which only succeeds when it is empty (no other
 *   sandbox uses the path); only then remove the path, if we made it and it is
 *   still empty.
 *
 * Within this process that is exact. Between processes a claim made between
 * the last check and the removal of the path (two system calls) could lose
 * its mask.
 *
 * A path is created and removed in its parent directory held open and checked
 * to be where the policy said (`pinned`): a sandboxed command that swaps a
 * component of it for a link meanwhile cannot make this process create or
 * remove a directory anywhere else. Claims (on a start's path) are
 * asynchronous; a release runs when a sandbox is gone, a few system calls.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeFsPromises from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { pin, splitPath, using } from "../fs/pinned.ts"
import { isAlive } from "../liveProcess.ts"

/** The registry directory of this user: private, and hidden in every sandbox. */
export const registryDirectory = (): string =>
  NodePath.join(NodeOs.tmpdir(), `effect-exec-mounts-${process.getuid?.() ?? "user"}`)

const errorCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined

/** `O_PATH` (Linux): a descriptor that only names a directory. */
const openPathOnly = 0o10000000

/**
 * Removes the empty directory `path` in its parent held open, if that parent
 * is still where `path` says; fails as `rmdir` does (`ENOTEMPTY`, `ENOENT`).
 */
const removeDirectoryIn = (path: string): void => {
  const split = splitPath(path)
  if (split === undefined) return
  const parent = NodeFs.openSync(split.parent, openPathOnly | NodeFs.constants.O_DIRECTORY)
  try {
    if (NodeFs.readlinkSync(`/proc/self/fd/${parent}`) !== split.parent) {
      throw Object.assign(new Error(`${split.parent} moved`), { code: "ENOENT" })
    }
    NodeFs.rmdirSync(`/proc/self/fd/${parent}/${split.name}`)
  } finally {
    NodeFs.closeSync(parent)
  }
}

/** Creates the directory `path` in its parent held open, checked to be where `path` says. */
const makeDirectoryIn = async (path: string): Promise<void> => {
  const split = splitPath(path)
  if (split === undefined) throw Object.assign(new Error("/ exists"), { code: "EEXIST" })
  const parent = await pin(split.parent, { directory: true })
  await using(parent, async () => {
    if (parent.real !== split.parent) throw new Error(`${split.parent} is not where the policy saw it`)
    await NodeFsPromises.mkdir(parent.child(split.name))
  })
}

let claims = 0

/** The mount points of every sandbox this process starts (one registry per user). */
export class MountPoints {
  readonly directory: string

  constructor(directory: string = registryDirectory()) {
    this.directory = directory
  }

  /**
   * Makes sure the registry exists and is ours alone (it lives in a shared
   * temporary directory, so anyone could have put something there first).
   * Fails with a message naming what is wrong.
   */
  prepare(): Effect.Effect<void, Error> {
    return Effect.tryPromise({
      try: async () => {
        await NodeFsPromises.mkdir(this.directory, { mode: 0o700 }).catch((error) => {
          if (errorCode(error) !== "EEXIST") throw error
        })
        const stats = await NodeFsPromises.lstat(this.directory)
        if (!stats.isDirectory() || stats.uid !== process.getuid?.() || (stats.mode & 0o077) !== 0) {
          throw new Error(`${this.directory} is not a private directory of this user`)
        }
      },
      catch: (error) => error instanceof Error ? error : new Error(String(error))
    })
  }

  private keyOf(path: string): string {
    return createHash("sha256").update(path).digest("hex").slice(0, 32)
  }

  /**
   * Claims `paths` (real paths) for one sandbox, creating those that are
   * missing as empty directories; `hold` receives each release as soon as
   * there is something to give back, and the release must run once the
   * sandbox is gone. Fails when a path cannot be created (what was claimed is
   * released). Not interruptible: a claim is whole or given back.
   */
  claim(paths: ReadonlyArray<string>, hold: (release: () => void) => void): Effect.Effect<void, Error> {
    return Effect.uninterruptible(Effect.tryPromise({
      try: async () => {
        const released: Array<() => void> = []
        try {
          for (const path of paths) released.push(await this.claimOne(path))
        } catch (error) {
          for (const release of released) release()
          throw error
        }
        for (const release of released) hold(release)
      },
      catch: (error) => error instanceof Error ? error : new Error(String(error))
    }))
  }

  private async claimOne(path: string): Promise<() => void> {
    const key = this.keyOf(path)
    const claimsDirectory = NodePath.join(this.directory, `${key}.claims`)
    const marker = NodePath.join(this.directory, `${key}.made`)
    const claim = NodePath.join(claimsDirectory, `${process.pid}-${++claims}`)
    await NodeFsPromises.mkdir(claimsDirectory, { recursive: true, mode: 0o700 })
    await NodeFsPromises.writeFile(claim, "")
    try {
      await makeDirectoryIn(path)
      await NodeFsPromises.writeFile(marker, path)
    } catch (error) {
      if (errorCode(error) !== "EEXIST") {
        this.release(claim, claimsDirectory, marker, path)
        throw error
      }
    }
    let done = false
    return () => {
      if (done) return
      done = true
      this.release(claim, claimsDirectory, marker, path)
    }
  }

  private release(claim: string, claimsDirectory: string, marker: string, path: string): void {
    try {
      NodeFs.rmSync(claim, { force: true })
      for (const other of NodeFs.readdirSync(claimsDirectory)) {
        const pid = Number(other.split("-")[0])
        if (pid !== process.pid && Number.isInteger(pid) && !isAlive(pid)) {
          NodeFs.rmSync(NodePath.join(claimsDirectory, other), { force: true })
        }
      }
      // succeeds only when no claim is left: nobody else uses the path
      NodeFs.rmdirSync(claimsDirectory)
      if (!NodeFs.existsSync(marker) || NodeFs.existsSync(claimsDirectory)) return
      removeDirectoryIn(path)
      NodeFs.rmSync(marker, { force: true })
    } catch (error) {
      // ENOTEMPTY: still claimed, or the path got content (then it is no longer ours to remove);
      // ENOENT: somebody removed it already
      const code = errorCode(error)
      const settled = code === "ENOENT" ? !NodeFs.existsSync(path) : code === "ENOTEMPTY" && NodeFs.existsSync(path)
      if (settled && !NodeFs.existsSync(claimsDirectory)) NodeFs.rmSync(marker, { force: true })
    }
  }
}
