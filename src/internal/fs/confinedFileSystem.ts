/**
 * The `fs/*` operations under a sandbox policy, enforced in this process so
 * that a path no sandboxed process could reach is not reached by a file call
 * either, whatever links a sandboxed process (or anyone) made or swaps while
 * the call runs. Codex runs these calls in a helper inside the same sandbox
 * (about 100 ms a call, measured); here every object is reached through a
 * descriptor held open, and checked where the kernel says it really is
 * (`pinned`):
 *
 * - an object that is read (a file, a directory, metadata) is reached one
 *   name at a time, as the kernel would, each link read only where it is
 *   visible, through no directory the sandbox hides, and its real path
 *   checked before a byte is read;
 * - an object that is created, written or removed is looked up as one name in
 *   its directory, held open and checked; the name is never followed (a link
 *   there is read, and its target taken through the same steps, at most 40
 *   times, as the kernel would), and the operation itself follows no link;
 * - a tree (a recursive removal or copy) is walked one held directory at a
 *   time, each checked, never by path.
 *
 * So a race can only change which object is reached, never let an unchecked
 * one be touched: an object moved after its check was moved by someone who
 * could write both places. Refusals are the errors a confined process would
 * meet: "Read-only file system" for a path it may only read, "Permission
 * denied" for a hidden one, "No such file or directory" where the sandbox has
 * nothing mounted.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { constants as fsConstants } from "node:fs"
import * as NodeFs from "node:fs/promises"
import { type ExecutorError, InvalidRequest } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { accessOf, canReadTree, canWriteTree, denialOf, type ResolvedPolicy } from "../sandbox/policy.ts"
import { intoItself, needsRecursive, onlyRegularFiles } from "./copy.ts"
import { checkPath, type FileOperations, type HostFileSystem, metadataOf } from "./hostFileSystem.ts"
import { attempt, failWith } from "./osError.ts"
import { isWithin, realPathOf } from "./paths.ts"
import { lstatIfAny, osError, pin, type Pinned, splitPath, using } from "./pinned.ts"

/** Links followed at most on one path (Linux's `MAXSYMLINKS`). */
const maxLinkHops = 40

/** The names a path walks through, in order (`.` and empty ones, which stay in place, left out). */
const namesOf = (path: string): Array<string> => path.split("/").filter((name) => name !== "" && name !== ".")

/**
 * The names a link's target walks through: one that ends in `/` or `/.` names
 * a directory, which a `.` after its last name requires (the kernel says
 * `ENOTDIR` for a file there).
 */
const targetNamesOf = (target: string): Array<string> =>
  /\/\.?$/.test(target) ? [...namesOf(target), "."] : namesOf(target)

const writeFlags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW |
  fsConstants.O_NONBLOCK

const tooDeep = () => new Error(`the tree is deeper than ${Defaults.fileSystem.maxTreeDepth} directories`)

/** This host's files, as much of them as `policy` lets a confined process use. */
export class ConfinedFileSystem implements FileOperations {
  private readonly files: HostFileSystem
  private readonly policy: ResolvedPolicy

  constructor(files: HostFileSystem, policy: ResolvedPolicy) {
    this.files = files
    this.policy = policy
  }

  // ===========================================================================
  // Checks: each throws the error a confined process would get
  // ===========================================================================

  private visible(real: string): void {
    if (accessOf(this.policy, real) === "deny") throw osError(denialOf(this.policy, real))
  }

  private writable(real: string): void {
    const access = accessOf(this.policy, real)
    if (access !== "write") throw osError(access === "read" ? "EROFS" : denialOf(this.policy, real))
  }

  /** A tree to remove: writable itself, and nothing read-only or hidden inside. */
  private writableTree(real: string): void {
    this.writable(real)
    if (!canWriteTree(this.policy, real)) throw osError("EROFS")
  }

  /** A tree to copy: visible itself, and nothing hidden inside. */
  private readableTree(real: string): void {
    this.visible(real)
    if (!canReadTree(this.policy, real)) throw osError("EACCES")
  }

  /** `pinned`, once `check` passed; where it throws, `pinned` is let go of first. */
  private async kept(pinned: Pinned, check: () => void): Promise<Pinned> {
    try {
      check()
      return pinned
    } catch (error) {
      await pinned.close()
      throw error
    }
  }

  /** Throws the denial of a directory the sandbox mounts unreadable: nothing below it can be reached. */
  private passable(real: string): void {
    if (accessOf(this.policy, real) === "deny" && denialOf(this.policy, real) === "EACCES") throw osError("EACCES")
  }

  /** Whether `pinned` holds a link (then it is let go of). */
  private async isLink(pinned: Pinned): Promise<boolean> {
    const link = await pinned.handle.stat().then((stats) => stats.isSymbolicLink(), () => true)
    if (link) await pinned.close()
    return link
  }

  /**
   * Pins `path` as a confined process reaches it: one name at a time from
   * `/`, through no directory the sandbox hides, each link read where it is
   * visible and its target walked the same way (at most 40 links); what it
   * reaches must be visible. A failure below a hidden path is that path's
   * denial (its contents' existence stays hidden).
   */
  private async pinVisible(path: string, options: { readonly directory?: boolean } = {}): Promise<Pinned> {
    const pending = namesOf(path).reverse()
    let current = await pin("/", { directory: true })
    try {
      for (let hops = 0; pending.length > 0;) {
        const name = pending.pop()!
        const last = pending.length === 0
        const place = current.realChild(name)
        const stats = await NodeFs.lstat(current.child(name)).catch((error: unknown) => {
          this.visible(place)
          throw error
        })
        if (stats.isSymbolicLink()) {
          this.visible(place)
          if (++hops > maxLinkHops) throw osError("ELOOP")
          const target = await NodeFs.readlink(current.child(name))
          pending.push(...targetNamesOf(target).reverse())
          if (target.startsWith("/")) {
            await current.close()
            current = await pin("/", { directory: true })
          }
          continue
        }
        const next = await pin(current.child(name), {
          directory: !last || options.directory === true,
          noFollow: true
        }).catch((error: unknown) => {
          this.visible(place)
          throw error
        })
        if (last && options.directory !== true && await this.isLink(next)) {
          // it became a link meanwhile: look again
          if (++hops > maxLinkHops) throw osError("ELOOP")
          pending.push(name)
          continue
        }
        await current.close()
        current = next
        if (!last) this.passable(current.real)
      }
      this.visible(current.real)
      return current
    } catch (error) {
      await current.close()
      throw error
    }
  }

  /** The directory holding the last component of `path` (normalized), pinned, and that component's name. */
  private async entry(path: string, atRoot: string): Promise<{ readonly parent: Pinned; readonly name: string }> {
    const split = splitPath(path)
    if (split === undefined) throw osError(atRoot)
    const parent = await this.pinVisible(split.parent, { directory: true })
    return { parent: await this.kept(parent, () => this.visible(parent.realChild(split.name))), name: split.name }
  }

  // ===========================================================================
  // Steps
  // ===========================================================================

  /**
   * Opens `name` in `parent` for writing, created or truncated, once its real
   * place may be written; a link there is followed as `open` would, each step
   * checked.
   */
  private async createFile(parent: Pinned, name: string, hops = 0): Promise<NodeFs.FileHandle> {
    if (name === "" || name === "." || name === "..") throw osError("EISDIR")
    const child = parent.child(name)
    const stats = await lstatIfAny(child)
    if (stats?.isSymbolicLink() === true) {
      this.visible(parent.realChild(name))
      if (hops >= maxLinkHops) throw osError("ELOOP")
      const target = await NodeFs.readlink(child)
      const next = splitPath(target.startsWith("/") ? target : `${parent.real}/${target}`)
      if (next === undefined) throw osError("EISDIR")
      const directory = await this.pinVisible(next.parent, { directory: true })
      return using(directory, () => this.createFile(directory, next.name, hops + 1))
    }
    this.writable(parent.realChild(name))
    try {
      return await NodeFs.open(child, writeFlags, 0o666)
    } catch (error) {
      // it became a link meanwhile: look again
      if ((error as NodeJS.ErrnoException).code === "ELOOP" && hops < maxLinkHops) {
        return this.createFile(parent, name, hops + 1)
      }
      throw error
    }
  }

  /**
   * The directory `name` in `parent` (a link there followed), pinned; created
   * when missing and its place may be written. `last`: an existing one must be
   * visible, and a file there is `EEXIST` (else passing through a directory
   * nothing hides is enough).
   */
  private async directoryIn(parent: Pinned, name: string, last: boolean): Promise<Pinned> {
    for (let attempt = 0;; attempt++) {
      let pinned: Pinned
      try {
        pinned = await pin(parent.child(name), { directory: true })
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === "ENOTDIR" && last) throw osError("EEXIST")
        // a dangling link: mkdir would meet the link
        if (code !== "ENOENT" || (await lstatIfAny(parent.child(name))) !== undefined) throw error
        this.writable(parent.realChild(name))
        try {
          await NodeFs.mkdir(parent.child(name))
        } catch (mkdirError) {
          // made meanwhile: take it as it is now
          if ((mkdirError as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= maxLinkHops) throw mkdirError
        }
        continue
      }
      return this.kept(pinned, () => (last ? this.visible(pinned.real) : this.passable(pinned.real)))
    }
  }

  /** The directory `path` (normalized), made with its parents as needed, pinned. */
  private async makeDirectories(path: string): Promise<Pinned> {
    const names = namesOf(path)
    let current = await pin("/", { directory: true })
    for (let index = 0; index < names.length; index++) {
      const next = await using(
        current,
        (directory) => this.directoryIn(directory, names[index]!, index === names.length - 1)
      )
      current = next
    }
    return names.length === 0 ? this.kept(current, () => this.visible(current.real)) : current
  }

  /** Removes directory `name` of `parent` with everything in it, one held directory at a time. */
  private async removeTree(parent: Pinned, name: string, depth: number): Promise<void> {
    if (depth > Defaults.fileSystem.maxTreeDepth) throw tooDeep()
    const directory = await pin(parent.child(name), { directory: true, noFollow: true })
    await using(directory, async () => {
      // the tree was checked from its root; a directory moved meanwhile is checked where it is now
      if (directory.real !== parent.realChild(name)) this.writableTree(directory.real)
      for await (const entry of await NodeFs.opendir(directory.self)) {
        const stats = await lstatIfAny(directory.child(entry.name))
        if (stats === undefined) continue
        if (stats.isDirectory()) await this.removeTree(directory, entry.name, depth + 1)
        else await NodeFs.unlink(directory.child(entry.name))
      }
    })
    await NodeFs.rmdir(parent.child(name))
  }

  /** Copies the regular file `fromName` of `from` to `toName` of `to` (a link there followed, as `copyFile` does). */
  private async copyFile(from: Pinned, fromName: string, to: Pinned, toName: string): Promise<void> {
    this.visible(from.realChild(fromName))
    const source = await NodeFs.open(
      from.child(fromName),
      fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK
    )
    try {
      if (!(await source.stat()).isFile()) throw new Error(onlyRegularFiles)
      const destination = await this.createFile(to, toName)
      try {
        await NodeFs.copyFile(`/proc/self/fd/${source.fd}`, `/proc/self/fd/${destination.fd}`)
      } finally {
        await destination.close()
      }
    } finally {
      await source.close()
    }
  }

  /** Recreates link `fromName` of `from` as `toName` of `to`, with the same target text. */
  private async copyLink(from: Pinned, fromName: string, to: Pinned, toName: string): Promise<void> {
    this.visible(from.realChild(fromName))
    this.writable(to.realChild(toName))
    await NodeFs.symlink(await NodeFs.readlink(from.child(fromName)), to.child(toName))
  }

  /** Copies what directory `from` holds into directory `to`, merging. */
  private async copyInto(from: Pinned, to: Pinned, depth: number): Promise<void> {
    if (depth > Defaults.fileSystem.maxTreeDepth) throw tooDeep()
    for await (const entry of await NodeFs.opendir(from.self)) {
      const stats = await lstatIfAny(from.child(entry.name))
      if (stats === undefined) continue
      if (stats.isSymbolicLink()) await this.copyLink(from, entry.name, to, entry.name)
      else if (stats.isFile()) await this.copyFile(from, entry.name, to, entry.name)
      else if (!stats.isDirectory()) throw new Error(`${onlyRegularFiles}: ${from.realChild(entry.name)}`)
      else {
        const source = await pin(from.child(entry.name), { directory: true, noFollow: true })
        await using(source, async () => {
          if (source.real !== from.realChild(entry.name)) this.readableTree(source.real)
          const destination = await this.directoryIn(to, entry.name, true)
          await using(destination, () => this.copyInto(source, destination, depth + 1))
        })
      }
    }
  }

  // ===========================================================================
  // Operations
  // ===========================================================================

  getMetadata(path: string): Effect.Effect<Protocol.GetMetadataResult, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      attempt(path, async () => {
        const target = await this.pinVisible(path)
        const stats = await using(target, () => target.handle.stat())
        if (path === "/") return metadataOf(stats, false)
        const { name, parent } = await this.entry(path, "ENOENT")
        const self = await using(parent, () => NodeFs.lstat(parent.child(name)))
        return metadataOf(stats, self.isSymbolicLink())
      })
    )
  }

  readFile(path: string, requestLimit?: number): Effect.Effect<Uint8Array, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      this.files.readOpened(
        path,
        async () => {
          const target = await this.pinVisible(path)
          return using(target, () => NodeFs.open(target.self, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK))
        },
        requestLimit
      )
    )
  }

  writeFile(path: string, dataBase64: string): Effect.Effect<void, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      this.files.writeOpened(
        path,
        async () => {
          const { name, parent } = await this.entry(path, "EISDIR")
          return using(parent, () => this.createFile(parent, name))
        },
        dataBase64
      )
    )
  }

  createDirectory(path: string, recursive: boolean): Effect.Effect<void, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      attempt(path, async () => {
        if (recursive) return (await this.makeDirectories(path)).close()
        const { name, parent } = await this.entry(path, "EEXIST")
        await using(parent, async () => {
          // an existing name is EEXIST before the file system's being read-only, as for mkdir(2)
          if ((await lstatIfAny(parent.child(name))) !== undefined) throw osError("EEXIST")
          this.writable(parent.realChild(name))
          await NodeFs.mkdir(parent.child(name))
        })
      })
    )
  }

  remove(path: string, recursive: boolean, force: boolean): Effect.Effect<void, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      attempt(path, async () => {
        let entry: { readonly parent: Pinned; readonly name: string }
        try {
          entry = await this.entry(path, "EBUSY")
        } catch (error) {
          if (force && (error as NodeJS.ErrnoException).code === "ENOENT") return
          throw error
        }
        const { name, parent } = entry
        await using(parent, async () => {
          const stats = await lstatIfAny(parent.child(name))
          if (stats === undefined) {
            if (force) return
            throw osError("ENOENT")
          }
          const real = parent.realChild(name)
          if (!stats.isDirectory()) {
            this.writable(real)
            return NodeFs.unlink(parent.child(name))
          }
          if (!recursive) {
            this.writable(real)
            return NodeFs.rmdir(parent.child(name))
          }
          this.writableTree(real)
          await this.removeTree(parent, name, 0)
        })
      })
    )
  }

  readDirectory(path: string): Effect.Effect<Protocol.ReadDirectoryResult, ExecutorError> {
    return Effect.gen({ self: this }, function*() {
      yield* checkPath(path)
      const directory = yield* Effect.acquireRelease(
        attempt(path, () => this.pinVisible(path, { directory: true })),
        (pinned) => Effect.promise(() => pinned.close())
      )
      return yield* this.files.listDirectory(path, directory.self, async (name) => {
        const stats = await NodeFs.lstat(directory.child(name))
        if (!stats.isSymbolicLink()) return stats
        // typed through its link, reached as a read reaches it: where that is refused, it is left out, as dangling
        const target = await this.pinVisible(directory.realChild(name))
        return using(target, () => target.handle.stat())
      })
    }).pipe(Effect.scoped)
  }

  copy(source: string, destination: string, recursive: boolean): Effect.Effect<void, ExecutorError> {
    return Effect.gen({ self: this }, function*() {
      yield* checkPath(source)
      yield* checkPath(destination)
      const from = yield* Effect.acquireRelease(
        attempt(source, () => this.entry(source, "EINVAL")),
        ({ parent }) => Effect.promise(() => parent.close())
      )
      const stats = yield* attempt(source, () => NodeFs.lstat(from.parent.child(from.name)))
      if (stats.isDirectory()) {
        if (!recursive) return yield* failWith(new InvalidRequest({ description: needsRecursive }))
        const root = yield* attempt(
          source,
          () => pin(from.parent.child(from.name), { directory: true, noFollow: true })
        )
        yield* Effect.addFinalizer(() => Effect.promise(() => root.close()))
        yield* attempt(source, async () => this.readableTree(root.real))
        if (isWithin(yield* attempt(destination, () => realPathOf(destination)), root.real)) {
          return yield* failWith(new InvalidRequest({ description: intoItself }))
        }
        return yield* attempt(destination, async () => {
          const target = await this.makeDirectories(destination)
          await using(target, () => this.copyInto(root, target, 0))
        })
      }
      if (!stats.isSymbolicLink() && !stats.isFile()) {
        return yield* failWith(new InvalidRequest({ description: onlyRegularFiles }))
      }
      return yield* attempt(destination, async () => {
        const to = await this.entry(destination, "EISDIR")
        await using(to.parent, () =>
          stats.isSymbolicLink()
            ? this.copyLink(from.parent, from.name, to.parent, to.name)
            : this.copyFile(from.parent, from.name, to.parent, to.name))
      })
    }).pipe(Effect.scoped)
  }

  canonicalize(path: string): Effect.Effect<string, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      attempt(path, async () => {
        const target = await this.pinVisible(path)
        await target.close()
        return target.real
      })
    )
  }
}
