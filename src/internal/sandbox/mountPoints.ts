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
 * @internal
 */
import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"

/** The registry directory of this user: private, and hidden in every sandbox. */
export const registryDirectory = (): string =>
  NodePath.join(NodeOs.tmpdir(), `effect-exec-mounts-${process.getuid?.() ?? "user"}`)

const errorCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errorCode(error) === "EPERM"
  }
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
   * Throws a message naming what is wrong.
   */
  prepare(): void {
    try {
      NodeFs.mkdirSync(this.directory, { mode: 0o700 })
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error
    }
    const stats = NodeFs.lstatSync(this.directory)
    if (!stats.isDirectory() || stats.uid !== process.getuid?.() || (stats.mode & 0o077) !== 0) {
      throw new Error(`${this.directory} is not a private directory of this user`)
    }
  }

  private keyOf(path: string): string {
    return createHash("sha256").update(path).digest("hex").slice(0, 32)
  }

  /**
   * Claims `paths` for one sandbox, creating those that are missing as empty
   * directories. Returns the release, which must run once the sandbox is gone.
   * Throws when a path cannot be created (what was claimed is released).
   */
  claim(paths: ReadonlyArray<string>): () => void {
    const released: Array<() => void> = []
    const releaseAll = () => {
      for (const release of released.splice(0)) release()
    }
    try {
      for (const path of paths) released.push(this.claimOne(path))
    } catch (error) {
      releaseAll()
      throw error
    }
    return releaseAll
  }

  private claimOne(path: string): () => void {
    const key = this.keyOf(path)
    const claimsDirectory = NodePath.join(this.directory, `${key}.claims`)
    const marker = NodePath.join(this.directory, `${key}.made`)
    const claim = NodePath.join(claimsDirectory, `${process.pid}-${++claims}`)
    NodeFs.mkdirSync(claimsDirectory, { recursive: true, mode: 0o700 })
    NodeFs.writeFileSync(claim, "")
    try {
      NodeFs.mkdirSync(path)
      NodeFs.writeFileSync(marker, path)
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
      NodeFs.rmdirSync(path)
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
