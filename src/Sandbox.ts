/**
 * Sandbox policies for `Exec.run`: the presets of Codex's CLI
 * (`--sandbox read-only | workspace-write | danger-full-access`) as values,
 * and any policy of Codex's language through `custom`. Each maps to the
 * `sandbox` value of `process/start`, so the same policy is enforced by this
 * machine's executor, by our exec-server, or by Codex's.
 *
 * What a policy guarantees, and what it does not, is in the README's threat
 * model. An executor that cannot enforce a policy refuses the start
 * (`SandboxRefused`); it never runs the command less confined than asked.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import { protectedNames } from "./internal/sandbox/protectedNames.ts"
import type * as Protocol from "./Protocol.ts"

/**
 * Network access inside the sandbox: `restricted` (no sockets but Unix ones,
 * and no way to the host's loopback) or `enabled`.
 *
 * @category models
 * @since 0.1.0
 */
export type Network = Protocol.SandboxNetwork

/**
 * A sandbox policy.
 *
 * - `ReadOnly`: the whole file system readable, nothing writable.
 * - `WorkspaceWrite`: readable everywhere; writable in the workspace roots
 *   (default: the command's cwd), `/tmp` and `$TMPDIR`, except `.git`,
 *   `.agents`, `.codex` and `.aws` inside them.
 * - `FullAccess`: no sandbox at all.
 * - `Custom`: a policy in Codex's language, sent as is.
 *
 * @category models
 * @since 0.1.0
 */
export type Policy = Data.TaggedEnum<{
  ReadOnly: { readonly network: Network }
  WorkspaceWrite: { readonly roots: ReadonlyArray<string> | undefined; readonly network: Network }
  FullAccess: {}
  Custom: { readonly context: Protocol.SandboxContext }
}>

/**
 * Constructors and matchers for {@link Policy}.
 *
 * @category constructors
 * @since 0.1.0
 */
export const Policy = Data.taggedEnum<Policy>()

/**
 * Everything readable, nothing writable; the network restricted unless
 * enabled.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Environment, Exec, OutputSink, Sandbox } from "effect-exec"
 *
 * const listing = Exec.run({ command: ["ls", "-la"], cwd: "/repo", sandbox: Sandbox.readOnly() }).pipe(
 *   Effect.provide([Environment.layerLocal, OutputSink.layerDiscard])
 * )
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const readOnly = (options: { readonly network?: Network } = {}): Policy =>
  Policy.ReadOnly({ network: options.network ?? "restricted" })

/**
 * Everything readable; the workspace roots (default: the command's cwd),
 * `/tmp` and `$TMPDIR` writable, but not `.git`, `.agents`, `.codex` or
 * `.aws` inside them; the network restricted unless enabled.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Environment, Exec, OutputSink, Sandbox } from "effect-exec"
 *
 * const test = Exec.run({
 *   command: ["npm", "test"],
 *   cwd: "/repo",
 *   sandbox: Sandbox.workspaceWrite({ network: "enabled" })
 * }).pipe(Effect.provide([Environment.layerLocal, OutputSink.layerDiscard]))
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const workspaceWrite = (
  options: { readonly roots?: ReadonlyArray<string>; readonly network?: Network } = {}
): Policy => Policy.WorkspaceWrite({ roots: options.roots, network: options.network ?? "restricted" })

/**
 * No sandbox: the command runs with the executor's own rights.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fullAccess: Policy = Policy.FullAccess()

/**
 * A policy in Codex's language (`Protocol.SandboxContext`), sent as is.
 *
 * @category constructors
 * @since 0.1.0
 */
export const custom = (context: Protocol.SandboxContext): Policy => Policy.Custom({ context })

/**
 * The names of Codex's CLI modes, as `effect-exec run --sandbox` takes them.
 *
 * @category models
 * @since 0.1.0
 */
export const modes = ["read-only", "workspace-write", "danger-full-access"] as const

/**
 * @category models
 * @since 0.1.0
 */
export type Mode = typeof modes[number]

/**
 * The policy of a CLI mode.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromMode = (mode: Mode): Policy =>
  mode === "read-only" ? readOnly() : mode === "workspace-write" ? workspaceWrite() : fullAccess

const special = (value: Protocol.SandboxSpecialPath): Protocol.SandboxPath => ({ type: "special", value })

const rootReadable: Protocol.SandboxEntry = { path: special({ kind: "root" }), access: "read" }

const workspaceWriteEntries: ReadonlyArray<Protocol.SandboxEntry> = [
  rootReadable,
  { path: special({ kind: "project_roots" }), access: "write" },
  { path: special({ kind: "slash_tmp" }), access: "write" },
  { path: special({ kind: "tmpdir" }), access: "write" },
  ...protectedNames.map((subpath): Protocol.SandboxEntry => ({
    path: special({ kind: "project_roots", subpath }),
    access: "read",
    missing_path_behavior: "skip"
  }))
]

/** The envelope Codex's CLI sends around a preset's permissions. */
const context = (
  entries: ReadonlyArray<Protocol.SandboxEntry>,
  network: Network,
  cwd: string,
  roots: ReadonlyArray<string>
): Protocol.SandboxContext => ({
  permissions: { type: "managed", file_system: { type: "restricted", entries }, network },
  cwd,
  workspaceRoots: roots,
  windowsSandboxLevel: "disabled",
  windowsSandboxProxySettingsMode: "reconcile",
  useLegacyLandlock: false
})

/**
 * The `sandbox` value of a `process/start` for `policy`, for a command run in
 * `cwd`: the same shape Codex's CLI sends for its modes (`null` for full
 * access).
 *
 * @category conversions
 * @since 0.1.0
 */
export const toWire = (policy: Policy, cwd: string): Protocol.SandboxContext | null =>
  Policy.$match(policy, {
    ReadOnly: ({ network }) => context([rootReadable], network, cwd, [cwd]),
    WorkspaceWrite: ({ network, roots }) => context(workspaceWriteEntries, network, cwd, roots ?? [cwd]),
    FullAccess: () => null,
    Custom: ({ context }) => context
  })
