/**
 * Many environments by id: this machine (`local`), exec-servers at WebSocket
 * URLs, and exec-server programs spoken to over stdio, named as Codex names
 * them in `$CODEX_HOME/environments.toml` (the same keys, the same rules) or
 * given in code. `Exec.run({ environment: "devbox", … })` runs in one of
 * them; `Exec.run({ environment: EnvironmentRegistry.leastBusy(ids), … })` in
 * the least busy healthy one of several.
 *
 * Each environment has one connection, opened on its first use and closed
 * once nobody has held it for `idleTimeToLive` (an `RcMap`); a program's
 * child is started again by the next use after it died. Each admits at most
 * `maxConcurrentRuns` runs at once (more wait). A connection lost under a run
 * marks the environment unhealthy: choices pass it over, and it is probed (a
 * connection of its own and an `initialize` round trip), less and less often,
 * until it answers again.
 *
 * The roles live under `internal/environments/`: `config` (the model, Codex's
 * rules, the file), `program` (exec-server children), `health` (probes and
 * states), `observed` (an executor that reports lost connections to them),
 * `admissions` (slots and the least-busy choice), `table` (health rows as
 * text).
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node-shared/NodeFileSystem"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as RcMap from "effect/RcMap"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { Environment, EnvironmentError, type Location } from "./Environment.ts"
import { ConnectionLost, EnvironmentUnavailable, type Executor, ExecutorError } from "./Executor.ts"
import { ChangeSignal } from "./internal/changeSignal.ts"
import * as Defaults from "./internal/defaults.ts"
import { Admissions } from "./internal/environments/admissions.ts"
import * as Configs from "./internal/environments/config.ts"
import { HealthBook, probe } from "./internal/environments/health.ts"
import { observed } from "./internal/environments/observed.ts"
import { ProgramSupervisor } from "./internal/environments/program.ts"
import { formatTable, type HealthRow, rowOf } from "./internal/environments/table.ts"
import type { Transport } from "./JsonRpc.ts"
import * as LocalExecutor from "./LocalExecutor.ts"
import * as RemoteExecutor from "./RemoteExecutor.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * An environment other than this machine: `WebSocket` (an exec-server at a
 * `ws://` or `wss://` URL, with an optional token) or `Stdio` (an exec-server
 * program and its arguments, spoken to over its stdin and stdout).
 *
 * @category models
 * @since 0.1.0
 */
export type Spec = Configs.RemoteSpec

/**
 * An exec-server at a WebSocket URL (`environments.toml`: `url`,
 * `auth_bearer_token`, `connect_timeout_sec`, `initialize_timeout_sec`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const WebSocket = Configs.RemoteSpec.WebSocket

/**
 * An exec-server program spoken to over its stdin and stdout
 * (`environments.toml`: `program`, `args`, `env`, `cwd`,
 * `initialize_timeout_sec`): `effect-exec serve --listen stdio`, or
 * `ssh host effect-exec serve --listen stdio`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const Stdio = Configs.RemoteSpec.Stdio

/**
 * Which environments exist and which one is the default (`undefined`: none).
 *
 * @category models
 * @since 0.1.0
 */
export type RegistryConfig = Configs.RegistryConfig

/**
 * One environment in a health table.
 *
 * @category models
 * @since 0.1.0
 */
export type { HealthRow }

/**
 * A choice among several environments: the least busy of them (fewest runs
 * admitted) that is not marked unhealthy; ties go round-robin.
 *
 * @category models
 * @since 0.1.0
 */
export interface LeastBusy {
  readonly _tag: "LeastBusy"
  /** The candidates; `undefined`: every environment of the registry. */
  readonly among: ReadonlyArray<string> | undefined
}

/**
 * Where a run goes: an environment's id, or a choice.
 *
 * @category models
 * @since 0.1.0
 */
export type Selection = string | LeastBusy

/**
 * The least busy healthy one of `ids` (default: every environment).
 *
 * @category constructors
 * @since 0.1.0
 */
export const leastBusy = (ids?: ReadonlyArray<string>): LeastBusy => ({ _tag: "LeastBusy", among: ids })

/**
 * One environment of the registry, held: its `Environment` (whose `admit`
 * takes a slot of its limit for each run) and its `FileSystem`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Held {
  readonly id: string
  readonly environment: Environment["Service"]
  readonly fileSystem: FileSystem.FileSystem
}

/**
 * Tuning of a registry; every field has a default (`internal/defaults.ts`).
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** Runs admitted at once per environment (default 64); more wait for a slot. */
  readonly maxConcurrentRuns?: number | ((id: string) => number)
  /** How long an environment nobody holds keeps its connection (default 60 s). */
  readonly idleTimeToLive?: Duration.Input
  /** The first probe of an environment marked unhealthy comes after this (default 1 s), then doubling. */
  readonly probeInterval?: Duration.Input
  /** The longest interval between two probes of an unhealthy environment (default 30 s). */
  readonly maxProbeInterval?: Duration.Input
  /** Options of every remote environment's client (client name, request timeout, file size limit). */
  readonly remote?: Omit<RemoteExecutor.Options, "connectTimeout">
  /** Options of this machine's executor. */
  readonly local?: LocalExecutor.Options
}

// =============================================================================
// Service
// =============================================================================

/**
 * The environments by id. `admit` and `hold` hold an environment (and its
 * connection) until the scope closes.
 *
 * @category services
 * @since 0.1.0
 */
export class EnvironmentRegistry extends Context.Service<EnvironmentRegistry, {
  readonly config: RegistryConfig
  /** Every id: `local` first when it is included, then the configured ones in order. */
  readonly ids: ReadonlyArray<string>
  /**
   * Admits one run: takes a slot of the selected environment (the default one
   * when `selection` is undefined), waiting while all are taken. The
   * environment's `admit` is then already done.
   */
  readonly admit: (selection?: Selection) => Effect.Effect<Held, ExecutorError, Scope.Scope>
  /** Holds an environment (the default one when `id` is undefined) without taking a slot. */
  readonly hold: (id?: string) => Effect.Effect<Held, ExecutorError, Scope.Scope>
  /** Probes the environments (`ids`, default all) now, at once, and returns their rows. */
  readonly check: (ids?: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<HealthRow>, ExecutorError>
  /** The rows as last seen, without probing. */
  readonly status: Effect.Effect<ReadonlyArray<HealthRow>>
}>()("effect-exec/EnvironmentRegistry") {}

// =============================================================================
// Construction
// =============================================================================

type Entry = {
  readonly executor: Executor["Service"]
  readonly fileSystem: FileSystem.FileSystem
  readonly location: Location
}

const localId = Defaults.environments.localId

const unavailable = (
  kind: EnvironmentUnavailable["kind"],
  environment: string,
  description: string
): ExecutorError => new ExecutorError({ reason: new EnvironmentUnavailable({ kind, environment, description }) })

/** Opens a WebSocket within the spec's connect timeout. */
const connectWebSocket = (spec: Extract<Spec, { _tag: "WebSocket" }>): Effect.Effect<Transport, ConnectionLost> => {
  const timeout = Configs.connectTimeoutOf(spec)
  return RemoteExecutor.connectWebSocket({ url: spec.url, token: spec.token }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          new ConnectionLost({ description: `cannot connect to ${spec.url} within ${Duration.format(timeout)}` })
        )
    })
  )
}

const locationOf = (spec: Spec): Location =>
  spec._tag === "WebSocket"
    ? { _tag: "Remote", url: spec.url }
    : { _tag: "Stdio", program: spec.program, args: spec.args ?? [] }

/**
 * How to open a connection to each environment of `config`: a WebSocket, or a
 * child of its program's supervisor. Every child still running (a
 * connection's or a probe's) is killed when the scope closes.
 */
const connectors = Effect.fnUntraced(function*(config: RegistryConfig) {
  const programs = new Map<string, ProgramSupervisor>()
  for (const spec of config.environments) {
    if (spec._tag === "Stdio") programs.set(spec.id, new ProgramSupervisor(spec))
  }
  yield* Effect.addFinalizer(() => Effect.forEach(programs.values(), (program) => program.killAll, { discard: true }))
  return (spec: Spec): Effect.Effect<Transport, ConnectionLost> =>
    spec._tag === "WebSocket" ? connectWebSocket(spec) : programs.get(spec.id)!.connect
})

/** Opens environment `id` in the current scope: this machine's executor and files, or a remote link to `spec`. */
const open = (options: Options, health: HealthBook, connectOf: Effect.Success<ReturnType<typeof connectors>>) =>
  Effect.fnUntraced(function*(id: string, spec: Spec | undefined) {
    if (spec === undefined) {
      const executor = yield* LocalExecutor.make(options.local)
      const fileSystem = Context.get(yield* Layer.build(NodeFileSystem.layer), FileSystem.FileSystem)
      return { executor, fileSystem, location: { _tag: "Local" } } satisfies Entry
    }
    const remote = yield* RemoteExecutor.makeEnvironment(connectOf(spec), {
      ...options.remote,
      connectTimeout: Configs.setupTimeoutOf(spec)
    })
    return {
      executor: observed(remote.executor, id, health),
      fileSystem: remote.fileSystem,
      location: locationOf(spec)
    } satisfies Entry
  })

/**
 * Builds a registry of `config`'s environments in the current scope: closing
 * it closes every connection and kills every exec-server program it started.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(config: RegistryConfig, options: Options = {}) {
  const specs = new Map(config.environments.map((spec) => [spec.id, spec] as const))
  const ids = [...(config.includeLocal ? [localId] : []), ...specs.keys()]
  const connectOf = yield* connectors(config)
  const changes = new ChangeSignal()
  const health = new HealthBook({
    changes,
    recoveries: yield* FiberMap.make<string>(),
    probe: (id) =>
      probe(connectOf(specs.get(id)!), {
        clientName: options.remote?.clientName ?? "effect-exec",
        timeout: Configs.setupTimeoutOf(specs.get(id)!)
      }),
    schedule: {
      interval: Duration.fromInputUnsafe(options.probeInterval ?? Defaults.environments.probeIntervalMillis),
      maxInterval: Duration.fromInputUnsafe(options.maxProbeInterval ?? Defaults.environments.maxProbeIntervalMillis)
    }
  })
  const limit = options.maxConcurrentRuns ?? Defaults.environments.maxConcurrentRuns
  const admissions = new Admissions({
    changes,
    limitOf: typeof limit === "function" ? limit : () => limit,
    isUnhealthy: (id) => health.isUnhealthy(id)
  })
  const opened = open(options, health, connectOf)
  const connections = yield* RcMap.make({
    lookup: (id: string) => opened(id, specs.get(id)),
    idleTimeToLive: options.idleTimeToLive ?? Defaults.environments.idleTimeToLiveMillis
  })

  const known = (id: string | undefined): Effect.Effect<string, ExecutorError> =>
    id === undefined
      ? config.defaultId === undefined
        ? Effect.fail(unavailable("Disabled", "default", `${config.source} names no default environment`))
        : Effect.succeed(config.defaultId)
      : ids.includes(id)
      ? Effect.succeed(id)
      : Effect.fail(unavailable("Unknown", id, `no environment ${id} in ${config.source} (known: ${ids.join(", ")})`))

  /** `id` held for the scope; with `admit`, its environment takes a slot per run. */
  const held = (id: string, admit: boolean): Effect.Effect<Held, never, Scope.Scope> =>
    Effect.map(RcMap.get(connections, id), ({ executor, fileSystem, location }) => ({
      id,
      fileSystem,
      environment: Environment.of({ executor, location, ...(admit ? { admit: admissions.admit(id) } : {}) })
    }))

  const admit = (selection?: Selection): Effect.Effect<Held, ExecutorError, Scope.Scope> => {
    if (selection === undefined || typeof selection === "string") {
      return Effect.flatMap(known(selection), (id) => Effect.andThen(admissions.admit(id), held(id, false)))
    }
    const among = selection.among ?? ids
    return Effect.forEach(among, known).pipe(
      Effect.andThen(admissions.admitAny(among)),
      Effect.mapError((error) =>
        error._tag === "ExecutorError"
          ? error
          : unavailable("Unhealthy", among.join(","), `every environment among ${among.join(", ")} is unhealthy`)
      ),
      Effect.flatMap((id) => held(id, false))
    )
  }

  const rowOfId = (id: string): HealthRow =>
    rowOf({
      id,
      spec: specs.get(id),
      // this machine answers as long as this process does
      health: id === localId ? { _tag: "Healthy", latency: undefined, checkedAt: 0 } : health.of(id),
      isDefault: config.defaultId === id,
      running: admissions.count(id),
      limit: admissions.limit(id)
    })

  return EnvironmentRegistry.of({
    config,
    ids,
    admit,
    hold: (id) => Effect.flatMap(known(id), (found) => held(found, true)),
    check: (wanted) =>
      Effect.gen(function*() {
        const chosen = wanted ?? ids
        yield* Effect.forEach(chosen, known)
        yield* Effect.forEach(chosen, (id) => id === localId ? Effect.void : health.check(id), {
          concurrency: "unbounded",
          discard: true
        })
        return chosen.map(rowOfId)
      }),
    status: Effect.sync(() => ids.map(rowOfId))
  })
})

// =============================================================================
// Configuration
// =============================================================================

const configError = (message: string) => new EnvironmentError({ message })

/**
 * Checks a configuration given in code by Codex's rules (ids, the reserved
 * `local` and `none`, the default). Unlike a file, a token may go to a
 * `ws://` URL off this machine, as with `Environment.layerRemote`.
 *
 * @category configuration
 * @since 0.1.0
 */
export const fromCode = (input: {
  readonly environments?: ReadonlyArray<Spec>
  readonly includeLocal?: boolean
  readonly default?: string
}): Effect.Effect<RegistryConfig, EnvironmentError> =>
  Result.match(Configs.check(input, { source: "code", fromFile: false }), {
    onSuccess: Effect.succeed,
    onFailure: (message) => Effect.fail(configError(message))
  })

/**
 * Reads an `environments.toml` as Codex 0.169 does: top-level `default` and
 * `include_local`, then `[[environments]]` tables with `id` and either `url`
 * (with `auth_bearer_token`, `connect_timeout_sec`) or `program` (with
 * `args`, `env`, `cwd` — relative to the file's folder),
 * `initialize_timeout_sec`, and `skills` (Codex's, accepted and not used).
 * Unknown keys, wrong types and broken rules are refused with the reason.
 *
 * @category configuration
 * @since 0.1.0
 */
export const fromFile = Effect.fnUntraced(function*(path: string) {
  const absolute = resolve(path)
  const text = yield* Effect.tryPromise({
    try: () => readFile(absolute, "utf8"),
    catch: (error) => configError(`cannot read the environments file ${absolute}: ${(error as Error).message}`)
  })
  return yield* Result.match(Configs.parseFile(text, absolute), {
    onSuccess: Effect.succeed,
    onFailure: (message) => Effect.fail(configError(`environments file ${absolute}: ${message}`))
  })
})

/**
 * Finds the configuration as the CLI does, first found wins: the `file`
 * given (the `--environments` flag), `EXEC_ENVIRONMENTS_FILE`,
 * `$CODEX_HOME/environments.toml` when `CODEX_HOME` is set and the file
 * exists (as Codex, a file present replaces the variable), else
 * `EXEC_SERVER_URL` read by Codex's rules for `CODEX_EXEC_SERVER_URL`: unset
 * or empty, this machine only; `none`, no environment; a `ws://` URL, one
 * environment `remote` (token: `EXEC_SERVER_TOKEN`) as the default, without
 * this machine.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EnvironmentRegistry } from "effect-exec"
 *
 * const program = Effect.gen(function*() {
 *   const config = yield* EnvironmentRegistry.load({ file: "./environments.toml" })
 *   return config.defaultId
 * })
 * ```
 *
 * @category configuration
 * @since 0.1.0
 */
export const load = Effect.fnUntraced(function*(options: { readonly file?: string | undefined } = {}) {
  const variable = (yield* Config.String("EXEC_ENVIRONMENTS_FILE").pipe(Config.withDefault(""))).trim()
  const explicit = options.file ?? (variable === "" ? undefined : variable)
  if (explicit !== undefined) return yield* fromFile(explicit)
  const codexHome = (yield* Config.String("CODEX_HOME").pipe(Config.withDefault(""))).trim()
  const codexFile = codexHome === "" ? undefined : join(codexHome, Defaults.environments.codexFileName)
  if (codexFile !== undefined && existsSync(codexFile)) return yield* fromFile(codexFile)
  const url = yield* Config.String("EXEC_SERVER_URL").pipe(Config.withDefault(""))
  const token = yield* Config.String("EXEC_SERVER_TOKEN").pipe(Config.withDefault(""))
  return yield* Result.match(Configs.fromVariable("EXEC_SERVER_URL", url, token), {
    onSuccess: Effect.succeed,
    onFailure: (message) => Effect.fail(configError(message))
  })
})

// =============================================================================
// Layers
// =============================================================================

/**
 * A registry of `config`'s environments (from `fromCode`, `fromFile` or
 * `load`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (config: RegistryConfig, options: Options = {}): Layer.Layer<EnvironmentRegistry> =>
  Layer.effect(EnvironmentRegistry, make(config, options))

/**
 * A registry configured as the CLI finds it (see `load`): the `file` given,
 * `EXEC_ENVIRONMENTS_FILE`, `$CODEX_HOME/environments.toml`, or
 * `EXEC_SERVER_URL`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EnvironmentRegistry, Exec, OutputSink } from "effect-exec"
 *
 * const program = Exec.run({ command: ["uname", "-a"], environment: "devbox" }).pipe(
 *   Effect.provide([EnvironmentRegistry.layerConfig(), OutputSink.layerDiscard])
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  options: Options & { readonly file?: string | undefined } = {}
): Layer.Layer<EnvironmentRegistry, EnvironmentError | Config.ConfigError> =>
  Layer.effect(EnvironmentRegistry, Effect.flatMap(load(options), (config) => make(config, options)))

/**
 * One environment of the registry as the `Environment` and `FileSystem`
 * services (the default one when `id` is undefined), held while the layer
 * lives: code that knows those services runs there unchanged, and each
 * `Exec.run` still takes a slot of the environment's limit.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerEnvironment = (
  id?: string
): Layer.Layer<Environment | FileSystem.FileSystem, ExecutorError, EnvironmentRegistry> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const registry = yield* EnvironmentRegistry
      const held = yield* registry.hold(id)
      return Context.make(Environment, held.environment).pipe(Context.add(FileSystem.FileSystem, held.fileSystem))
    })
  )

// =============================================================================
// Health table
// =============================================================================

/**
 * Health rows as an aligned text table (the default marked `*`): what
 * `effect-exec envs` prints after `registry.check()`.
 *
 * @category formatting
 * @since 0.1.0
 */
export const formatHealth: (rows: ReadonlyArray<HealthRow>) => string = formatTable
