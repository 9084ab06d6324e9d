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
 * The command's environment goes in too: bubblewrap itself runs on the host
 * with a fixed environment (the dynamic loader of an unconfined program must
 * never see a client's `LD_PRELOAD`), clears it inside (`--clearenv`) and sets
 * the command's variables (`--setenv`). All of it is read from a descriptor
 * (`--args 3`), so the values stay out of `/proc/*\/cmdline`.
 *
 * Looking at the file system (what exists, what is a directory) happens in
 * `mountLayout` and `describeMounts`, asynchronously; building the arguments
 * from what they found does not touch it.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { depthOf, isWithin, realPathOf, statOrUndefined } from "../fs/paths.ts"
import { type Access, accessOf, type ResolvedPolicy } from "./policy.ts"

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

/** What is at a mount's path now: how it can be mounted over. */
export type MountKind = "directory" | "emptyDirectory" | "file"

/** A mount whose path exists, and what is there. */
export interface Mount extends MountOp {
  readonly kind: MountKind
}

/** A bubblewrap invocation: its arguments (before `--`) and what to feed file descriptors 3, 4, … */
export interface BwrapInvocation {
  readonly args: ReadonlyArray<string>
  readonly inputs: ReadonlyArray<Uint8Array>
  /** How many arguments bubblewrap parses for it (those read from descriptor 3 included). */
  readonly argumentCount: number
}

/** What is at `path`, or `undefined` when nothing is. */
const kindOf = (path: string): Effect.Effect<MountKind | undefined> =>
  Effect.flatMap(statOrUndefined(path), (stats) => {
    if (stats === undefined) return Effect.undefined
    if (!stats.isDirectory()) return Effect.succeed<MountKind>("file")
    return Effect.promise(() =>
      NodeFs.readdir(path).then(
        (names): MountKind => names.length === 0 ? "emptyDirectory" : "directory",
        () => "directory"
      )
    )
  })

/** The first component of `path` that does not exist (`path` itself when only it is missing). */
const firstMissing = Effect.fnUntraced(function*(path: string) {
  let missing = path
  for (let parent = NodePath.dirname(missing); parent !== missing; parent = NodePath.dirname(missing)) {
    if ((yield* statOrUndefined(parent)) !== undefined) return missing
    missing = parent
  }
  return missing
})

/** The access of the root: what everything inherits. */
const rootAccess = (policy: ResolvedPolicy): Access => accessOf(policy, "/")

/** The mounts `policy` needs on top of its root, shortest path first. */
export const mountLayout = Effect.fnUntraced(function*(policy: ResolvedPolicy) {
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
    if ((yield* statOrUndefined(path)) !== undefined) {
      ops.push({ path, access })
      continue
    }
    // missing: nothing to make writable; and where the command cannot write, it cannot create it either
    if (access === "write" || around !== "write") continue
    // no op is at `target` yet: one there would hold `path`, and it is never writable
    const target = yield* firstMissing(path)
    ops.push({ path: target, access })
    placeholders.push(target)
  }
  const layout: MountLayout = { ops, placeholders }
  return layout
})

/**
 * The layout's mounts whose paths exist now (after its placeholders were
 * created), with what is there; a placeholder that could not be created is
 * left out: the command cannot create it either.
 */
export const describeMounts = (layout: MountLayout): Effect.Effect<ReadonlyArray<Mount>> =>
  Effect.map(
    Effect.forEach(layout.ops, (op) =>
      Effect.map(kindOf(op.path), (kind) => kind === undefined ? [] : [{ ...op, kind }])),
    (mounts) =>
      mounts.flat()
  )

/** What the sandbox is given besides its mounts. */
export interface InvocationOptions {
  /** The command's working directory. */
  readonly cwd: string
  /** The command's environment, set inside the sandbox only. */
  readonly environment: Readonly<Record<string, string>>
  /** The seccomp program, if any (fed on a file descriptor). */
  readonly seccomp: Uint8Array | undefined
  /**
   * Directories to hide from a network-only sandbox (our own bookkeeping); a
   * confined policy hides them with its own deny rules.
   */
  readonly hidden: ReadonlyArray<string>
  /** argv[0] for the command, when it differs from its path (needs a bubblewrap with `--argv0`). */
  readonly argv0?: string | undefined
}

/** Collects arguments, the inputs their `--…-fd` arguments name, and the descriptor of the arguments themselves. */
class Builder {
  private readonly args: Array<string> = []
  private readonly inputs: Array<Uint8Array> = []

  push(...args: ReadonlyArray<string>): void {
    this.args.push(...args)
  }

  /** Adds an input and returns its file descriptor number (3 holds the arguments). */
  input(bytes: Uint8Array): string {
    this.inputs.push(bytes)
    return String(3 + this.inputs.length)
  }

  hide(path: string, kind: MountKind): void {
    if (kind === "file") this.push("--perms", "000", "--ro-bind-data", this.input(new Uint8Array(0)), path)
    else this.push("--perms", "000", "--tmpfs", path, "--remount-ro", path)
  }

  finish(options: InvocationOptions): BwrapInvocation {
    if (options.seccomp !== undefined) this.push("--add-seccomp-fd", this.input(options.seccomp))
    this.push("--chdir", options.cwd)
    if (options.argv0 !== undefined) this.push("--argv0", options.argv0)
    this.push("--clearenv")
    for (const [name, value] of Object.entries(options.environment)) this.push("--setenv", name, value)
    // NUL-separated, each argument NUL-terminated: what `--args` reads
    const encoded = Buffer.from(this.args.map((arg) => `${arg}\0`).join(""), "utf8")
    return { args: ["--args", "3"], inputs: [encoded, ...this.inputs], argumentCount: this.args.length + 2 }
  }
}

/**
 * The invocation for a policy whose file system is restricted, from the
 * mounts `describeMounts` found.
 */
export const confinedInvocation = Effect.fnUntraced(function*(
  policy: ResolvedPolicy,
  mounts: ReadonlyArray<Mount>,
  options: InvocationOptions
) {
  const builder = new Builder()
  builder.push("--new-session", "--die-with-parent")
  const baseline = rootAccess(policy)
  if (baseline === "write") builder.push("--bind", "/", "/")
  else if (baseline === "read") builder.push("--ro-bind", "/", "/")
  else builder.push("--tmpfs", "/")
  builder.push("--dev", "/dev", "--proc", "/proc")
  for (const mount of mounts) {
    if (mount.access === "write") builder.push("--bind", mount.path, mount.path)
    else if (mount.access === "deny") builder.hide(mount.path, mount.kind)
    // the same view as binding it, and it holds even if the empty directory is removed meanwhile
    else if (mount.kind === "emptyDirectory") {
      builder.push("--perms", "555", "--tmpfs", mount.path, "--remount-ro", mount.path)
    } else builder.push("--ro-bind", mount.path, mount.path)
  }
  if (baseline === "deny") {
    for (const link of policy.links) builder.push("--symlink", link.target, link.path)
    builder.push("--remount-ro", "/")
  }
  builder.push("--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc")
  if (policy.network === "restricted") builder.push("--unshare-net")
  builder.push("--cap-drop", "ALL")
  // under an empty root only real paths exist: a working directory reached through a link is not there
  const cwd = baseline === "deny" ? yield* Effect.promise(() => realPathOf(options.cwd)) : options.cwd
  return builder.finish({ ...options, cwd })
})

/**
 * The invocation for a policy whose whole file system is writable and whose
 * network is restricted: the host's file system and devices as they are (and
 * the user's capabilities: the seccomp filter, which nothing inside can lift,
 * keeps the network closed), in new pid, ipc and net namespaces. `hidden`
 * are directories.
 */
export const networkOnlyInvocation = (options: InvocationOptions): BwrapInvocation => {
  const builder = new Builder()
  builder.push("--new-session", "--die-with-parent", "--bind", "/", "/", "--dev-bind", "/dev", "/dev")
  builder.push("--proc", "/proc")
  for (const path of options.hidden) builder.hide(path, "directory")
  builder.push("--unshare-pid", "--unshare-ipc", "--unshare-net")
  return builder.finish(options)
}
