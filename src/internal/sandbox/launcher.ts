/**
 * Turns a `process/start` that carries a `sandbox` into the bubblewrap
 * command that confines it, or refuses it. The local executor's child
 * process spawns what this returns instead of the request's argv.
 *
 * - no `sandbox`, or a policy that restricts nothing (`disabled`, the whole
 *   disk writable with the network enabled): the command runs as is, and the
 *   start answers `sandboxType: "none"` (unless the executor requires a
 *   sandbox: then it is refused);
 * - a restricted file system: the full sandbox (`bwrapArgs`);
 * - the whole disk writable, the network restricted: network isolation only;
 * - anything that cannot be enforced as asked (no working bubblewrap, a
 *   managed network proxy, a deny glob, …): `SandboxRefused`, never a weaker
 *   sandbox.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { SandboxRefused, type SandboxSupport, SpawnFailed, type StartRequest } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import { type BwrapStatus, locate, probe, searchPath, supportOf } from "./bwrap.ts"
import { type BwrapInvocation, confinedInvocation, mountLayout, networkOnlyInvocation } from "./bwrapArgs.ts"
import { MountPoints } from "./mountPoints.ts"
import { type ResolvedPolicy, resolvePolicy } from "./policy.ts"
import { networkFilter } from "./seccomp.ts"

/** How the local executor sandboxes (`LocalExecutor.SandboxOptions`). */
export interface SandboxOptions {
  /** The bubblewrap binary (default: `$EXEC_SANDBOX_BWRAP`, else `bwrap` on `PATH`). */
  readonly bwrap?: string | undefined
  /** Refuse every start that would run unconfined (no `sandbox`, or a policy that confines nothing). */
  readonly required?: boolean | undefined
}

/** What to spawn instead of the request's argv. */
export interface Launch {
  readonly file: string
  readonly args: ReadonlyArray<string>
  /** What file descriptors 3, 4, … of the child are fed (then closed). */
  readonly inputs: ReadonlyArray<Uint8Array>
  readonly sandboxType: Protocol.SandboxType
  /** Gives back what the sandbox held on the host; runs once the process is gone, or did not start. */
  readonly release: () => void
}

/** The sandbox side of the local executor. */
export interface Launcher {
  /** Whether sandboxes work here (probed once, on first use). */
  readonly support: Effect.Effect<SandboxSupport>
  /**
   * The launch for `request` with its final `environment`: `undefined` to run
   * it unconfined, or the sandbox's; or why it is refused.
   */
  readonly prepare: (
    request: StartRequest,
    environment: Readonly<Record<string, string>>
  ) => Effect.Effect<Launch | undefined, SandboxRefused | SpawnFailed>
  /**
   * For a start that cannot be confined (`what`, e.g. a process on a
   * terminal): succeeds only when its policy confines nothing.
   */
  readonly refuseConfined: (
    request: StartRequest,
    environment: Readonly<Record<string, string>>,
    what: string
  ) => Effect.Effect<void, SandboxRefused>
}

const refuse = (kind: SandboxRefused["kind"], description: string) =>
  Effect.fail(new SandboxRefused({ kind, description }))

const isExecutable = (path: string): boolean => {
  try {
    NodeFs.accessSync(path, NodeFs.constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Inside a sandbox a missing command is bubblewrap's failure, not a failed
 * start: looking for it first keeps the answer what an unsandboxed start gives.
 */
const checkCommand = (
  command: string,
  cwd: string,
  environment: Readonly<Record<string, string>>
): Effect.Effect<void, SpawnFailed> => {
  const notFound = new SpawnFailed({ kind: "CommandNotFound", command, description: `command not found: ${command}` })
  if (!command.includes("/")) {
    return searchPath(command, environment.PATH ?? "/usr/bin:/bin") === undefined ? Effect.fail(notFound) : Effect.void
  }
  const path = NodePath.resolve(cwd, command)
  if (!NodeFs.existsSync(path)) return Effect.fail(notFound)
  return isExecutable(path)
    ? Effect.void
    : Effect.fail(new SpawnFailed({ kind: "PermissionDenied", command, description: `permission denied: ${command}` }))
}

/** Builds the invocation, claiming the mount points it needs; the release gives them back. */
const invocationFor = (
  policy: ResolvedPolicy,
  mountPoints: MountPoints,
  options: Parameters<typeof confinedInvocation>[2]
): Effect.Effect<{ readonly invocation: BwrapInvocation; readonly release: () => void }, SandboxRefused> => {
  if (policy.confinement !== "full") {
    return Effect.succeed({ invocation: networkOnlyInvocation(options), release: () => {} })
  }
  return Effect.try({
    try: () => {
      const layout = mountLayout(policy)
      const release = mountPoints.claim(layout.placeholders)
      return { invocation: confinedInvocation(policy, layout, options), release }
    },
    catch: (error) =>
      new SandboxRefused({ kind: "Unsupported", description: `cannot prepare the sandbox's mounts: ${String(error)}` })
  })
}

/** Builds the launcher; nothing is probed until a sandbox is first needed. */
export const makeLauncher = (options: SandboxOptions = {}): Effect.Effect<Launcher> =>
  Effect.gen(function*() {
    const mountPoints = new MountPoints()
    const status: Effect.Effect<BwrapStatus> = yield* Effect.cached(
      Effect.flatMap(probe(locate(options.bwrap)), (probed) => {
        if (probed._tag === "Unavailable") return Effect.succeed(probed)
        return Effect.try(() => mountPoints.prepare()).pipe(
          Effect.as(probed),
          Effect.orElseSucceed((): BwrapStatus => ({
            _tag: "Unavailable",
            reason: `cannot use ${mountPoints.directory} for the sandbox's mount points`
          }))
        )
      })
    )

    const prepare = Effect.fnUntraced(function*(
      request: StartRequest,
      environment: Readonly<Record<string, string>>
    ) {
      if (request.enforceManagedNetwork === true || (request.managedNetwork ?? null) !== null) {
        return yield* refuse("Unsupported", "a managed network (Codex's network proxy)")
      }
      const context = request.sandbox ?? null
      if (context === null) {
        return options.required === true ? yield* refuse("Required", "the request asks for no sandbox") : undefined
      }
      const policy = yield* resolvePolicy(context, { tmpdir: environment.TMPDIR, hidden: [mountPoints.directory] })
      if (policy.confinement === "none") {
        return options.required === true ? yield* refuse("Required", "its policy confines nothing") : undefined
      }
      const probed = yield* status
      if (probed._tag === "Unavailable") return yield* refuse("Unavailable", probed.reason)
      const { bwrap } = probed
      const argv0 = request.arg0 ?? undefined
      if (argv0 !== undefined && !bwrap.argv0) {
        return yield* refuse("Unsupported", `arg0 under a sandbox (bubblewrap at ${bwrap.path} has no --argv0)`)
      }
      yield* checkCommand(request.argv[0]!, request.cwd, environment)
      const seccomp = networkFilter(
        policy.confinement === "full" && policy.network === "enabled" ? "vsock" : "restricted"
      )
      const { invocation, release } = yield* invocationFor(policy, mountPoints, {
        cwd: request.cwd,
        seccomp,
        hidden: [mountPoints.directory],
        argv0
      })
      const launch: Launch = {
        file: bwrap.path,
        args: [...invocation.args, "--", ...request.argv],
        inputs: invocation.inputs,
        sandboxType: "linuxSeccomp",
        release
      }
      return launch
    })

    /**
     * For a start that cannot be confined (a process on a terminal): lets it
     * run only when its policy confines nothing, and refuses it otherwise.
     */
    const refuseConfined = Effect.fnUntraced(function*(
      request: StartRequest,
      environment: Readonly<Record<string, string>>,
      what: string
    ) {
      if (request.enforceManagedNetwork === true || (request.managedNetwork ?? null) !== null) {
        return yield* refuse("Unsupported", "a managed network (Codex's network proxy)")
      }
      const context = request.sandbox ?? null
      if (context === null) {
        if (options.required === true) return yield* refuse("Required", "the request asks for no sandbox")
        return
      }
      const policy = yield* resolvePolicy(context, { tmpdir: environment.TMPDIR, hidden: [mountPoints.directory] })
      if (policy.confinement === "none") {
        if (options.required === true) return yield* refuse("Required", "its policy confines nothing")
        return
      }
      return yield* refuse("Unsupported", `${what} under a sandbox`)
    })

    return { support: Effect.map(status, supportOf), prepare, refuseConfined }
  })
