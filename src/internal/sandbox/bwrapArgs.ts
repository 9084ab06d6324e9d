/**
 * The bubblewrap command line for a resolved policy. The file system is
 * built in layers, shortest path first, so a more specific rule is mounted
 * over the one it refines:
 *
 * - the root: read-only (`--ro-bind / /`), writable (`--bind / /`), or, when
 *   it is not readable, an empty tmpfs made read-only at the end, with the
 *   links of the minimal read set (`/bin` → `usr/bin`) and the working
 *   directory by its real path;
 * - a fresh `/dev` and `/proc`;
 * - every path whose access differs from what it inherits: `--bind` to make
 *   it writable, `--ro-bind` to make it read-only, and to hide it an empty
 *   unreadable tmpfs (a directory) or an empty unreadable file;
 * - a path that must stay read-only or hidden but does not exist, inside a
 *   writable part, is masked at its first missing component, which must be
 *   created on the host first (see `mountPoints`); elsewhere nothing can
 *   create it.
 *
 * Then new user, pid, ipc (and, with the network restricted, net)
 * namespaces, no capabilities, no nested user namespaces, a new session, and
 * the seccomp program on a file descriptor. A policy whose whole file system
 * is writable but whose network is restricted gets the host's file system
 * as is (and keeps its user), with the network namespace and filter only.
 *
 * @internal
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { type Access, accessOf, isWithin, realPathOf, type ResolvedPolicy } from "./policy.ts"

/** One mount on top of the root: `path` gets `access`. */
export interface MountOp {
  readonly path: string
  readonly access: Access
}

/** The mounts a policy needs, and the missing targets among them that must be created first. */
export interface MountLayout {
  readonly ops: ReadonlyArray<MountOp>
  readonly placeholders: ReadonlyArray<string>
}

/** A bubblewrap invocation: its arguments (before `--`) and what to feed file descriptors 3, 4, … */
export interface BwrapInvocation {
  readonly args: ReadonlyArray<string>
  readonly inputs: ReadonlyArray<Uint8Array>
}

const statOrUndefined = (path: string): NodeFs.Stats | undefined => {
  try {
    return NodeFs.statSync(path)
  } catch {
    return undefined
  }
}

const isEmptyDirectory = (path: string): boolean => {
  try {
    return NodeFs.readdirSync(path).length === 0
  } catch {
    return false
  }
}

const depthOf = (path: string): number => (path === "/" ? 0 : path.split("/").length - 1)

/** The first component of `path` that does not exist (`path` itself when only it is missing). */
const firstMissing = (path: string): string => {
  let missing = path
  for (let parent = NodePath.dirname(missing); parent !== missing; parent = NodePath.dirname(missing)) {
    if (statOrUndefined(parent) !== undefined) return missing
    missing = parent
  }
  return missing
}

/** The access of the root: what everything inherits. */
const rootAccess = (policy: ResolvedPolicy): Access => accessOf(policy, "/")

/** The mounts `policy` needs on top of its root, shortest path first. */
export const mountLayout = (policy: ResolvedPolicy): MountLayout => {
  const baseline = rootAccess(policy)
  const candidates = [...new Set([...policy.rules.map((rule) => rule.path), ...policy.protectedPaths])]
    .filter((path) => path !== "/")
    .sort((a, b) => depthOf(a) - depthOf(b) || a.localeCompare(b))
  const ops: Array<MountOp> = []
  const placeholders: Array<string> = []
  const inherited = (path: string): Access => {
    for (let index = ops.length - 1; index >= 0; index--) {
      if (isWithin(path, ops[index]!.path)) return ops[index]!.access
    }
    return baseline
  }
  for (const path of candidates) {
    const access = accessOf(policy, path)
    const around = inherited(path)
    if (access === around) continue
    if (statOrUndefined(path) !== undefined) {
      ops.push({ path, access })
      continue
    }
    // missing: nothing to make writable; and where the command cannot write, it cannot create it either
    if (access === "write" || around !== "write") continue
    const target = firstMissing(path)
    if (ops.some((op) => op.path === target)) continue
    ops.push({ path: target, access })
    placeholders.push(target)
  }
  return { ops, placeholders }
}

/** What the sandbox is given besides its mounts. */
export interface InvocationOptions {
  /** The command's working directory. */
  readonly cwd: string
  /** The seccomp program, if any (fed on a file descriptor). */
  readonly seccomp: Uint8Array | undefined
  /**
   * Existing directories to hide from a network-only sandbox (our own
   * bookkeeping); a confined policy hides them with its own deny rules.
   */
  readonly hidden: ReadonlyArray<string>
  /** argv[0] for the command, when the request sets one (needs a bubblewrap with `--argv0`). */
  readonly argv0?: string | undefined
}

/** Collects arguments and the inputs their `--…-fd` arguments name. */
class Builder {
  readonly args: Array<string> = []
  readonly inputs: Array<Uint8Array> = []

  push(...args: ReadonlyArray<string>): void {
    this.args.push(...args)
  }

  /** Adds an input and returns its file descriptor number. */
  input(bytes: Uint8Array): string {
    this.inputs.push(bytes)
    return String(2 + this.inputs.length)
  }

  hide(path: string): void {
    if (statOrUndefined(path)?.isDirectory() === true) {
      this.push("--perms", "000", "--tmpfs", path, "--remount-ro", path)
    } else {
      this.push("--perms", "000", "--ro-bind-data", this.input(new Uint8Array(0)), path)
    }
  }

  finish(options: InvocationOptions): BwrapInvocation {
    if (options.seccomp !== undefined) this.push("--add-seccomp-fd", this.input(options.seccomp))
    this.push("--chdir", options.cwd)
    if (options.argv0 !== undefined) this.push("--argv0", options.argv0)
    return { args: this.args, inputs: this.inputs }
  }
}

/**
 * The invocation for a policy whose file system is restricted, after the
 * layout's placeholders were created (a placeholder that could not be is
 * left out: the command cannot create it either).
 */
export const confinedInvocation = (
  policy: ResolvedPolicy,
  layout: MountLayout,
  options: InvocationOptions
): BwrapInvocation => {
  const builder = new Builder()
  builder.push("--new-session", "--die-with-parent")
  const baseline = rootAccess(policy)
  if (baseline === "write") builder.push("--bind", "/", "/")
  else if (baseline === "read") builder.push("--ro-bind", "/", "/")
  else builder.push("--tmpfs", "/")
  builder.push("--dev", "/dev", "--proc", "/proc")
  for (const op of layout.ops) {
    const stats = statOrUndefined(op.path)
    if (stats === undefined) continue
    if (op.access === "write") builder.push("--bind", op.path, op.path)
    else if (op.access === "deny") builder.hide(op.path)
    else if (stats.isDirectory() && isEmptyDirectory(op.path)) {
      // the same view as binding it, and it holds even if the empty directory is removed meanwhile
      builder.push("--perms", "555", "--tmpfs", op.path, "--remount-ro", op.path)
    } else builder.push("--ro-bind", op.path, op.path)
  }
  if (baseline === "deny") {
    for (const link of policy.links) builder.push("--symlink", link.target, link.path)
    builder.push("--remount-ro", "/")
  }
  builder.push("--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc")
  if (policy.network === "restricted") builder.push("--unshare-net")
  builder.push("--cap-drop", "ALL")
  // under an empty root only real paths exist: a working directory reached through a link is not there
  return builder.finish(baseline === "deny" ? { ...options, cwd: realPathOf(options.cwd) } : options)
}

/**
 * The invocation for a policy whose whole file system is writable and whose
 * network is restricted: the host's file system and devices as they are (and
 * the user's capabilities: the seccomp filter, which nothing inside can lift,
 * keeps the network closed), in new pid, ipc and net namespaces.
 */
export const networkOnlyInvocation = (options: InvocationOptions): BwrapInvocation => {
  const builder = new Builder()
  builder.push("--new-session", "--die-with-parent", "--bind", "/", "/", "--dev-bind", "/dev", "/dev")
  builder.push("--proc", "/proc")
  for (const path of options.hidden) builder.hide(path)
  builder.push("--unshare-pid", "--unshare-ipc", "--unshare-net")
  return builder.finish(options)
}
