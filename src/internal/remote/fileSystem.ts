/**
 * Effect's `FileSystem` over an exec-server's `fs/*` methods (ours or
 * Codex's), on the remote executor's link: the files of the host where the
 * remote commands run.
 *
 * Paths: an absolute path is the server host's; a relative one is resolved
 * against the server's working directory (where a command naming no `cwd`
 * runs), as the local file system resolves against this process's.
 *
 * What the protocol cannot do as asked fails with a `BadArgument`, never
 * silently otherwise: `chmod`, `chown`, `link`, `symlink`, `readLink`,
 * `rename`, `truncate`, `utimes`, `open` and `watch`; a `mode`; a write flag
 * other than `"w"`; `access` for `readable`/`writable`; `copy` with
 * `preserveTimestamps`. Files are read and written whole, at most
 * `maxFileBytes` (`stream` and `sink` too). Metadata carries the type, size
 * and times only (`mode` 0, `dev` 0, the rest `None`); types follow links, and
 * `lstat` says `SymbolicLink` for a link.
 *
 * @internal
 */
import * as ByteSize from "effect/ByteSize"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as PlatformError from "effect/PlatformError"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { posix } from "node:path"
import { ExecutorError, FileTooLarge } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import type { Link } from "./link.ts"
import { toPlatformError, unsupported } from "./platformError.ts"

/** Options of a remote file system. */
export interface Options {
  /** The largest file read or written (default 64 MiB). */
  readonly maxFileBytes?: number
}

const typeOf = (metadata: Protocol.GetMetadataResult): FileSystem.File.Type =>
  metadata.isFile ? "File" : metadata.isDirectory ? "Directory" : "Unknown"

/** What `fs/getMetadata` tells, as a `File.Info`; what it does not tell is 0 or `None`. */
const toInfo = (metadata: Protocol.GetMetadataResult, type: FileSystem.File.Type): FileSystem.File.Info => ({
  type,
  mtime: Option.some(new Date(metadata.modifiedAtMs)),
  atime: Option.none(),
  birthtime: metadata.createdAtMs > 0 ? Option.some(new Date(metadata.createdAtMs)) : Option.none(),
  dev: 0n,
  ino: Option.none(),
  mode: 0,
  nlink: Option.none(),
  uid: Option.none(),
  gid: Option.none(),
  rdev: Option.none(),
  size: ByteSize.bytes(metadata.size),
  blksize: Option.none(),
  blocks: Option.none()
})

const base64Length = (bytes: number) => Math.ceil(bytes / 3) * 4

/** Room for a request's envelope and path in a frame. */
const envelopeBytes = 64 * 1024

/** The largest file a Codex exec-server can take in one `fs/writeFile` frame. */
const codexMaxWriteBytes = Math.floor((Defaults.fileSystem.codexMaxFrameBytes - envelopeBytes) / 4) * 3

const randomName = () => randomBytes(6).toString("hex")

const notSupported = (method: string) => () =>
  Effect.fail(unsupported(method, `${method} is not one of the exec-server's fs/* methods`))

/** The operations of a remote file system, each a small method bound to its link. */
class RemoteFiles {
  private readonly link: Link
  private readonly maxFileBytes: number

  constructor(link: Link, maxFileBytes: number) {
    this.link = link
    this.maxFileBytes = maxFileBytes
  }

  /** What the server said of itself (connecting first if need be). */
  private server(method: string, path: string) {
    return Effect.map(this.link.client, () => this.link.server).pipe(Effect.mapError(toPlatformError(method, path)))
  }

  /** `path` on the server's host: relative paths are resolved against its working directory. */
  private resolve(method: string, path: string): Effect.Effect<string, PlatformError.PlatformError> {
    return posix.isAbsolute(path)
      ? Effect.succeed(posix.normalize(path))
      : Effect.map(this.server(method, path), (info) => posix.resolve(info.cwd ?? "/", path))
  }

  /** Calls `fs/*` `wire` for file-system method `method` on `path`, resolved. */
  private call<M extends Protocol.RequestMethod>(
    method: string,
    path: string,
    wire: M,
    params: (path: string) => Protocol.ParamsOf<M>
  ): Effect.Effect<Protocol.ResultOf<M>, PlatformError.PlatformError> {
    return Effect.flatMap(
      this.resolve(method, path),
      (absolute) =>
        this.link.call(wire, params(absolute), { path: absolute }).pipe(
          Effect.mapError(toPlatformError(method, absolute))
        )
    )
  }

  private tooLarge(method: string, path: string, operation: "read" | "write", limit = this.maxFileBytes) {
    return Effect.fail(
      toPlatformError(method, path)(new ExecutorError({ reason: new FileTooLarge({ path, operation, limit }) }))
    )
  }

  metadata(method: string, path: string) {
    return this.call(method, path, "fs/getMetadata", (path) => ({ path }))
  }

  readonly readFile: FileSystem.FileSystem["readFile"] = (path) =>
    Effect.gen({ self: this }, function*() {
      const absolute = yield* this.resolve("readFile", path)
      const info = yield* this.server("readFile", absolute)
      // a server that does not take our limit (Codex's) sends what it has: look at the size first
      if (!(info.capabilities ?? []).includes("fs/readFile.maxBytes")) {
        const { size } = yield* this.metadata("readFile", absolute)
        if (size > this.maxFileBytes) return yield* this.tooLarge("readFile", absolute, "read")
      }
      const { dataBase64: bytes } = yield* this.call("readFile", absolute, "fs/readFile", (path) => ({
        path,
        maxBytes: this.maxFileBytes
      }))
      return bytes.length > this.maxFileBytes ? yield* this.tooLarge("readFile", absolute, "read") : bytes
    })

  readonly writeFile: FileSystem.FileSystem["writeFile"] = (path, data, options) =>
    Effect.gen({ self: this }, function*() {
      if (options?.flag !== undefined && options.flag !== "w") {
        return yield* Effect.fail(
          unsupported("writeFile", `the exec-server writes whole files: flag "w", not "${options.flag}"`)
        )
      }
      if (options?.mode !== undefined) {
        return yield* Effect.fail(unsupported("writeFile", "the exec-server protocol cannot set a file's mode"))
      }
      const absolute = yield* this.resolve("writeFile", path)
      if (data.length > this.maxFileBytes) return yield* this.tooLarge("writeFile", absolute, "write")
      const info = yield* this.server("writeFile", absolute)
      // a larger frame would make a Codex server drop the connection without an answer
      if (info.capabilities === undefined && base64Length(data.length) > base64Length(codexMaxWriteBytes)) {
        return yield* this.tooLarge("writeFile", absolute, "write", codexMaxWriteBytes)
      }
      const dataBase64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64")
      yield* this.call("writeFile", absolute, "fs/writeFile", (path) => ({ path, dataBase64 }))
    })

  readonly remove: FileSystem.FileSystem["remove"] = (path, options) =>
    Effect.asVoid(this.call("remove", path, "fs/remove", (path) => ({
      path,
      recursive: options?.recursive ?? false,
      force: options?.force ?? false
    })))

  readonly makeDirectory: FileSystem.FileSystem["makeDirectory"] = (path, options) =>
    options?.mode !== undefined
      ? Effect.fail(unsupported("makeDirectory", "the exec-server protocol cannot set a directory's mode"))
      : Effect.asVoid(this.call("makeDirectory", path, "fs/createDirectory", (path) => ({
        path,
        recursive: options?.recursive ?? false
      })))

  readonly readDirectoryEntries: FileSystem.FileSystem["readDirectoryEntries"] = (path) =>
    Effect.map(
      this.call("readDirectoryEntries", path, "fs/readDirectory", (path) => ({ path })),
      ({ entries }) =>
        entries.map((entry): FileSystem.DirectoryEntry => ({
          name: entry.fileName,
          type: entry.isDirectory ? "Directory" : entry.isFile ? "File" : "Unknown"
        }))
    )

  readonly readDirectory: FileSystem.FileSystem["readDirectory"] = (path, options) =>
    options?.recursive === true
      ? Effect.flatMap(this.resolve("readDirectory", path), (absolute) => this.walk(absolute, ""))
      : Effect.map(
        this.call("readDirectory", path, "fs/readDirectory", (path) => ({ path })),
        ({ entries }) => entries.map((entry) => entry.fileName)
      )

  /** The names under `path`, depth first, relative to it; links to directories are listed, not entered. */
  private walk(path: string, prefix: string): Effect.Effect<Array<string>, PlatformError.PlatformError> {
    return Effect.flatMap(
      this.call("readDirectory", path, "fs/readDirectory", (path) => ({ path })),
      ({ entries }) =>
        Effect.map(
          Effect.forEach(entries, (entry) => {
            const name = prefix === "" ? entry.fileName : `${prefix}/${entry.fileName}`
            const child = posix.join(path, entry.fileName)
            return entry.isDirectory
              ? Effect.flatMap(this.metadata("readDirectory", child), (info) =>
                info.isSymlink
                  ? Effect.succeed([name])
                  : Effect.map(this.walk(child, name), (names) => [name, ...names]))
              : Effect.succeed([name])
          }),
          (names) => names.flat()
        )
    )
  }

  readonly copy: FileSystem.FileSystem["copy"] = (fromPath, toPath, options) =>
    Effect.gen({ self: this }, function*() {
      if (options?.preserveTimestamps === true) {
        return yield* Effect.fail(unsupported("copy", "the exec-server protocol cannot preserve timestamps"))
      }
      const destination = yield* this.resolve("copy", toPath)
      if (options?.overwrite !== true && (yield* this.exists("copy", destination))) {
        return yield* Effect.fail(PlatformError.systemError({
          _tag: "AlreadyExists",
          module: "FileSystem",
          method: "copy",
          pathOrDescriptor: destination,
          description: "the destination exists: copy with overwrite: true to replace it"
        }))
      }
      yield* this.call("copy", fromPath, "fs/copy", (sourcePath) => ({
        sourcePath,
        destinationPath: destination,
        recursive: true
      }))
    })

  private exists(method: string, path: string) {
    return this.metadata(method, path).pipe(
      Effect.as(true),
      Effect.catchIf((error) => error.reason._tag === "NotFound", () => Effect.succeed(false))
    )
  }

  readonly realPath: FileSystem.FileSystem["realPath"] = (path) =>
    Effect.map(this.call("realPath", path, "fs/canonicalize", (path) => ({ path })), (result) => result.path)

  readonly copyFile: FileSystem.FileSystem["copyFile"] = (fromPath, toPath) =>
    Effect.flatMap(
      this.resolve("copyFile", toPath),
      (destinationPath) =>
        Effect.asVoid(this.call("copyFile", fromPath, "fs/copy", (sourcePath) => ({
          sourcePath,
          destinationPath,
          recursive: false
        })))
    )

  readonly makeTempDirectory: FileSystem.FileSystem["makeTempDirectory"] = (options) =>
    Effect.gen({ self: this }, function*() {
      const info = yield* this.server("makeTempDirectory", options?.directory ?? "")
      const directory = yield* this.resolve("makeTempDirectory", options?.directory ?? info.tempDir ?? "/tmp")
      return yield* Effect.suspend(() => {
        const path = posix.join(directory, `${options?.prefix ?? ""}${randomName()}`)
        return Effect.as(this.makeDirectory(path), path)
      }).pipe(Effect.retry({ times: 5, while: (error) => error.reason._tag === "AlreadyExists" }))
    })

  readonly makeTempFile: FileSystem.FileSystem["makeTempFile"] = (options) =>
    Effect.gen({ self: this }, function*() {
      const directory = yield* this.makeTempDirectory(options)
      const path = posix.join(directory, `${randomName()}${options?.suffix ?? ""}`)
      yield* this.writeFile(path, new Uint8Array(0))
      return path
    })

  /** Removes a scoped temporary path; a failure (a lost link) is logged, not raised in a finalizer. */
  readonly removeLater = (path: string) =>
    this.remove(path, { recursive: true, force: true }).pipe(
      Effect.catch((error) => Effect.logWarning(`could not remove ${path} on the exec-server: ${error.message}`))
    )

  /** Files travel whole: a stream is a read, cut into chunks. */
  readonly stream: FileSystem.FileSystem["stream"] = (path, options) =>
    Stream.unwrap(Effect.map(this.readFile(path), (bytes) => {
      const offset = options?.offset === undefined ? 0 : Number(ByteSize.fromInputUnsafe(options.offset))
      const end = options?.bytesToRead === undefined
        ? bytes.length
        : Math.min(bytes.length, offset + Number(ByteSize.fromInputUnsafe(options.bytesToRead)))
      const chunkSize = Math.max(1, options?.chunkSize ?? 64 * 1024)
      const chunks: Array<Uint8Array> = []
      for (let at = offset; at < end; at += chunkSize) chunks.push(bytes.subarray(at, Math.min(end, at + chunkSize)))
      return Stream.fromIterable(chunks)
    }))

  /** Files travel whole: a sink collects (at most `maxFileBytes`), then writes. */
  readonly sink: FileSystem.FileSystem["sink"] = (path, options) =>
    Sink.foldArray(
      () => ({ chunks: [] as Array<Uint8Array>, bytes: 0 }),
      () => true,
      (state, chunks: ReadonlyArray<Uint8Array>) => {
        for (const chunk of chunks) {
          state.chunks.push(chunk)
          state.bytes += chunk.length
        }
        return state.bytes > this.maxFileBytes ? this.tooLarge("sink", path, "write") : Effect.succeed(state)
      }
    ).pipe(Sink.mapEffect((state) => this.writeFile(path, Buffer.concat(state.chunks), options)))
}

/** A `FileSystem` over `link`'s `fs/*` methods. */
export const makeFileSystem = (link: Link, options: Options = {}): FileSystem.FileSystem => {
  const files = new RemoteFiles(link, options.maxFileBytes ?? Defaults.fileSystem.maxFileBytes)
  const base = FileSystem.make({
    access: (path, options) =>
      options?.readable === true || options?.writable === true
        ? Effect.fail(unsupported("access", "the exec-server protocol tells whether a path exists, not who may use it"))
        : Effect.asVoid(files.metadata("access", path)),
    copy: files.copy,
    copyFile: files.copyFile,
    chmod: notSupported("chmod"),
    chown: notSupported("chown"),
    link: notSupported("link"),
    lstat: (path) =>
      Effect.map(files.metadata("lstat", path), (info) => toInfo(info, info.isSymlink ? "SymbolicLink" : typeOf(info))),
    makeDirectory: files.makeDirectory,
    makeTempDirectory: files.makeTempDirectory,
    makeTempDirectoryScoped: (options) => Effect.acquireRelease(files.makeTempDirectory(options), files.removeLater),
    makeTempFile: files.makeTempFile,
    makeTempFileScoped: (options) =>
      Effect.acquireRelease(files.makeTempFile(options), (path) => files.removeLater(posix.dirname(path))),
    open: notSupported("open"),
    readDirectory: files.readDirectory,
    readDirectoryEntries: files.readDirectoryEntries,
    readFile: files.readFile,
    readLink: notSupported("readLink"),
    realPath: files.realPath,
    remove: files.remove,
    rename: notSupported("rename"),
    stat: (path) => Effect.map(files.metadata("stat", path), (info) => toInfo(info, typeOf(info))),
    symlink: notSupported("symlink"),
    truncate: notSupported("truncate"),
    utimes: notSupported("utimes"),
    watch: (path) =>
      Stream.fail(unsupported("watch", `cannot watch ${path}: watch is not one of the exec-server's fs/* methods`)),
    writeFile: files.writeFile
  })
  return FileSystem.FileSystem.of({ ...base, stream: files.stream, sink: files.sink })
}
