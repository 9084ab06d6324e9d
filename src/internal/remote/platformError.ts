/**
 * An `fs/*` call's failure as Effect's `PlatformError`, tagged as Node's file
 * system tags the same OS error (so an app sees the same `NotFound`,
 * `AlreadyExists`, `PermissionDenied`, … locally and remotely). Input the
 * server refused is a `BadArgument`; a lost link or another server error is a
 * `SystemError` tagged `Unknown`. The `ExecutorError` is kept as the cause.
 *
 * @internal
 */
import * as PlatformError from "effect/PlatformError"
import type { ExecutorError } from "../../Executor.ts"

/** The tag Node's file system gives an OS error code (`@effect/platform-node`'s table). */
const tagOfCode = (code: string): PlatformError.SystemErrorTag => {
  switch (code) {
    case "ENOENT":
      return "NotFound"
    case "EACCES":
    case "EPERM":
      return "PermissionDenied"
    case "EEXIST":
      return "AlreadyExists"
    case "EISDIR":
    case "ENOTDIR":
    case "ELOOP":
      return "BadResource"
    case "EBUSY":
      return "Busy"
    default:
      return "Unknown"
  }
}

/** The `PlatformError` for a failed call of file-system method `method` on `path`. */
export const toPlatformError =
  (method: string, path: string) => (error: ExecutorError): PlatformError.PlatformError => {
    const { reason } = error
    const system = (_tag: PlatformError.SystemErrorTag) =>
      PlatformError.systemError({
        _tag,
        module: "FileSystem",
        method,
        pathOrDescriptor: path,
        description: reason.message,
        cause: error
      })
    switch (reason._tag) {
      case "PathNotFound":
        return system("NotFound")
      case "PathAccessDenied":
        return system("PermissionDenied")
      case "FileSystemFailure":
        return system(tagOfCode(reason.code))
      case "FileTooLarge":
      case "InvalidRequest":
      case "Unsupported":
        return PlatformError.badArgument({ module: "FileSystem", method, description: reason.message, cause: error })
      default:
        return system("Unknown")
    }
  }

/** A `BadArgument` for a call the exec-server protocol cannot make as asked. */
export const unsupported = (method: string, description: string): PlatformError.PlatformError =>
  PlatformError.badArgument({ module: "FileSystem", method, description })
