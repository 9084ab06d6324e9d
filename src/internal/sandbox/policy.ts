/**
 * A sandbox policy resolved against this host: Codex's entries (special paths,
 * workspace roots and subpaths, absolute paths) become rules on real absolute
 * paths, the policy says what confinement it needs, and `accessOf` answers
 * what it grants to any real path. The bubblewrap mount plan and the `fs/*`
 * methods both read the same resolution, so a path a process may write is a
 * path a file call may write.
 *
 * The rules follow Codex's (`codex-rs/protocol` permissions): the most
 * specific path wins, and on a tie `deny` beats `write`, which beats `read`; a
 * path no rule covers is denied; `write` rules on paths that do not exist are
 * dropped; inside every writable root `.git`, `.agents`, `.codex` and `.aws`
 * (and the git directory a `.git` file points to) stay read-only, whatever
 * more specific `write` rule says otherwise. A denied directory hides what is
 * below it, more specific rules included (the sandbox mounts an unreadable
 * directory there), and the hidden paths (the sandboxes' own registry) are
 * denied whatever any rule says at or below them. Whatever cannot be enforced
 * as written is refused with `SandboxRefused`, never dropped where dropping
 * would widen access.
 *
 * Resolving reads the file system (real paths, a `.git` file's head)
 * asynchronously: a policy arrives with every sandboxed request.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { SandboxRefused } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import * as Paths from "../fs/paths.ts"
import { depthOf, isWithin, lstatOrUndefined } from "../fs/paths.ts"
import { registryDirectory } from "./mountPoints.ts"
import { protectedNames } from "./protectedNames.ts"

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
  /** The explicit rules (the minimal read set and the hidden paths included), on real paths. */
  readonly rules: ReadonlyArray<Rule>
  /** Writable roots that exist, shortest first. */
  readonly writableRoots: ReadonlyArray<string>
  /** Paths kept read-only inside writable roots, whether or not they exist. */
  readonly protectedPaths: ReadonlyArray<string>
  /** Paths denied whatever any rule says at or below them (real paths). */
  readonly hidden: ReadonlyArray<string>
  /**
   * The directories the sandbox mounts unreadable (denied where their parent
   * is not), the hidden paths among them: nothing below one can be reached.
   */
  readonly hiding: ReadonlyArray<string>
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

/** The platform's read set (Codex's `minimal`), those of them that exist. */
const minimalPaths = ["/bin", "/sbin", "/usr", "/etc", "/lib", "/lib64", "/nix/store", "/run/current-system/sw"]

const accessRank: Record<Access, number> = { read: 0, write: 1, deny: 2 }

/** The longest path Linux opens (`PATH_MAX`): a longer one names nothing this host could mount. */
const maxPathBytes = 4096

// =============================================================================
// Paths
// =============================================================================

/** {@link Paths.realPathOf} as an Effect. */
const realPathOf = (path: string): Effect.Effect<string> => Effect.promise(() => Paths.realPathOf(path))

// =============================================================================
// Access
// =============================================================================

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

/** The rule that decides `path`: the most specific, ties by deny > write > read; none when no rule covers it. */
const decidingRule = (rules: ReadonlyArray<Rule>, path: string): Rule | undefined => {
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
  return best
}

/** The access the explicit rules give `path`: the deciding rule's; deny when no rule covers it. */
export const explicitAccess = (rules: ReadonlyArray<Rule>, path: string): Access =>
  decidingRule(rules, path)?.access ?? "deny"

/** What the rules and the protected paths give `path`, before a denied directory above it is considered. */
const ruleAccess = (policy: ResolvedPolicy, path: string): Access => {
  const access = explicitAccess(policy.rules, path)
  return access === "write" && policy.protectedPaths.some((protectedPath) => isWithin(path, protectedPath))
    ? "read"
    : access
}

/** The directory the sandbox mounts unreadable that hides `path` (a hidden path at or above it, or a strict ancestor). */
const hidingAncestor = (policy: ResolvedPolicy, path: string): string | undefined =>
  policy.hidden.find((hidden) => isWithin(path, hidden)) ??
    policy.hiding.find((directory) => directory !== path && isWithin(path, directory))

/** The directories a policy's sandbox mounts unreadable: its hidden paths, and deny rules whose parent is not denied. */
const hidingOf = (policy: ResolvedPolicy): ReadonlyArray<string> => [
  ...policy.hidden,
  ...policy.rules
    .filter((rule) =>
      rule.access === "deny" && rule.path !== "/" && ruleAccess(policy, rule.path) === "deny" &&
      ruleAccess(policy, NodePath.dirname(rule.path)) !== "deny"
    )
    .map((rule) => rule.path)
]

/**
 * What `policy` grants on `path` (absolute, its symlinks already resolved):
 * a process confined by it reads, writes, or cannot see it. A policy that
 * confines no file access grants `write` everywhere.
 */
export const accessOf = (policy: ResolvedPolicy, path: string): Access => {
  if (policy.confinement !== "full") return "write"
  return hidingAncestor(policy, path) === undefined ? ruleAccess(policy, path) : "deny"
}

/**
 * Why a confined process cannot see `path` (a real path `accessOf` denies),
 * as its system calls would fail: `EACCES` when an unreadable mount hides it
 * (a `deny` rule, a hidden path), `ENOENT` when nothing was mounted there
 * (no rule covers it, and `/` is not readable).
 */
export const denialOf = (policy: ResolvedPolicy, path: string): "EACCES" | "ENOENT" =>
  hidingAncestor(policy, path) !== undefined || decidingRule(policy.rules, path)?.access === "deny"
    ? "EACCES"
    : "ENOENT"

/** Whether `policy` lets a process read everything at and below real path `path` (no denied path inside). */
export const canReadTree = (policy: ResolvedPolicy, path: string): boolean =>
  accessOf(policy, path) !== "deny" && (policy.confinement !== "full" ||
    !policy.rules.some((rule) => rule.path !== path && isWithin(rule.path, path) && rule.access === "deny"))

/** Whether `policy` lets a process write everything at and below real path `path` (nothing read-only or hidden). */
export const canWriteTree = (policy: ResolvedPolicy, path: string): boolean =>
  accessOf(policy, path) === "write" && (policy.confinement !== "full" || (
    !policy.rules.some((rule) => isWithin(rule.path, path) && accessOf(policy, rule.path) !== "write") &&
    !policy.protectedPaths.some((protectedPath) => isWithin(protectedPath, path))
  ))

/** Whether `policy` lets a process read `path` (any absolute path: its existing part's symlinks are resolved). */
export const canRead = (policy: ResolvedPolicy, path: string): Effect.Effect<boolean> =>
  Effect.map(realPathOf(path), (real) => accessOf(policy, real) !== "deny")

/** Whether `policy` lets a process write `path` (any absolute path: its existing part's symlinks are resolved). */
export const canWrite = (policy: ResolvedPolicy, path: string): Effect.Effect<boolean> =>
  Effect.map(realPathOf(path), (real) => accessOf(policy, real) === "write")

// =============================================================================
// Resolution
// =============================================================================

const refuse = (description: string): Effect.Effect<never, SandboxRefused> =>
  Effect.fail(new SandboxRefused({ kind: "Unsupported", description }))

/** Refuses a path no file can have; a short quote names it. */
const checkPathLength = (path: string): Effect.Effect<void, SandboxRefused> => {
  const bytes = Buffer.byteLength(path)
  return bytes > maxPathBytes
    ? refuse(`a path of ${bytes} bytes (${JSON.stringify(path.slice(0, 64))}…): longer than any this host opens`)
    : Effect.void
}

const accessOfEntry = (access: Protocol.SandboxEntry["access"]): Access => (access === "none" ? "deny" : access)

/** `root` joined with a relative `subpath` that must stay inside it. */
const joinSubpath = (root: string, subpath: string): Effect.Effect<string, SandboxRefused> => {
  if (NodePath.isAbsolute(subpath)) return refuse(`project_roots subpath ${JSON.stringify(subpath)} is not relative`)
  const joined = NodePath.resolve(root, subpath)
  return isWithin(joined, NodePath.resolve(root))
    ? Effect.succeed(joined)
    : refuse(`project_roots subpath ${JSON.stringify(subpath)} leaves its root`)
}

interface Context {
  readonly workspaceRoots: ReadonlyArray<string>
  readonly tmpdir: string | undefined
}

/** The absolute paths one entry names (none when it names nothing here). */
const pathsOfEntry = (
  entry: Protocol.SandboxEntry,
  context: Context
): Effect.Effect<ReadonlyArray<string>, SandboxRefused> => {
  const access = accessOfEntry(entry.access)
  switch (entry.path.type) {
    case "path":
      return Effect.succeed([entry.path.path])
    case "glob_pattern":
      // Codex gives write globs no effect; a read or deny glob narrows access, and we do not expand globs
      return access === "write"
        ? Effect.succeed([])
        : refuse(`glob_pattern entries (${JSON.stringify(entry.path.pattern)})`)
  }
  const special = entry.path.value
  switch (special.kind) {
    case "root":
      return Effect.succeed(["/"])
    case "minimal":
      // handled with the root: the set is read only where the root is not readable
      return access === "deny" ? refuse("a deny entry on the minimal read set") : Effect.succeed([])
    case "current_working_directory":
      return Effect.succeed(context.workspaceRoots)
    case "project_roots": {
      const subpath = special.subpath
      return subpath === undefined || subpath === null || subpath === ""
        ? Effect.succeed(context.workspaceRoots)
        : Effect.forEach(context.workspaceRoots, (root) => joinSubpath(root, subpath))
    }
    case "tmpdir":
      return Effect.succeed(
        context.tmpdir !== undefined && NodePath.isAbsolute(context.tmpdir) ? [context.tmpdir] : []
      )
    case "slash_tmp":
      return Effect.map(lstatOrUndefined("/tmp"), (stats) => stats?.isDirectory() === true ? ["/tmp"] : [])
    case "unknown":
      // a newer Codex's special path: ignoring it may only narrow access
      return access === "deny" ? refuse(`the special path ${JSON.stringify(special.path)}`) : Effect.succeed([])
  }
}

/** The rules of a restricted file system: every entry resolved, and the minimal set where `/` is not readable. */
const rulesOf = Effect.fnUntraced(function*(
  fileSystem: Extract<Protocol.SandboxFileSystem, { type: "restricted" }>,
  context: Context
) {
  if (fileSystem.entries.length > Defaults.sandbox.maxEntries) {
    return yield* refuse(`a policy of ${fileSystem.entries.length} entries (at most ${Defaults.sandbox.maxEntries})`)
  }
  const named: Array<{ readonly path: string; readonly access: Access }> = []
  // entries × workspace roots: bounded as the entries are, before any path is looked up
  const maxRules = Defaults.sandbox.maxEntries + minimalPaths.length
  for (const entry of fileSystem.entries) {
    for (const path of yield* pathsOfEntry(entry, context)) {
      if (named.length === maxRules) {
        return yield* refuse(`a policy that names more than ${maxRules} paths (its entries for every root)`)
      }
      yield* checkPathLength(path)
      named.push({ path, access: accessOfEntry(entry.access) })
    }
  }
  const rules = new Map<string, Rule>()
  for (const { access, path } of named) {
    const real = yield* realPathOf(path)
    rules.set(`${access}:${real}`, { path: real, access })
  }
  const wantsMinimal = fileSystem.entries.some((entry) =>
    entry.path.type === "special" && entry.path.value.kind === "minimal" && entry.access !== "deny" &&
    entry.access !== "none"
  )
  const links: Array<{ readonly path: string; readonly target: string }> = []
  if (wantsMinimal && explicitAccess([...rules.values()], "/") === "deny") {
    for (const path of minimalPaths) {
      const stats = yield* lstatOrUndefined(path)
      if (stats === undefined) continue
      if (stats.isSymbolicLink()) links.push({ path, target: yield* Effect.promise(() => NodeFs.readlink(path)) })
      const real = yield* realPathOf(path)
      rules.set(`read:${real}`, { path: real, access: "read" })
    }
  }
  // a write root that does not exist grants nothing (Codex drops it too)
  const kept: Array<Rule> = []
  for (const rule of rules.values()) {
    if (rule.access !== "write" || (yield* lstatOrUndefined(rule.path)) !== undefined) kept.push(rule)
  }
  return { rules: kept, links }
})

/** The start of a file, at most `bytes` of it (a file a client wrote may be of any size). */
const readHead = async (path: string, bytes: number): Promise<string> => {
  const file = await NodeFs.open(path, NodeFs.constants.O_RDONLY | NodeFs.constants.O_NONBLOCK)
  try {
    const buffer = Buffer.alloc(bytes)
    const { bytesRead } = await file.read(buffer, 0, bytes, 0)
    return buffer.subarray(0, bytesRead).toString("utf8")
  } finally {
    await file.close()
  }
}

/** The git directory a `.git` file (a worktree's or a submodule's) points to, if any. */
const gitDirOf = (dotGit: string): Effect.Effect<string | undefined> =>
  Effect.flatMap(
    // git's own `.git` files are one short line; a path is at most PATH_MAX
    Effect.promise(() => readHead(dotGit, maxPathBytes + 64).catch(() => "")),
    (head) => {
      const match = /^gitdir:\s*(.+)$/m.exec(head)
      return match === null
        ? Effect.undefined
        : realPathOf(NodePath.resolve(NodePath.dirname(dotGit), match[1]!.trim()))
    }
  )

/** The read-only paths inside each writable root. A protected name that is a symlink cannot be pinned: refused. */
const protectedPathsOf = Effect.fnUntraced(function*(writableRoots: ReadonlyArray<string>) {
  const paths = new Set<string>()
  for (const root of writableRoots) {
    for (const name of protectedNames) {
      const path = NodePath.join(root, name)
      const stats = yield* lstatOrUndefined(path)
      if (stats?.isSymbolicLink() === true) {
        return yield* refuse(`${path} is a symlink, so it cannot be kept read-only inside a writable root`)
      }
      paths.add(path)
      if (name === ".git" && stats?.isFile() === true) {
        const gitDir = yield* gitDirOf(path)
        if (gitDir !== undefined) paths.add(gitDir)
      }
    }
  }
  return [...paths]
})

/** Whether the rules let every path be written: `/` writable and no rule narrowing it. */
const isFullDiskWrite = (rules: ReadonlyArray<Rule>): boolean =>
  explicitAccess(rules, "/") === "write" &&
  rules.every((rule) => rule.access === "write" || explicitAccess(rules, rule.path) === "write")

const unconfined: ResolvedPolicy = {
  confinement: "none",
  network: "enabled",
  rules: [{ path: "/", access: "write" }],
  writableRoots: [],
  protectedPaths: [],
  hidden: [],
  hiding: [],
  links: []
}

/**
 * Resolves a `sandbox` context against this host: project roots become the
 * context's workspace roots, `tmpdir` the command's `TMPDIR`, every path its
 * real path. Fails with `SandboxRefused` (`Unsupported`) for what it cannot
 * enforce as written.
 */
export const resolvePolicy = Effect.fnUntraced(function*(
  context: Protocol.SandboxContext,
  options: ResolveOptions
): Effect.fn.Return<ResolvedPolicy, SandboxRefused> {
  const { permissions } = context
  if (permissions.type === "disabled") return unconfined
  const network = permissions.network
  const wholeDiskWritable: ResolvedPolicy = {
    ...unconfined,
    confinement: network === "enabled" ? "none" : "network",
    network
  }
  if (permissions.type === "external" || permissions.file_system.type === "unrestricted") return wholeDiskWritable
  const workspaceRoots = context.workspaceRoots ?? context.policyContext?.workspaceRoots ?? []
  const resolved = yield* rulesOf(permissions.file_system, { workspaceRoots, tmpdir: options.tmpdir })
  if (isFullDiskWrite(resolved.rules)) return wholeDiskWritable
  if (context.useLegacyLandlock === true) return yield* refuse("useLegacyLandlock with a restricted file system")
  const hidden = yield* Effect.forEach(options.hidden ?? [registryDirectory()], realPathOf)
  // nothing at or below a hidden path is granted, however specific the rule
  const rules = [
    ...resolved.rules.filter((rule) => !hidden.some((path) => isWithin(rule.path, path))),
    ...hidden.map((path): Rule => ({ path, access: "deny" }))
  ]
  const writableRoots = rules
    .filter((rule) => rule.access === "write" && explicitAccess(rules, rule.path) === "write")
    .map((rule) => rule.path)
    .sort((a, b) => depthOf(a) - depthOf(b) || a.localeCompare(b))
  const policy: ResolvedPolicy = {
    confinement: "full",
    network,
    rules,
    writableRoots,
    protectedPaths: yield* protectedPathsOf(writableRoots),
    hidden,
    hiding: [],
    links: resolved.links
  }
  return { ...policy, hiding: hidingOf(policy) }
})
