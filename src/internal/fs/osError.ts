/**
 * A failed file operation as a typed reason, in the words Codex's exec-server
 * uses: `<the OS's text> (os error <n>)`, as Rust writes an OS error. Codex
 * 0.169's Linux build links musl, so the texts are musl's (they differ from
 * glibc's for a few codes, e.g. ELOOP "Symbolic link loop").
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeOs from "node:os"
import {
  ExecutorError,
  type ExecutorErrorReason,
  FileSystemFailure,
  InvalidRequest,
  PathAccessDenied,
  PathNotFound
} from "../../Executor.ts"

/** musl's `strerror` for the codes a file operation can meet. */
const muslText: Readonly<Record<string, string>> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  EIO: "I/O error",
  ENXIO: "No such device or address",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Out of memory",
  EACCES: "Permission denied",
  EBUSY: "Resource busy",
  EEXIST: "File exists",
  EXDEV: "Cross-device link",
  ENODEV: "No such device",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EINVAL: "Invalid argument",
  ENFILE: "Too many open files in system",
  EMFILE: "No file descriptors available",
  ETXTBSY: "Text file busy",
  EFBIG: "File too large",
  ENOSPC: "No space left on device",
  ESPIPE: "Invalid seek",
  EROFS: "Read-only file system",
  EMLINK: "Too many links",
  ENAMETOOLONG: "Filename too long",
  ENOTEMPTY: "Directory not empty",
  ELOOP: "Symbolic link loop",
  EOVERFLOW: "Value too large for data type",
  EDQUOT: "Quota exceeded",
  ESTALE: "Stale file handle",
  ENOTSUP: "Not supported",
  EOPNOTSUPP: "Not supported",
  ECANCELED: "Operation canceled"
}

const errnoNumbers = NodeOs.constants.errno as Readonly<Record<string, number>>

const codeOfNumber = new Map(Object.entries(errnoNumbers).map(([code, number]) => [number, code]))

/** The name of an OS error number (`17` → `EEXIST`), or `undefined`. */
export const errnoCode = (errno: number): string | undefined => codeOfNumber.get(errno)

/** Rust's text of OS error `code` (`ENOENT` → "No such file or directory (os error 2)"). */
export const osErrorText = (code: string): string => {
  const errno = errnoNumbers[code]
  const text = muslText[code] ?? code
  return errno === undefined ? text : `${text} (os error ${errno})`
}

/** The typed reason for OS error `code` on `path`. */
export const fromErrnoCode = (code: string, path: string): ExecutorErrorReason => {
  const description = osErrorText(code)
  switch (code) {
    case "ENOENT":
      return new PathNotFound({ path, description })
    case "EACCES":
    case "EPERM":
      return new PathAccessDenied({ path, description })
    default:
      return new FileSystemFailure({ path, code, errno: errnoNumbers[code] ?? 0, description })
  }
}

/**
 * The typed reason for whatever a `node:fs` call threw on `path`: an OS error
 * by its code; anything else (Node refusing an argument) is invalid input.
 */
export const fromNodeError = (error: unknown, path: string): ExecutorErrorReason => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (typeof code === "string" && errnoNumbers[code] !== undefined) return fromErrnoCode(code, path)
  return new InvalidRequest({ description: error instanceof Error ? error.message : String(error) })
}

/** Fails with `reason` (the file system's callers find it here). */
export { failWith } from "../../Executor.ts"

/** Runs a `node:fs` call; what it throws becomes the typed reason for `path`. */
export const attempt = <A>(path: string, run: () => Promise<A>): Effect.Effect<A, ExecutorError> =>
  Effect.tryPromise({ try: run, catch: (error) => new ExecutorError({ reason: fromNodeError(error, path) }) })
