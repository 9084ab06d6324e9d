/**
 * `fs/copy` as Codex 0.169 does it: the source is looked at without following
 * a link; a directory needs `recursive` and is copied into the destination
 * (created with its parents, merged when it exists), never into itself; a
 * link is recreated with the same target text; a file is copied over the
 * destination; anything else (a FIFO, a device) is refused.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs/promises"
import { join } from "node:path"
import { type ExecutorError, InvalidRequest } from "../../Executor.ts"
import { attempt, failWith } from "./osError.ts"
import { isWithin, realPathOf } from "./paths.ts"

/** Codex's words for a source that is neither a file, a directory nor a link. */
export const onlyRegularFiles = "fs/copy only supports regular files, directories, and symlinks"

/** Codex's words for a directory copied without `recursive`. */
export const needsRecursive = "fs/copy requires recursive: true when sourcePath is a directory"

/** Codex's words for a directory copied into itself. */
export const intoItself = "fs/copy cannot copy a directory to itself or one of its descendants"

const copyLink = async (source: string, destination: string): Promise<void> =>
  NodeFs.symlink(await NodeFs.readlink(source), destination)

/** Copies the children of directory `source` into `destination`, which is created first. */
const copyDirectory = async (source: string, destination: string): Promise<void> => {
  await NodeFs.mkdir(destination, { recursive: true })
  for await (const entry of await NodeFs.opendir(source)) {
    const from = join(source, entry.name)
    const to = join(destination, entry.name)
    const stats = await NodeFs.lstat(from)
    if (stats.isDirectory()) await copyDirectory(from, to)
    else if (stats.isSymbolicLink()) await copyLink(from, to)
    else if (stats.isFile()) await NodeFs.copyFile(from, to)
    else throw new Error(`${onlyRegularFiles}: ${from}`)
  }
}

/** Whether `destination` is `source` or lies inside it, links resolved. */
const isInside = async (source: string, destination: string): Promise<boolean> =>
  isWithin(await realPathOf(destination), await NodeFs.realpath(source))

/** Copies `source` to `destination` (see the module header). */
export const copyPath = (
  source: string,
  destination: string,
  recursive: boolean
): Effect.Effect<void, ExecutorError> =>
  Effect.gen(function*() {
    const stats = yield* attempt(source, () => NodeFs.lstat(source))
    if (stats.isDirectory()) {
      if (!recursive) {
        return yield* failWith(
          new InvalidRequest({ description: needsRecursive })
        )
      }
      if (yield* attempt(source, () => isInside(source, destination))) {
        return yield* failWith(
          new InvalidRequest({ description: intoItself })
        )
      }
      return yield* attempt(destination, () => copyDirectory(source, destination))
    }
    if (stats.isSymbolicLink()) return yield* attempt(destination, () => copyLink(source, destination))
    if (stats.isFile()) return yield* attempt(destination, () => NodeFs.copyFile(source, destination))
    return yield* failWith(new InvalidRequest({ description: onlyRegularFiles }))
  })
