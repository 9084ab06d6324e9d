/**
 * Paths reached through descriptors held open, so that what is checked is
 * what is operated on. `pin` opens a path without reading or writing it
 * (`O_PATH`) and asks the kernel where the object it reached really is (the
 * descriptor's link in `/proc/self/fd`): whatever links the path went through,
 * and whatever was swapped while it was looked up, the answer names the
 * object held. A name inside a pinned directory is then reached as
 * `/proc/self/fd/N/name`, which follows no link on the way to that directory:
 * only the last component is looked up, and `O_NOFOLLOW` (or an operation
 * that never follows one: `mkdir`, `unlink`, `rmdir`, `symlink`, `lstat`)
 * keeps it from being a link that leads elsewhere.
 *
 * Failures are thrown as OS errors (`code`), as the operations' own are, so a
 * refusal reads like the system call a sandboxed helper would have made.
 *
 * @internal
 */
import { constants as fsConstants, type Stats } from "node:fs"
import * as NodeFs from "node:fs/promises"

/** `O_PATH` (Linux): a descriptor that only names an object; Node passes the flag through to `open`. */
const openPathOnly = 0o10000000

/** An error carrying an OS error code, as `node:fs` throws them. */
export const osError = (code: string, message: string = code): NodeJS.ErrnoException =>
  Object.assign(new Error(message), { code })

/** An object held open without access, and where it really is. */
export class Pinned {
  readonly handle: NodeFs.FileHandle
  /** Its real path now (no link, no `.` or `..`). */
  readonly real: string

  constructor(handle: NodeFs.FileHandle, real: string) {
    this.handle = handle
    this.real = real
  }

  /** A path that names the held object itself. */
  get self(): string {
    return `/proc/self/fd/${this.handle.fd}`
  }

  /** A path that names `name` inside the held directory, reached through no link. */
  child(name: string): string {
    return `${this.self}/${name}`
  }

  /** The real path of `name` inside the held directory (`name` itself not followed). */
  realChild(name: string): string {
    return this.real === "/" ? `/${name}` : `${this.real}/${name}`
  }

  close(): Promise<void> {
    return this.handle.close().catch(() => undefined)
  }
}

/**
 * Holds the object `path` names: links followed, the last one too unless
 * `noFollow` (then a link is held as itself); `directory` requires a directory.
 */
export const pin = async (
  path: string,
  options: { readonly directory?: boolean; readonly noFollow?: boolean } = {}
): Promise<Pinned> => {
  const flags = openPathOnly | (options.directory === true ? fsConstants.O_DIRECTORY : 0) |
    (options.noFollow === true ? fsConstants.O_NOFOLLOW : 0)
  const handle = await NodeFs.open(path, flags)
  try {
    const real = await NodeFs.readlink(`/proc/self/fd/${handle.fd}`)
    // removed meanwhile: the kernel names it "… (deleted)"; it is nowhere
    if (!real.startsWith("/") || (await handle.stat()).nlink === 0) throw osError("ENOENT")
    return new Pinned(handle, real)
  } catch (error) {
    await handle.close().catch(() => undefined)
    throw error
  }
}

/** Runs `use` with `pinned`, then lets go of it. */
export const using = async <A>(pinned: Pinned, use: (pinned: Pinned) => Promise<A>): Promise<A> => {
  try {
    return await use(pinned)
  } finally {
    await pinned.close()
  }
}

/** The directory part and the last component of an absolute, normalized path (`/` has none). */
export const splitPath = (path: string): { readonly parent: string; readonly name: string } | undefined => {
  if (path === "/") return undefined
  const slash = path.lastIndexOf("/")
  return { parent: slash === 0 ? "/" : path.slice(0, slash), name: path.slice(slash + 1) }
}

/** `lstat` of `path`, or `undefined` when nothing is there. */
export const lstatIfAny = (path: string): Promise<Stats | undefined> =>
  NodeFs.lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined
    throw error
  })
