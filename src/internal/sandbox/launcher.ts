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
 * What runs on the host for a sandbox is the descriptor closer, then
 * bubblewrap, both with a fixed environment (`hostEnvironment`): the
 * command's environment is handed to bubblewrap on a descriptor and set
 * inside the sandbox only.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { InvalidRequest, SandboxRefused, type SandboxSupport, type StartRequest } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { execName } from "../local/commandPath.ts"
import { type Bwrap, type BwrapStatus, hostEnvironment, locate, probe, supportOf } from "./bwrap.ts"
import {
  type BwrapInvocation,
  confinedInvocation,
  describeMounts,
  type InvocationOptions,
  mountLayout,
  networkOnlyInvocation
} from "./bwrapArgs.ts"
import { type Closer, closingDescriptors, findCloser } from "./closeDescriptors.ts"
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
  /** The environment to spawn `file` with: fixed, nothing of the request's. */
  readonly environment: Readonly<Record<string, string>>
  /** What file descriptors 3, 4, … of the child are fed (then closed). */
  readonly inputs: ReadonlyArray<Uint8Array>
  readonly sandboxType: Protocol.SandboxType
}

/** Whether a start is confined, and by which policy. */
export type Decision = Data.TaggedEnum<{
  Unconfined: {}
  Confined: { readonly policy: ResolvedPolicy }
}>

const Decision = Data.taggedEnum<Decision>()

/** The sandbox side of the local executor. */
export interface Launcher {
  /** Whether sandboxes work here (probed once, on first use). */
  readonly support: Effect.Effect<SandboxSupport>
  /**
   * The launch for `request`, whose program is at `program`, with its final
   * `environment`: `undefined` to run it unconfined, or the sandbox's; or why
   * it is refused. What the sandbox holds on the host (mount points) is handed
   * to `hold` as soon as it is taken, to be given back once the process is
   * gone or did not start.
   */
  readonly prepare: (
    request: StartRequest,
    program: string,
    environment: Readonly<Record<string, string>>,
    hold: (release: () => void) => void
  ) => Effect.Effect<Launch | undefined, SandboxRefused | InvalidRequest>
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

/** A working bubblewrap, and the closer that launches it. */
interface Tools {
  readonly bwrap: Bwrap
  readonly closer: Closer
}

/**
 * Refuses an environment bubblewrap cannot set: a name with `=` or nothing in
 * it, or a NUL anywhere (the arguments are NUL-separated).
 */
const checkEnvironment = (environment: Readonly<Record<string, string>>): Effect.Effect<void, InvalidRequest> => {
  for (const [name, value] of Object.entries(environment)) {
    if (name === "" || name.includes("=") || name.includes("\0") || value.includes("\0")) {
      return Effect.fail(
        new InvalidRequest({
          description: `environment variable ${JSON.stringify(name)} cannot be set in a sandbox ` +
            `(a name must be non-empty without "=", and no NUL may appear)`,
          invalidParams: true
        })
      )
    }
  }
  return Effect.void
}

/** What sandboxes need here: a working bubblewrap, a closer, the registry of mount points; or why not. */
const findTools = (
  options: SandboxOptions,
  mountPoints: MountPoints
): Effect.Effect<Tools | { readonly unavailable: string }> =>
  Effect.gen(function*() {
    const probed: BwrapStatus = yield* probe(yield* locate(options.bwrap))
    if (probed._tag === "Unavailable") return { unavailable: probed.reason }
    const closer = yield* findCloser
    if (closer === undefined) return { unavailable: "this host has no bash, perl or sh to launch sandboxes with" }
    const prepared = yield* Effect.exit(mountPoints.prepare())
    if (prepared._tag === "Failure") {
      return { unavailable: `cannot use ${mountPoints.directory} for the sandbox's mount points` }
    }
    return { bwrap: probed.bwrap, closer }
  })

/** Whether `request` runs confined, and by what policy; or why it is refused (`hidden`: the registry). */
const decide = (options: SandboxOptions, hidden: ReadonlyArray<string>) =>
  Effect.fnUntraced(function*(
    request: StartRequest,
    environment: Readonly<Record<string, string>>
  ): Effect.fn.Return<Decision, SandboxRefused> {
    if (request.enforceManagedNetwork === true || (request.managedNetwork ?? null) !== null) {
      return yield* refuse("Unsupported", "a managed network (Codex's network proxy)")
    }
    const context = request.sandbox ?? null
    if (context === null) {
      return options.required === true
        ? yield* refuse("Required", "the request asks for no sandbox")
        : Decision.Unconfined()
    }
    const policy = yield* resolvePolicy(context, { tmpdir: environment.TMPDIR, hidden })
    if (policy.confinement === "none") {
      return options.required === true
        ? yield* refuse("Required", "its policy confines nothing")
        : Decision.Unconfined()
    }
    return Decision.Confined({ policy })
  })

/** The bubblewrap invocation for `policy`, its mount points claimed and handed to `hold`. */
const invocationFor = (mountPoints: MountPoints) =>
  Effect.fnUntraced(function*(
    policy: ResolvedPolicy,
    invocation: InvocationOptions,
    hold: (release: () => void) => void
  ): Effect.fn.Return<BwrapInvocation, SandboxRefused> {
    if (policy.confinement !== "full") return networkOnlyInvocation(invocation)
    const layout = yield* mountLayout(policy)
    yield* mountPoints.claim(layout.placeholders, hold).pipe(
      Effect.mapError((error) =>
        new SandboxRefused({
          kind: "Unsupported",
          description: `cannot prepare the sandbox's mounts: ${error.message}`
        })
      )
    )
    return yield* confinedInvocation(policy, yield* describeMounts(layout), invocation)
  })

/** Builds the launcher; nothing is probed until a sandbox is first needed. */
export const makeLauncher = (options: SandboxOptions = {}): Effect.Effect<Launcher> =>
  Effect.gen(function*() {
    const mountPoints = new MountPoints()
    const hidden = [mountPoints.directory]
    const tools = yield* Effect.cached(findTools(options, mountPoints))
    const decideFor = decide(options, hidden)
    const invocationOf = invocationFor(mountPoints)

    const prepare = Effect.fnUntraced(function*(
      request: StartRequest,
      program: string,
      environment: Readonly<Record<string, string>>,
      hold: (release: () => void) => void
    ): Effect.fn.Return<Launch | undefined, SandboxRefused | InvalidRequest> {
      const decision = yield* decideFor(request, environment)
      if (decision._tag === "Unconfined") return undefined
      const { policy } = decision
      const available = yield* tools
      if ("unavailable" in available) return yield* refuse("Unavailable", available.unavailable)
      const { bwrap, closer } = available
      const requested = request.arg0 ?? undefined
      if (requested !== undefined && !bwrap.argv0) {
        return yield* refuse("Unsupported", `arg0 under a sandbox (bubblewrap at ${bwrap.path} has no --argv0)`)
      }
      yield* checkEnvironment(environment)
      // argv[0] stays the command as given: set apart from the program where bubblewrap can, else looked up again
      const command = request.argv[0]!
      const argv0 = requested ?? (bwrap.argv0 && program !== command ? command : undefined)
      const executable = bwrap.argv0 ? program : execName(command, program, environment.PATH)
      const seccomp = networkFilter(
        policy.confinement === "full" && policy.network === "enabled" ? "vsock" : "restricted"
      )
      const invocation = yield* invocationOf(policy, { cwd: request.cwd, environment, seccomp, hidden, argv0 }, hold)
      const argumentCount = invocation.argumentCount + 1 + request.argv.length
      if (argumentCount > Defaults.sandbox.maxBwrapArguments) {
        return yield* refuse(
          "Unsupported",
          `a sandboxed start of ${argumentCount} arguments, its environment's included ` +
            `(bubblewrap takes at most ${Defaults.sandbox.maxBwrapArguments})`
        )
      }
      // everything above the inputs is closed on the host before bubblewrap runs
      const launched = closingDescriptors(
        closer,
        bwrap.path,
        [...invocation.args, "--", executable, ...request.argv.slice(1)],
        2 + invocation.inputs.length
      )
      const launch: Launch = {
        ...launched,
        environment: hostEnvironment,
        inputs: invocation.inputs,
        sandboxType: "linuxSeccomp"
      }
      return launch
    })

    const refuseConfined = Effect.fnUntraced(function*(
      request: StartRequest,
      environment: Readonly<Record<string, string>>,
      what: string
    ) {
      const decision = yield* decideFor(request, environment)
      if (decision._tag === "Confined") return yield* refuse("Unsupported", `${what} under a sandbox`)
    })

    const support = Effect.map(tools, (available): SandboxSupport =>
      "unavailable" in available
        ? supportOf({ _tag: "Unavailable", reason: available.unavailable })
        : supportOf({ _tag: "Available", bwrap: available.bwrap }))

    return { support, prepare, refuseConfined }
  })
