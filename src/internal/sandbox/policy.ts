/**
 * A sandbox policy resolved against this host: Codex's entries (special paths,
 * workspace roots and subpaths, absolute paths) become rules on real absolute
 * paths, the policy says what confinement it needs, and `accessOf` answers
 * what it grants to any path. The bubblewrap mount plan and the `fs/*`
 * methods both read the same resolution, so a path a process may write is a
 * path a file call may write.
 *
 * The rules follow Codex's (`codex-rs/protocol` permissions): the most
 * specific path wins, and on a tie `deny` beats `write`, which beats `read`; a
 * path no rule covers is denied; `write` rules on paths that do not exist are
 * dropped; inside every writable root `.git`, `.agents`, `.codex` and `.aws`
 * (and the git directory a `.git` file points to) stay read-only, whatever
 * more specific `write` rule says otherwise. Whatever cannot be enforced as
 * written is refused with `SandboxRefused`, never dropped where dropping
 * would widen access.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { SandboxRefused } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { registryDirectory } from "./mountPoints.ts"

/** What a rule grants. */
export type Access = "read" | "write" | "deny"

/** One resolved entry: an absolute real path and what it grants. */
export interface Rule {
  readonly path: string
  readonly access: Access
}

/**
 * The confinement a policy needs: `none` (it restricts nothing: run the
 * command as is), `network` (the whole file system writable, the network
 * restricted), or `full` (file system restrictions, and the network's).
 */
export type Confinement = "none" | "network" | "full"

/** A policy resolved against the host. */
export interface ResolvedPolicy {
  readonly confinement: Confinement
  readonly network: Protocol.SandboxNetwork
  /** The explicit rules (the minimal read set included), on real paths; write rules on missing paths dropped. */
  readonly rules: ReadonlyArray<Rule>
  /** Writable roots that exist, shortest first. */
  readonly writableRoots: ReadonlyArray<string>
  /** Paths kept read-only inside writable roots, whether or not they exist. */
  readonly protectedPaths: ReadonlyArray<string>
  /**
   * Symlinks of the minimal read set (`/bin` → `usr/bin` on a merged-/usr
   * system): where `/` is not readable, the sandbox needs them as links.
   */
  readonly links: ReadonlyArray<{ readonly path: string; readonly target: string }>
}

/** What a policy is read against, besides its own context. */
export interface ResolveOptions {
  /** `TMPDIR` of the command's environment, for the `tmpdir` special path. */
  readonly tmpdir: string | undefined
  /** Paths no confined policy grants, whatever it says (default: the sandboxes' own registry). */
  readonly hidden?: ReadonlyArray<string>
}

/** Names kept read-only inside every writable root. */
export const protectedNames: ReadonlyArray<string> = [".git", ".agents", ".codex", ".aws"]

/** The platform's read set (Codex's `minimal`), those of them that exist. */
const minimalPaths = ["/bin", "/sbin", "/usr", "/etc", "/lib", "/lib64", "/nix/store", "/run/current-system/sw"]

const accessRank: Record<Access, number> = { read: 0, write: 1, deny: 2 }

// =============================================================================
// Paths
// =============================================================================

/** Whether `path` is `root` or lies below it (both absolute and normalized). */
export const isWithin = (path: string, root: string): boolean =>
  path === root || path.startsWith(root === "/" ? "/" : `${root}/`)

const depthOf = (path: string): number => {
  if (path === "/") return 0
  let depth = 0
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 0x2f) depth++
  return depth
}

/** Each rule's depth, counted once (the access of a path looks at every rule). */
const ruleDepths = new WeakMap<Rule, number>()
const depthOfRule = (rule: Rule): number => {
  let depth = ruleDepths.get(rule)
  if (depth === undefined) {
    depth = depthOf(rule.path)
    ruleDepths.set(rule, depth)
  }
  return depth
}

const lstatOrUndefined = (path: string): NodeFs.Stats | undefined => {
  try {
    return NodeFs.lstatSync(path)
  } catch {
    return undefined
  }
}

const realPathOrUndefined = (path: string): string | undefined => {
  try {
    return NodeFs.realpathSync.native(path)
  } catch {
    return undefined
  }
}

/**
 * `path` made absolute and normalized, with the symlinks of its longest
 * existing ancestor resolved; the part below it is kept as written (it does
 * not exist, so it has no links to follow). The ancestor is found by bisection
 * (an ancestor of one that resolves resolves too), so a deep path costs a few
 * `realpath` calls, not one per level.
 */
export const realPathOf = (path: string): string => {
  const absolute = NodePath.resolve("/", path)
  const whole = realPathOrUndefined(absolute)
  if (whole !== undefined) return whole
  // ancestor k is absolute.slice(0, ends[k]): "/a", "/a/b", …; the whole path does not resolve
  const ends: Array<number> = []
  for (let i = 1; i < absolute.length; i++) if (absolute.charCodeAt(i) === 0x2f) ends.push(i)
  // the deepest ancestor known to resolve (-1: only "/"), and the shallowest known not to
  let low = -1
  let high = ends.length
  let resolved: string | undefined
  while (high - low > 1) {
    const middle = (low + high) >>> 1
    const real = realPathOrUndefined(absolute.slice(0, ends[middle]))
    if (real === undefined) high = middle
    else {
      low = middle
      resolved = real
    }
  }
  const base = resolved ?? realPathOrUndefined("/") ?? "/"
  const missing = absolute.slice(low === -1 ? 1 : ends[low]! + 1)
  return base === "/" ? `/${missing}` : `${base}/${missing}`
}

// =============================================================================
// Access
// =============================================================================

/** The access the explicit rules give `path`: the most specific rule, ties by deny > write > read; none: deny. */
export const explicitAccess = (rules: ReadonlyArray<Rule>, path: string): Access => {
  let best: Rule | undefined
  let bestDepth = -1
  for (const rule of rules) {
    if (!isWithin(path, rule.path)) continue
    const depth = depthOfRule(rule)
    if (depth > bestDepth || (depth === bestDepth && accessRank[rule.access] > accessRank[best!.access])) {
      best = rule
      bestDepth = depth
    }
  }
  return best?.access ?? "deny"
}

/**
 * What `policy` grants on `path` (absolute, its symlinks already resolved with
 * {@link realPathOf}). A policy that confines no file access grants `write`
 * everywhere.
 */
export const accessOf = (policy: ResolvedPolicy, path: string): Access => {
  if (policy.confinement !== "full") return "write"
  const access = explicitAccess(policy.rules, path)
  return access === "write" && policy.protectedPaths.some((protectedPath) => isWithin(path, protectedPath))
    ? "read"
    : access
}

/** Whether `policy` lets a process read `path` (any absolute path: its existing ancestors' symlinks are resolved). */
export const canRead = (policy: ResolvedPolicy, path: string): boolean => accessOf(policy, realPathOf(path)) !== "deny"

/** Whether `policy` lets a process write `path` (any absolute path: its existing ancestors' symlinks are resolved). */
export const canWrite = (policy: ResolvedPolicy, path: string): boolean =>
  accessOf(policy, realPathOf(path)) === "write"

/** Whether `policy` lets a process read `path` and everything below it (no denied path inside). */
export const canReadTree = (policy: ResolvedPolicy, path: string): boolean => {
  const real = realPathOf(path)
  if (accessOf(policy, real) === "deny") return false
  return policy.confinement !== "full" ||
    !policy.rules.some((rule) => rule.path !== real && isWithin(rule.path, real) && rule.access === "deny")
}

/** Whether `policy` lets a process write `path` and everything below it (no read-only or denied path inside). */
export const canWriteTree = (policy: ResolvedPolicy, path: string): boolean => {
  const real = realPathOf(path)
  if (accessOf(policy, real) !== "write") return false
  return policy.confinement !== "full" || (
    !policy.rules.some((rule) => isWithin(rule.path, real) && accessOf(policy, rule.path) !== "write") &&
    !policy.protectedPaths.some((protectedPath) => isWithin(protectedPath, real))
  )
}

// =============================================================================
// Resolution
// =============================================================================

const refuse = (description: string): never => {
  throw new SandboxRefused({ kind: "Unsupported", description })
}

/** The longest path Linux opens (`PATH_MAX`): a longer one names nothing this host could mount. */
const maxPathBytes = 4096

/** Refuses a path no file can have; a short quote names it. */
const checkPathLength = (path: string): void => {
  const bytes = Buffer.byteLength(path)
  if (bytes > maxPathBytes) {
    refuse(`a path of ${bytes} bytes (${JSON.stringify(path.slice(0, 64))}…): longer than any this host opens`)
  }
}

const accessOfEntry = (access: Protocol.SandboxEntry["access"]): Access => (access === "none" ? "deny" : access)

/** `root` joined with a relative `subpath` that must stay inside it. */
const joinSubpath = (root: string, subpath: string): string => {
  if (NodePath.isAbsolute(subpath)) return refuse(`project_roots subpath ${JSON.stringify(subpath)} is not relative`)
  const joined = NodePath.resolve(root, subpath)
  if (!isWithin(joined, root)) return refuse(`project_roots subpath ${JSON.stringify(subpath)} leaves its root`)
  return joined
}

interface Context {
  readonly workspaceRoots: ReadonlyArray<string>
  readonly tmpdir: string | undefined
}

/** The absolute paths one entry names (none when it names nothing here). */
const pathsOfEntry = (entry: Protocol.SandboxEntry, context: Context): ReadonlyArray<string> => {
  const access = accessOfEntry(entry.access)
  switch (entry.path.type) {
    case "path":
      return [entry.path.path]
    case "glob_pattern":
      // Codex gives write globs no effect; a read or deny glob narrows access, and we do not expand globs
      return access === "write" ? [] : refuse(`glob_pattern entries (${JSON.stringify(entry.path.pattern)})`)
  }
  const special = entry.path.value
  switch (special.kind) {
    case "root":
      return ["/"]
    case "minimal":
      // handled with the root: the set is read only where the root is not readable
      return access === "deny" ? refuse("a deny entry on the minimal read set") : []
    case "current_working_directory":
      return context.workspaceRoots
    case "project_roots": {
      const subpath = special.subpath
      return subpath === undefined || subpath === null || subpath === ""
        ? context.workspaceRoots
        : context.workspaceRoots.map((root) => joinSubpath(root, subpath))
    }
    case "tmpdir":
      return context.tmpdir !== undefined && NodePath.isAbsolute(context.tmpdir) ? [context.tmpdir] : []
    case "slash_tmp":
      return lstatOrUndefined("/tmp")?.isDirectory() === true ? ["/tmp"] : []
    case "unknown":
      // a newer Codex's special path: ignoring it may only narrow access
      return access === "deny" ? refuse(`the special path ${JSON.stringify(special.path)}`) : []
  }
}

/** The rules of a restricted file system: every entry resolved, and the minimal set where `/` is not readable. */
const rulesOf = (
  fileSystem: Extract<Protocol.SandboxFileSystem, { type: "restricted" }>,
  context: Context
): Pick<ResolvedPolicy, "rules" | "links"> => {
  if (fileSystem.entries.length > Defaults.sandbox.maxEntries) {
    refuse(`a policy of ${fileSystem.entries.length} entries (at most ${Defaults.sandbox.maxEntries})`)
  }
  const rules = new Map<string, Rule>()
  let added = 0
  // entries × workspace roots: bounded as the entries are, before any path is looked up
  const maxRules = Defaults.sandbox.maxEntries + minimalPaths.length
  const add = (path: string, access: Access) => {
    if (++added > maxRules) refuse(`a policy that names more than ${maxRules} paths (its entries for every root)`)
    checkPathLength(path)
    const real = realPathOf(path)
    rules.set(`${access}:${real}`, { path: real, access })
  }
  for (const entry of fileSystem.entries) {
    for (const path of pathsOfEntry(entry, context)) add(path, accessOfEntry(entry.access))
  }
  const wantsMinimal = fileSystem.entries.some((entry) =>
    entry.path.type === "special" && entry.path.value.kind === "minimal" && entry.access !== "deny" &&
    entry.access !== "none"
  )
  const links: Array<{ readonly path: string; readonly target: string }> = []
  if (wantsMinimal && explicitAccess([...rules.values()], "/") === "deny") {
    for (const path of minimalPaths) {
      const stats = lstatOrUndefined(path)
      if (stats?.isSymbolicLink() === true) links.push({ path, target: NodeFs.readlinkSync(path) })
      if (stats !== undefined) add(path, "read")
    }
  }
  return {
    // a write root that does not exist grants nothing (Codex drops it too)
    rules: [...rules.values()].filter((rule) => rule.access !== "write" || lstatOrUndefined(rule.path) !== undefined),
    links
  }
}

/** The start of a file, at most `bytes` of it (a file a client wrote may be of any size). */
const readHead = (path: string, bytes: number): string => {
  const descriptor = NodeFs.openSync(path, NodeFs.constants.O_RDONLY | NodeFs.constants.O_NONBLOCK)
  try {
    const buffer = Buffer.alloc(bytes)
    return buffer.subarray(0, NodeFs.readSync(descriptor, buffer, 0, bytes, 0)).toString("utf8")
  } finally {
    NodeFs.closeSync(descriptor)
  }
}

/** The git directory a `.git` file (a worktree's or a submodule's) points to, if any. */
const gitDirOf = (dotGit: string): string | undefined => {
  try {
    // git's own `.git` files are one short line; a path is at most PATH_MAX
    const match = /^gitdir:\s*(.+)$/m.exec(readHead(dotGit, maxPathBytes + 64))
    return match === null ? undefined : realPathOf(NodePath.resolve(NodePath.dirname(dotGit), match[1]!.trim()))
  } catch {
    return undefined
  }
}

/** The read-only paths inside each writable root. A protected name that is a symlink cannot be pinned: refused. */
const protectedPathsOf = (writableRoots: ReadonlyArray<string>): ReadonlyArray<string> => {
  const paths = new Set<string>()
  for (const root of writableRoots) {
    for (const name of protectedNames) {
      const path = NodePath.join(root, name)
      const stats = lstatOrUndefined(path)
      if (stats?.isSymbolicLink() === true) {
        refuse(`${path} is a symlink, so it cannot be kept read-only inside a writable root`)
      }
      paths.add(path)
      if (name === ".git" && stats?.isFile() === true) {
        const gitDir = gitDirOf(path)
        if (gitDir !== undefined) paths.add(gitDir)
      }
    }
  }
  return [...paths]
}

/** Whether the rules let every path be written: `/` writable and no rule narrowing it. */
const isFullDiskWrite = (rules: ReadonlyArray<Rule>): boolean =>
  explicitAccess(rules, "/") === "write" &&
  rules.every((rule) => rule.access === "write" || explicitAccess(rules, rule.path) === "write")

const resolveSync = (context: Protocol.SandboxContext, options: ResolveOptions): ResolvedPolicy => {
  const { permissions } = context
  const unconfined: ResolvedPolicy = {
    confinement: "none",
    network: "enabled",
    rules: [{ path: "/", access: "write" }],
    writableRoots: [],
    protectedPaths: [],
    links: []
  }
  if (permissions.type === "disabled") return unconfined
  const network = permissions.network
  const wholeDiskWritable: ResolvedPolicy = {
    ...unconfined,
    confinement: network === "enabled" ? "none" : "network",
    network
  }
  if (permissions.type === "external" || permissions.file_system.type === "unrestricted") return wholeDiskWritable
  const workspaceRoots = context.workspaceRoots ?? context.policyContext?.workspaceRoots ?? []
  const { links, rules } = rulesOf(permissions.file_system, { workspaceRoots, tmpdir: options.tmpdir })
  if (isFullDiskWrite(rules)) return wholeDiskWritable
  if (context.useLegacyLandlock === true) refuse("useLegacyLandlock with a restricted file system")
  const writableRoots = rules
    .filter((rule) => rule.access === "write" && explicitAccess(rules, rule.path) === "write")
    .map((rule) => rule.path)
    .sort((a, b) => depthOf(a) - depthOf(b) || a.localeCompare(b))
  const hidden = (options.hidden ?? [registryDirectory()]).map((path): Rule => ({
    path: realPathOf(path),
    access: "deny"
  }))
  return {
    confinement: "full",
    network,
    rules: [...rules, ...hidden],
    writableRoots,
    protectedPaths: protectedPathsOf(writableRoots),
    links
  }
}

/**
 * Resolves a `sandbox` context against this host: project roots become the
 * context's workspace roots, `tmpdir` the command's `TMPDIR`, every path its
 * real path. Fails with `SandboxRefused` (`Unsupported`) for what it cannot
 * enforce as written.
 */
export const resolvePolicy = (
  context: Protocol.SandboxContext,
  options: ResolveOptions
): Effect.Effect<ResolvedPolicy, SandboxRefused> =>
  Effect.try({
    try: () => resolveSync(context, options),
    catch: (error) =>
      error instanceof SandboxRefused
        ? error
        : new SandboxRefused({ kind: "Unsupported", description: `cannot resolve the policy: ${String(error)}` })
  })
