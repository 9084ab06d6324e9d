/**
 * Where `run` runs its command, from its flags: `--remote ws://HOST:PORT`, or
 * an environment of the registry by `--env ID` (the default one without it),
 * read from `--environments FILE`, else `$EXEC_ENVIRONMENTS_FILE`, else
 * `$CODEX_HOME/environments.toml`, else `$EXEC_SERVER_URL` (unset: this
 * machine); and the bearer token from `--token`, `--token-file` or
 * `$EXEC_SERVER_TOKEN`, in that order (`serve` takes the same token flags).
 *
 * @internal
 */
import { Flag } from "effect/cli"
import type * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Environment from "../../Environment.ts"
import * as EnvironmentRegistry from "../../EnvironmentRegistry.ts"
import type { ExecutorError } from "../../Executor.ts"
import { UsageError } from "./exitCodes.ts"

/** `--token`. */
export const tokenFlag = Flag.Redacted("token").pipe(
  Flag.withDescription("Bearer token for the exec-server (default: $EXEC_SERVER_TOKEN)"),
  Flag.optional
)

/** `--token-file`. */
export const tokenFileFlag = Flag.File("token-file", { mustExist: true }).pipe(
  Flag.withDescription("Read the bearer token from this file (its first line)"),
  Flag.optional
)

/** `--remote`. */
export const remoteFlag = Flag.String("remote").pipe(
  Flag.withDescription("Run on the exec-server at this ws://HOST:PORT (default: $EXEC_SERVER_URL, else this machine)"),
  Flag.optional
)

/** `--env`. */
export const envFlag = Flag.String("env").pipe(
  Flag.withDescription(
    "Run in this environment of the registry (--environments, $EXEC_ENVIRONMENTS_FILE, $CODEX_HOME/environments.toml)" +
      "; default: the registry's default environment, else $EXEC_SERVER_URL, else this machine"
  ),
  Flag.optional
)

/** `--environments`. */
export const environmentsFlag = Flag.File("environments", { mustExist: true }).pipe(
  Flag.withDescription(
    "The environments file, in Codex's environments.toml format (default: $EXEC_ENVIRONMENTS_FILE, else " +
      "$CODEX_HOME/environments.toml)"
  ),
  Flag.optional
)

/**
 * The token from `--token`, `--token-file` (its first line) or
 * `$EXEC_SERVER_TOKEN`, in that order; a token file that cannot be read, and
 * an empty token from a flag (a server would answer every client 401), are
 * usage errors.
 */
export const resolveToken = (
  token: Option.Option<Redacted.Redacted<string>>,
  tokenFile: Option.Option<string>
): Effect.Effect<Redacted.Redacted<string> | undefined, UsageError, FileSystem.FileSystem> => {
  if (Option.isSome(token)) {
    return Redacted.value(token.value) === ""
      ? Effect.fail(new UsageError({ message: "--token is empty" }))
      : Effect.succeed(token.value)
  }
  if (Option.isSome(tokenFile)) {
    const path = tokenFile.value
    return Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(path)).pipe(
      Effect.mapError((error) => {
        // the OS's words ("EACCES: permission denied, open …") when there are some
        const cause = error.reason.cause
        const reason = cause instanceof Error ? cause.message : error.message
        return new UsageError({ message: `cannot read --token-file ${path}: ${reason}` })
      }),
      Effect.flatMap((text) => {
        const first = text.split("\n")[0]!.trim()
        return first === ""
          ? Effect.fail(new UsageError({ message: `--token-file ${path} is empty: its first line is the token` }))
          : Effect.succeed(Redacted.make(first))
      })
    )
  }
  const fromEnvironment = process.env.EXEC_SERVER_TOKEN
  return Effect.succeed(
    fromEnvironment === undefined || fromEnvironment === "" ? undefined : Redacted.make(fromEnvironment)
  )
}

/** Whether `text` is a URL an exec-server client can connect to. */
const isServerUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    return (url.protocol === "ws:" || url.protocol === "wss:") && url.host !== ""
  } catch {
    return false
  }
}

/** The flags that choose the environment. */
export interface ConnectionFlags {
  readonly remote: Option.Option<string>
  readonly env: Option.Option<string>
  readonly environments: Option.Option<string>
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly tokenFile: Option.Option<string>
}

/** The environment the flags name; a `--remote` that is no `ws://` URL, or one with `--env`, is a usage error. */
export const environmentLayer = (
  flags: ConnectionFlags
): Effect.Effect<
  Layer.Layer<
    Environment.Environment | FileSystem.FileSystem,
    Environment.EnvironmentError | Config.ConfigError | ExecutorError
  >,
  UsageError,
  FileSystem.FileSystem
> => {
  if (Option.isNone(flags.remote)) {
    return Effect.succeed(
      EnvironmentRegistry.layerEnvironment(Option.getOrUndefined(flags.env)).pipe(
        Layer.provide(EnvironmentRegistry.layerConfig({ file: Option.getOrUndefined(flags.environments) }))
      )
    )
  }
  if (Option.isSome(flags.env) || Option.isSome(flags.environments)) {
    return Effect.fail(
      new UsageError({ message: "--remote names its server: it cannot be used with --env or --environments" })
    )
  }
  const url = flags.remote.value
  if (!isServerUrl(url)) {
    return Effect.fail(
      new UsageError({ message: `--remote must be a ws:// or wss:// URL, such as ws://127.0.0.1:4000 (got ${url})` })
    )
  }
  return Effect.map(resolveToken(flags.token, flags.tokenFile), (token) => Environment.layerRemote({ url, token }))
}
