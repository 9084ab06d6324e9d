/**
 * Environments by id: what each one is and how it is reached, checked by the
 * rules of Codex's `environments.toml` (0.169: the same keys, the same
 * reserved ids, the same precedence over the exec-server URL variable), and
 * the file itself read strictly: an unknown key or a value of the wrong type
 * is refused, as Codex refuses it, so a file either means the same to both
 * programs or is refused by both.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { dirname, isAbsolute, join } from "node:path"
import { parse as parseToml } from "smol-toml"
import * as Defaults from "../defaults.ts"

const { localId, maxIdLength, remoteId } = Defaults.environments

// =============================================================================
// Model
// =============================================================================

/**
 * An environment other than this machine: an exec-server at a WebSocket URL,
 * or an exec-server program spoken to over its stdin and stdout.
 */
export type RemoteSpec = Data.TaggedEnum<{
  WebSocket: {
    readonly id: string
    /** `ws://` or `wss://`. */
    readonly url: string
    /** Sent as `Authorization: Bearer …` (Codex's `auth_bearer_token`). */
    readonly token?: Redacted.Redacted<string> | undefined
    /** How long opening the WebSocket may take (Codex's `connect_timeout_sec`; default 10 s). */
    readonly connectTimeout?: Duration.Duration | undefined
    /** How long `initialize` may take once connected (`initialize_timeout_sec`; default 10 s). */
    readonly initializeTimeout?: Duration.Duration | undefined
  }
  Stdio: {
    readonly id: string
    /** The program to start: `effect-exec`, `ssh`, `codex`… (looked up on `PATH`). */
    readonly program: string
    readonly args?: ReadonlyArray<string> | undefined
    /** Variables set for the program, on top of this process's environment. */
    readonly env?: Readonly<Record<string, string>> | undefined
    /** Its working directory (absolute; default this process's). */
    readonly cwd?: string | undefined
    /** How long `initialize` may take once it runs (`initialize_timeout_sec`; default 10 s). */
    readonly initializeTimeout?: Duration.Duration | undefined
  }
}>

/** Constructors of {@link RemoteSpec}. */
export const RemoteSpec = Data.taggedEnum<RemoteSpec>()

/** How long opening a WebSocket of `spec` may take (Codex's default: 10 s). */
export const connectTimeoutOf = (spec: Extract<RemoteSpec, { _tag: "WebSocket" }>): Duration.Duration =>
  spec.connectTimeout ?? Duration.millis(Defaults.environments.connectTimeoutMillis)

/** How long connecting to `spec` and its `initialize` may take together. */
export const setupTimeoutOf = (spec: RemoteSpec): Duration.Duration =>
  Duration.sum(
    spec._tag === "WebSocket" ? connectTimeoutOf(spec) : Duration.zero,
    spec.initializeTimeout ?? Duration.millis(Defaults.environments.initializeTimeoutMillis)
  )

/** Which environments exist, and which one serves when a run names none. */
export interface RegistryConfig {
  /** The remote environments, in the order they were given. */
  readonly environments: ReadonlyArray<RemoteSpec>
  /** Whether this machine is an environment (`local`). */
  readonly includeLocal: boolean
  /** The environment of a run that names none; `undefined` when there is none (`default = "none"`). */
  readonly defaultId: string | undefined
  /** Where the configuration came from, for messages: a file's path, a variable, or code. */
  readonly source: string
}

/** What a configuration says before it is checked: the file's keys, or what code gives. */
export interface RegistryInput {
  readonly environments?: ReadonlyArray<RemoteSpec> | undefined
  readonly includeLocal?: boolean | undefined
  readonly default?: string | undefined
}

// =============================================================================
// Rules
// =============================================================================

const isNone = (id: string) => id.toLowerCase() === "none"

/** Codex's rules for an environment id; the reason it is refused, if it is. */
const idProblem = (id: string): string | undefined => {
  if (id.trim() === "") return "an environment id cannot be empty"
  if (id.trim() !== id) return `environment id ${JSON.stringify(id)} has spaces around it`
  if (id === localId || isNone(id)) return `environment id ${JSON.stringify(id)} is reserved`
  if (id.length > maxIdLength) return `environment id ${JSON.stringify(id)} is longer than ${maxIdLength} characters`
  if (!/^[A-Za-z0-9_-]+$/.test(id)) {
    return `environment id ${JSON.stringify(id)} may hold only ASCII letters, digits, "-" and "_"`
  }
  return undefined
}

/** A host that names this machine: a token may travel to it over plain `ws://`. */
const isLoopbackHost = (host: string): boolean => {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase()
  return bare === "localhost" || bare === "::1" || /^127\.\d+\.\d+\.\d+$/.test(bare)
}

const urlProblem = (id: string, url: string, hasToken: boolean, fromFile: boolean): string | undefined => {
  if (url === "") return `environment ${id}: its url cannot be empty`
  if (!url.startsWith("ws://") && !url.startsWith("wss://")) {
    return `environment ${id}: url ${url} must start with ws:// or wss://`
  }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return `environment ${id}: url ${url} is not a valid URL`
  }
  if (parsed.hostname === "") return `environment ${id}: url ${url} names no host`
  // Codex refuses to send a token in the clear to another machine; so does a file read here
  if (fromFile && hasToken && parsed.protocol === "ws:" && !isLoopbackHost(parsed.hostname)) {
    return `environment ${id}: auth_bearer_token would travel unencrypted to ${parsed.hostname}: use wss:// ` +
      `or a loopback address`
  }
  return undefined
}

/** Checks one remote environment; returns it normalized (url and program trimmed). */
const checkSpec = (spec: RemoteSpec, fromFile: boolean): Result.Result<RemoteSpec, string> => {
  const problem = idProblem(spec.id)
  if (problem !== undefined) return Result.fail(problem)
  if (spec._tag === "WebSocket") {
    const url = spec.url.trim()
    const invalid = urlProblem(spec.id, url, spec.token !== undefined, fromFile)
    return invalid === undefined ? Result.succeed(RemoteSpec.WebSocket({ ...spec, url })) : Result.fail(invalid)
  }
  const program = spec.program.trim()
  if (program === "") return Result.fail(`environment ${spec.id}: its program cannot be empty`)
  if (spec.cwd !== undefined && !isAbsolute(spec.cwd)) {
    return Result.fail(`environment ${spec.id}: cwd ${spec.cwd} must be an absolute path`)
  }
  return Result.succeed(RemoteSpec.Stdio({ ...spec, program }))
}

/**
 * Checks a configuration by Codex's rules: valid, unique ids (`local` is
 * reserved, and taken unless `includeLocal` is false), and a default that
 * exists, or `"none"`; without one the default is `local` when it is
 * included, else there is none.
 */
export const check = (
  input: RegistryInput,
  options: { readonly source: string; readonly fromFile: boolean }
): Result.Result<RegistryConfig, string> => {
  const includeLocal = input.includeLocal ?? true
  const ids = new Set<string>(includeLocal ? [localId] : [])
  const environments: Array<RemoteSpec> = []
  for (const given of input.environments ?? []) {
    const checked = checkSpec(given, options.fromFile)
    if (Result.isFailure(checked)) return Result.fail(checked.failure)
    if (ids.has(checked.success.id)) return Result.fail(`environment id ${checked.success.id} is given twice`)
    ids.add(checked.success.id)
    environments.push(checked.success)
  }
  const wanted = input.default?.trim()
  if (wanted === "") return Result.fail("the default environment id cannot be empty")
  if (wanted !== undefined && !isNone(wanted) && !ids.has(wanted)) {
    return Result.fail(`the default environment ${wanted} is not one of the environments (${[...ids].join(", ")})`)
  }
  const defaultId = wanted === undefined ? (includeLocal ? localId : undefined) : isNone(wanted) ? undefined : wanted
  return Result.succeed({ environments, includeLocal, defaultId, source: options.source })
}

// =============================================================================
// The file
// =============================================================================

type Table = Readonly<Record<string, unknown>>

const isTable = (value: unknown): value is Table =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date)

/** The keys Codex 0.169 accepts, at the top and in each `[[environments]]` table. */
const topKeys = ["default", "include_local", "environments"] as const
const environmentKeys = [
  "id",
  "skills",
  "url",
  "auth_bearer_token",
  "program",
  "args",
  "env",
  "cwd",
  "connect_timeout_sec",
  "initialize_timeout_sec"
] as const

class Invalid extends Error {}

const unknownKey = (table: Table, allowed: ReadonlyArray<string>, where: string) => {
  const extra = Object.keys(table).find((key) => !allowed.includes(key))
  if (extra !== undefined) {
    throw new Invalid(`${where}: unknown key ${extra} (known: ${allowed.join(", ")})`)
  }
}

const read = {
  string: (table: Table, key: string, where: string): string | undefined => {
    const value = table[key]
    if (value === undefined || typeof value === "string") return value
    throw new Invalid(`${where}: ${key} must be a string`)
  },
  boolean: (table: Table, key: string, where: string): boolean | undefined => {
    const value = table[key]
    if (value === undefined || typeof value === "boolean") return value
    throw new Invalid(`${where}: ${key} must be true or false`)
  },
  strings: (table: Table, key: string, where: string): ReadonlyArray<string> | undefined => {
    const value = table[key]
    if (value === undefined) return undefined
    if (Array.isArray(value) && value.every((item) => typeof item === "string")) return value
    throw new Invalid(`${where}: ${key} must be an array of strings`)
  },
  stringTable: (table: Table, key: string, where: string): Readonly<Record<string, string>> | undefined => {
    const value = table[key]
    if (value === undefined) return undefined
    if (isTable(value) && Object.values(value).every((item) => typeof item === "string")) {
      return value as Record<string, string>
    }
    throw new Invalid(`${where}: ${key} must be a table of strings`)
  },
  seconds: (table: Table, key: string, where: string): Duration.Duration | undefined => {
    const value = table[key]
    if (value === undefined) return undefined
    if (typeof value === "number" && Number.isFinite(value) && value >= 0) return Duration.seconds(value)
    throw new Invalid(`${where}: ${key} must be a number of seconds, 0 or more`)
  }
}

/** One `[[environments]]` table as a spec, with the rules on which keys go together. */
const environmentOf = (table: Table, index: number, configDir: string): RemoteSpec => {
  const id = read.string(table, "id", `environments[${index}]`)
  if (id === undefined) throw new Invalid(`environments[${index}]: id is missing`)
  const where = `environment ${id}`
  unknownKey(table, environmentKeys, where)
  if (table.skills !== undefined && !isTable(table.skills)) throw new Invalid(`${where}: skills must be a table`)
  const url = read.string(table, "url", where)
  const token = read.string(table, "auth_bearer_token", where)
  const program = read.string(table, "program", where)
  const args = read.strings(table, "args", where)
  const env = read.stringTable(table, "env", where)
  const cwd = read.string(table, "cwd", where)
  const connectTimeout = read.seconds(table, "connect_timeout_sec", where)
  const initializeTimeout = read.seconds(table, "initialize_timeout_sec", where)
  if (program === undefined && (args !== undefined || env !== undefined || cwd !== undefined)) {
    throw new Invalid(`${where}: args, env and cwd are for a program, and it has none`)
  }
  if (url === undefined && connectTimeout !== undefined) {
    throw new Invalid(`${where}: connect_timeout_sec is for a url, and it has none`)
  }
  if (url === undefined && token !== undefined) {
    throw new Invalid(`${where}: auth_bearer_token is for a url, and it has none`)
  }
  if ((url === undefined) === (program === undefined)) {
    throw new Invalid(`${where}: give a url or a program${url === undefined ? ": it has neither" : ", not both"}`)
  }
  if (url !== undefined) {
    return RemoteSpec.WebSocket({
      id,
      url,
      // an empty token is no token
      token: token === undefined || token === "" ? undefined : Redacted.make(token),
      connectTimeout,
      initializeTimeout
    })
  }
  return RemoteSpec.Stdio({
    id,
    program: program!,
    args,
    env,
    // a relative cwd is the file's directory's
    cwd: cwd === undefined ? undefined : isAbsolute(cwd) ? cwd : join(configDir, cwd),
    initializeTimeout
  })
}

/** The input a file's text gives, or why it gives none. */
const inputOf = (text: string, configDir: string): RegistryInput => {
  let document: Table
  try {
    document = parseToml(text, { unsafeKeyBehaviour: "throw", maxDepth: 32 })
  } catch (error) {
    throw new Invalid(`not valid TOML: ${(error as Error).message.split("\n")[0]}`)
  }
  unknownKey(document, topKeys, "the file")
  const environments = document.environments
  if (environments !== undefined && !(Array.isArray(environments) && environments.every(isTable))) {
    throw new Invalid("environments must be an array of tables ([[environments]])")
  }
  return {
    default: read.string(document, "default", "the file"),
    includeLocal: read.boolean(document, "include_local", "the file"),
    environments: (environments ?? []).map((table, index) => environmentOf(table as Table, index, configDir))
  }
}

/**
 * Reads the text of an `environments.toml` at `path` (a relative `cwd` in it
 * is resolved against the file's directory) and checks it.
 */
export const parseFile = (text: string, path: string): Result.Result<RegistryConfig, string> => {
  try {
    return check(inputOf(text, dirname(path)), { source: path, fromFile: true })
  } catch (error) {
    if (error instanceof Invalid) return Result.fail(error.message)
    throw error
  }
}

// =============================================================================
// Without a file
// =============================================================================

/**
 * Codex's rules for the exec-server URL variable when no file is read: unset
 * or empty, this machine only; `none`, no environment at all; a URL, one
 * environment `remote` that is the default, without this machine.
 */
export const fromVariable = (
  variable: string,
  url: string | undefined,
  token: string | undefined
): Result.Result<RegistryConfig, string> => {
  const value = url?.trim() ?? ""
  // the source names what a message may blame: an unset variable configured nothing, this machine is the default
  if (value === "") {
    return check({}, {
      source: `the default configuration: no environments file, ${variable} not set`,
      fromFile: false
    })
  }
  if (isNone(value)) return check({ includeLocal: false, default: "none" }, { source: variable, fromFile: false })
  if (!value.startsWith("ws://") && !value.startsWith("wss://")) {
    return Result.fail(`${variable} must be a ws:// or wss:// URL (or "none"), got ${value}`)
  }
  return check({
    includeLocal: false,
    default: remoteId,
    environments: [
      RemoteSpec.WebSocket({
        id: remoteId,
        url: value,
        token: token === undefined || token === "" ? undefined : Redacted.make(token)
      })
    ]
  }, { source: variable, fromFile: false })
}
