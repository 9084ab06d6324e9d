/**
 * Builds a child's environment from the server's own by an `EnvPolicy`
 * (Codex's shell environment policy), then lays the request's `env` on top.
 * Names are matched against the policy's globs in one pass each (`glob.ts`),
 * at a cost proportional to the patterns' length, which `startChecks.ts`
 * bounds before this runs.
 *
 * @internal
 */
import type * as Protocol from "../../Protocol.ts"
import { compileGlobs, foldCase, matchesAnyFolded } from "./glob.ts"

/** The variables `inherit: "core"` keeps. */
const coreVariables = new Set(["HOME", "LOGNAME", "PATH", "SHELL", "USER", "USERNAME", "TMPDIR", "TEMP", "TMP"])

/** Names dropped unless `ignoreDefaultExcludes`: they usually hold credentials. */
const defaultExcludes = ["*KEY*", "*SECRET*", "*TOKEN*"]

/** Case-insensitive globs (`*` and `?`) as one predicate on names. */
const globMatcher = (patterns: ReadonlyArray<string>): (name: string) => boolean => {
  const globs = compileGlobs(patterns)
  return (name) => matchesAnyFolded(globs, foldCase(name))
}

/**
 * The environment a child gets: exactly `env` without a policy; with one, the
 * base environment filtered by the policy, its `set` applied, then `env`.
 */
export const childEnvironment = (
  env: Readonly<Record<string, string>>,
  policy: Protocol.EnvPolicy | null | undefined,
  base: Readonly<Record<string, string | undefined>>
): Record<string, string> => {
  if (policy === null || policy === undefined) return { ...env }
  // no prototype: a variable named __proto__ is a variable like any other
  const built: Record<string, string> = Object.create(null)
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined) continue
    if (policy.inherit === "none") continue
    if (policy.inherit === "core" && !coreVariables.has(name)) continue
    built[name] = value
  }
  const drop = globMatcher([...(policy.ignoreDefaultExcludes ? [] : defaultExcludes), ...policy.exclude])
  for (const name of Object.keys(built)) {
    if (drop(name)) delete built[name]
  }
  Object.assign(built, policy.set)
  if (policy.includeOnly.length > 0) {
    const keep = globMatcher(policy.includeOnly)
    for (const name of Object.keys(built)) {
      if (!keep(name)) delete built[name]
    }
  }
  return Object.assign(built, env)
}
