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
import { dirname, join, relative } from "node:path"
import { type ExecutorError, InvalidRequest } from "../../Executor.ts"
import { attempt, failWith } from "./osError.ts"

const onlyRegularFiles = "fs/copy only supports regular files, directories, and symlinks"

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

/** `path` with its links resolved as far as it exists (the rest appended as written). */
const resolveExisting = async (path: string): Promise<string> => {
  try {
    return await NodeFs.realpath(path)
  } catch {
    const parent = dirname(path)
    return parent === path ? path : join(await resolveExisting(parent), relative(parent, path))
  }
}

/** Whether `destination` is `source` or lies inside it, links resolved. */
const isWithin = async (source: string, destination: string): Promise<boolean> => {
  const from = await NodeFs.realpath(source)
  const to = await resolveExisting(destination)
  return to === from || to.startsWith(from.endsWith("/") ? from : `${from}/`)
}

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
          new InvalidRequest({ description: "fs/copy requires recursive: true when sourcePath is a directory" })
        )
      }
      if (yield* attempt(source, () => isWithin(source, destination))) {
        return yield* failWith(
          new InvalidRequest({ description: "fs/copy cannot copy a directory to itself or one of its descendants" })
        )
      }
      return yield* attempt(destination, () => copyDirectory(source, destination))
    }
    if (stats.isSymbolicLink()) return yield* attempt(destination, () => copyLink(source, destination))
    if (stats.isFile()) return yield* attempt(destination, () => NodeFs.copyFile(source, destination))
    return yield* failWith(new InvalidRequest({ description: onlyRegularFiles }))
  })
