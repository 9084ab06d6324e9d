/**
 * This host's files as an exec-server serves them (`fs/*`), with the
 * semantics of Codex 0.169's exec-server (measured against its binary, see
 * `notes/codex-fs-pty.md`): metadata follows links but says whether the path
 * itself is one; `readFile` refuses directories and special files ("path `…`
 * is not a file"); `createDirectory` and `remove` default to recursive (and
 * `remove` to force); `readDirectory` follows links and leaves out dangling
 * ones. Every failure is a typed reason in Codex's words.
 *
 * Memory is bounded: a read or a write over `maxFileBytes` is refused before a
 * byte is held, reads and writes together hold at most `maxBytesInFlight`
 * (more wait their turn), and a listing stops at `maxDirectoryEntries`.
 * Nothing can block on a FIFO: files are opened non-blocking.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import { constants as fsConstants, type Stats } from "node:fs"
import * as NodeFs from "node:fs/promises"
import { type ExecutorError, FileTooLarge, InvalidRequest } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { copyPath } from "./copy.ts"
import { attempt, failWith } from "./osError.ts"

/** What a directory entry is, as `stat` tells it. */
export interface EntryStats {
  isDirectory(): boolean
  isFile(): boolean
}

/**
 * The `fs/*` operations on this host's files: all of them (`HostFileSystem`),
 * or those a sandbox policy allows (`ConfinedFileSystem`).
 */
export interface FileOperations {
  getMetadata(path: string): Effect.Effect<Protocol.GetMetadataResult, ExecutorError>
  readFile(path: string, requestLimit?: number): Effect.Effect<Uint8Array, ExecutorError>
  writeFile(path: string, dataBase64: string): Effect.Effect<void, ExecutorError>
  createDirectory(path: string, recursive: boolean): Effect.Effect<void, ExecutorError>
  remove(path: string, recursive: boolean, force: boolean): Effect.Effect<void, ExecutorError>
  readDirectory(path: string): Effect.Effect<Protocol.ReadDirectoryResult, ExecutorError>
  copy(source: string, destination: string, recursive: boolean): Effect.Effect<void, ExecutorError>
  canonicalize(path: string): Effect.Effect<string, ExecutorError>
}

/** The limits of a host file system; every default is in `Defaults.fileSystem`. */
export interface Limits {
  readonly maxFileBytes: number
  readonly maxBytesInFlight: number
  readonly maxDirectoryEntries: number
}

/** Refuses a path Node cannot pass to the OS (as Rust does: a NUL byte is invalid input). */
export const checkPath = (path: string): Effect.Effect<void, ExecutorError> =>
  path.includes("\0")
    ? failWith(new InvalidRequest({ description: "file name contained an unexpected NUL byte" }))
    : Effect.void

const base64Alphabet = /^[A-Za-z0-9+/]*$/

/** Why `text` is not standard base64 with padding, in the words of Rust's `base64` crate (as Codex reports it). */
const base64Problem = (text: string): string | undefined => {
  const body = text.replace(/={1,2}$/, "")
  if (!base64Alphabet.test(body)) {
    const offset = body.search(/[^A-Za-z0-9+/]/)
    return `Invalid symbol ${body.charCodeAt(offset)}, offset ${offset}.`
  }
  return text.length % 4 === 0 ? undefined : "Invalid padding"
}

/** The number of bytes standard base64 `text` stands for. */
const decodedLength = (text: string): number => {
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0
  return Math.max(0, Math.floor(text.length / 4) * 3 - padding)
}

/** The first read of a file whose size `stat` does not tell (`/proc` files say 0). */
const initialReadBytes = 64 * 1024

/** One host's files, served by every connection of a server. */
export class HostFileSystem implements FileOperations {
  readonly limits: Limits
  /** Bytes of file data held at once, over all reads and writes. */
  private readonly inFlight: Semaphore.Semaphore

  constructor(limits: Partial<Limits> = {}) {
    this.limits = {
      maxFileBytes: limits.maxFileBytes ?? Defaults.fileSystem.maxFileBytes,
      maxBytesInFlight: limits.maxBytesInFlight ?? Defaults.fileSystem.maxBytesInFlight,
      maxDirectoryEntries: limits.maxDirectoryEntries ?? Defaults.fileSystem.maxDirectoryEntries
    }
    this.inFlight = Semaphore.makeUnsafe(this.limits.maxBytesInFlight)
  }

  /** Holds `bytes` of the in-flight budget while `effect` runs. */
  private holding<A, E>(bytes: number, effect: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return this.inFlight.withPermits(Math.max(1, Math.min(bytes, this.limits.maxBytesInFlight)))(effect)
  }

  /** `fs/getMetadata`: the link's target's type, size and times; `isSymlink` of the path itself. */
  getMetadata(path: string): Effect.Effect<Protocol.GetMetadataResult, ExecutorError> {
    return Effect.gen(function*() {
      yield* checkPath(path)
      const target = yield* attempt(path, () => NodeFs.stat(path))
      const self = yield* attempt(path, () => NodeFs.lstat(path))
      return metadataOf(target, self.isSymbolicLink())
    })
  }

  /**
   * `fs/readFile`: a regular file's bytes, at most `maxFileBytes` (and at most
   * `requestLimit`, the client's own limit, when it names one).
   */
  readFile(path: string, requestLimit?: number): Effect.Effect<Uint8Array, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      this.readOpened(
        path,
        () => NodeFs.open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK),
        requestLimit
      )
    )
  }

  /**
   * The bytes of the file `open` opens for reading (`path` names it in
   * failures): refused unless it is a regular file within the limits.
   */
  readOpened(
    path: string,
    open: () => Promise<NodeFs.FileHandle>,
    requestLimit?: number
  ): Effect.Effect<Uint8Array, ExecutorError> {
    const limit = Math.min(this.limits.maxFileBytes, requestLimit ?? Infinity)
    const tooLarge = failWith(new FileTooLarge({ path, operation: "read", limit }))
    return Effect.gen({ self: this }, function*() {
      const file = yield* Effect.acquireRelease(
        attempt(path, open),
        (file) => Effect.promise(() => file.close().catch(() => undefined))
      )
      const stats = yield* attempt(path, () => file.stat())
      if (!stats.isFile()) return yield* failWith(new InvalidRequest({ description: `path \`${path}\` is not a file` }))
      if (stats.size > limit) return yield* tooLarge
      const expected = Math.min(limit + 1, stats.size > 0 ? stats.size + 1 : initialReadBytes)
      return yield* this.holding(
        expected,
        Effect.flatMap(
          attempt(path, () => readUpTo(file, expected, limit + 1)),
          (bytes) => bytes.length > limit ? tooLarge : Effect.succeed(bytes)
        )
      )
    }).pipe(Effect.scoped)
  }

  /** `fs/writeFile`: creates or truncates `path` (through links) with the bytes of `dataBase64`. */
  writeFile(path: string, dataBase64: string): Effect.Effect<void, ExecutorError> {
    return Effect.andThen(
      checkPath(path),
      this.writeOpened(
        path,
        () =>
          NodeFs.open(
            path,
            fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NONBLOCK,
            0o666
          ),
        dataBase64
      )
    )
  }

  /**
   * Writes the bytes of `dataBase64` to the file `open` creates or truncates
   * (`path` names it in failures), once they are known to be valid and within
   * the limits: nothing is opened before.
   */
  writeOpened(
    path: string,
    open: () => Promise<NodeFs.FileHandle>,
    dataBase64: string
  ): Effect.Effect<void, ExecutorError> {
    return Effect.gen({ self: this }, function*() {
      const size = decodedLength(dataBase64)
      if (size > this.limits.maxFileBytes) {
        return yield* failWith(new FileTooLarge({ path, operation: "write", limit: this.limits.maxFileBytes }))
      }
      const problem = base64Problem(dataBase64)
      if (problem !== undefined) {
        return yield* failWith(
          new InvalidRequest({ description: `fs/writeFile requires valid base64 dataBase64: ${problem}` })
        )
      }
      yield* this.holding(
        size,
        attempt(path, async () => {
          const file = await open()
          try {
            await file.writeFile(Buffer.from(dataBase64, "base64"))
          } finally {
            await file.close()
          }
        })
      )
    })
  }

  /** `fs/createDirectory`: with its parents unless `recursive` is false. */
  createDirectory(path: string, recursive: boolean): Effect.Effect<void, ExecutorError> {
    return Effect.andThen(checkPath(path), attempt(path, () => NodeFs.mkdir(path, { recursive })))
  }

  /**
   * `fs/remove`: a file or link (never its target), or a directory (with its
   * contents when `recursive`, else only when empty); a missing path is fine
   * when `force`.
   */
  remove(path: string, recursive: boolean, force: boolean): Effect.Effect<void, ExecutorError> {
    return Effect.gen(function*() {
      yield* checkPath(path)
      const stats = yield* attempt(path, () => NodeFs.lstat(path)).pipe(
        Effect.catchIf((error) => force && error.reason._tag === "PathNotFound", () => Effect.succeed(undefined))
      )
      if (stats === undefined) return
      yield* attempt(path, () =>
        !stats.isDirectory()
          ? NodeFs.unlink(path)
          : recursive
          ? NodeFs.rm(path, { recursive: true, force: true })
          : NodeFs.rmdir(path))
    })
  }

  /**
   * `fs/readDirectory`: the entries in the order the OS gives them, each typed
   * through its link; entries whose `stat` fails (dangling links) are left out.
   */
  readDirectory(path: string): Effect.Effect<Protocol.ReadDirectoryResult, ExecutorError> {
    const prefix = path === "/" ? "" : path
    return Effect.andThen(
      checkPath(path),
      this.listDirectory(path, path, (fileName) => NodeFs.stat(`${prefix}/${fileName}`))
    )
  }

  /**
   * The entries of the directory `directory` names (`path` names it in
   * failures), each typed by `statOf` (an entry whose `statOf` fails is left
   * out), at most `maxDirectoryEntries`.
   */
  listDirectory(
    path: string,
    directory: string,
    statOf: (fileName: string) => Promise<EntryStats>
  ): Effect.Effect<Protocol.ReadDirectoryResult, ExecutorError> {
    const { maxDirectoryEntries } = this.limits
    return Effect.gen(function*() {
      const names = yield* attempt(path, () => listNames(directory, maxDirectoryEntries))
      if (names === undefined) {
        return yield* failWith(
          new InvalidRequest({
            description: `directory \`${path}\` has more than ${maxDirectoryEntries} entries, ` +
              `the most one fs/readDirectory lists`
          })
        )
      }
      const entries = yield* Effect.forEach(
        names,
        (fileName) =>
          Effect.promise(() =>
            statOf(fileName).then(
              (stats) => ({ fileName, isDirectory: stats.isDirectory(), isFile: stats.isFile() }),
              () => undefined
            )
          ),
        { concurrency: Defaults.fileSystem.statConcurrency }
      )
      return { entries: entries.filter((entry) => entry !== undefined) }
    })
  }

  /** `fs/copy`: see `copy.ts`. */
  copy(source: string, destination: string, recursive: boolean): Effect.Effect<void, ExecutorError> {
    return Effect.andThen(
      Effect.andThen(checkPath(source), checkPath(destination)),
      copyPath(source, destination, recursive)
    )
  }

  /** `fs/canonicalize`: the path with every link and `..` resolved. */
  canonicalize(path: string): Effect.Effect<string, ExecutorError> {
    return Effect.andThen(checkPath(path), attempt(path, () => NodeFs.realpath(path)))
  }
}

/** The `fs/getMetadata` answer for what `stat` found (`isSymlink`: whether the path itself is a link). */
export const metadataOf = (target: Stats, isSymlink: boolean): Protocol.GetMetadataResult => ({
  isDirectory: target.isDirectory(),
  isFile: target.isFile(),
  isSymlink,
  size: target.size,
  createdAtMs: Math.trunc(target.birthtimeMs),
  modifiedAtMs: Math.trunc(target.mtimeMs)
})

/** Reads `file` from its start until EOF or until `stopAt` bytes, starting with a buffer of `expected`. */
const readUpTo = async (file: NodeFs.FileHandle, expected: number, stopAt: number): Promise<Uint8Array> => {
  let buffer = Buffer.allocUnsafe(expected)
  let length = 0
  while (length < stopAt) {
    if (length === buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(stopAt, buffer.length * 2))
      buffer.copy(grown, 0, 0, length)
      buffer = grown
    }
    const { bytesRead } = await file.read(buffer, length, buffer.length - length, length)
    if (bytesRead === 0) break
    length += bytesRead
  }
  return buffer.subarray(0, length)
}

/** The names in a directory, or `undefined` when there are more than `limit`. */
export const listNames = async (path: string, limit: number): Promise<ReadonlyArray<string> | undefined> => {
  const names: Array<string> = []
  for await (const entry of await NodeFs.opendir(path)) {
    if (names.length === limit) return undefined
    names.push(entry.name)
  }
  return names
}
