/**
 * Absolute paths as the kernel reads them: whether one lies below another,
 * how deep it is, and where a path really leads (its links resolved), shared
 * by the sandbox's policy and mounts and by the `fs/*` methods.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Stats } from "node:fs"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"

/** Whether `path` is `root` or lies below it (both absolute and normalized). */
export const isWithin = (path: string, root: string): boolean =>
  path === root || path.startsWith(root === "/" ? "/" : `${root}/`)

/** How many components `path` (absolute, normalized) has: 0 for `/`. */
export const depthOf = (path: string): number => {
  if (path === "/") return 0
  let depth = 0
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 0x2f) depth++
  return depth
}

/** `lstat` of `path`, or `undefined` when there is nothing there (or it cannot be looked at). */
export const lstatOrUndefined = (path: string): Effect.Effect<Stats | undefined> =>
  Effect.promise(() => NodeFs.lstat(path).catch(() => undefined))

/** `stat` of `path` (links followed), or `undefined`. */
export const statOrUndefined = (path: string): Effect.Effect<Stats | undefined> =>
  Effect.promise(() => NodeFs.stat(path).catch(() => undefined))

const realPathOrUndefined = (path: string): Promise<string | undefined> => NodeFs.realpath(path).catch(() => undefined)

/**
 * `path` (absolute) with the links of its longest existing prefix resolved as
 * the kernel resolves them (a `..` after a link leaves the link's target); the
 * part below it does not exist, so it has no links to follow and is only
 * normalized. The prefix is found by bisection (a prefix of one that resolves
 * resolves too), so a deep path costs a few `realpath` calls, not one per
 * level.
 */
export const realPathOf = async (path: string): Promise<string> => {
  const absolute = NodePath.isAbsolute(path) ? path : NodePath.resolve("/", path)
  const whole = await realPathOrUndefined(absolute)
  if (whole !== undefined) return whole
  // prefix k is absolute.slice(0, ends[k]): "/a", "/a/b", …; the whole path does not resolve
  const ends: Array<number> = []
  for (let i = 1; i < absolute.length; i++) if (absolute.charCodeAt(i) === 0x2f) ends.push(i)
  let low = -1
  let high = ends.length
  let resolved = "/"
  while (high - low > 1) {
    const middle = (low + high) >>> 1
    const real = await realPathOrUndefined(absolute.slice(0, ends[middle]))
    if (real === undefined) high = middle
    else {
      low = middle
      resolved = real
    }
  }
  return NodePath.join(resolved, absolute.slice(low === -1 ? 1 : ends[low]! + 1))
}
