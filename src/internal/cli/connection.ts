/**
 * Where `run` runs its command, from its flags: `--remote ws://HOST:PORT`
 * (else `$EXEC_SERVER_URL`, else this machine), and the bearer token from
 * `--token`, `--token-file` or `$EXEC_SERVER_TOKEN`, in that order (`serve`
 * takes the same token flags).
 *
 * @internal
 */
import { Flag } from "effect/cli"
import type * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { readFileSync } from "node:fs"
import * as Environment from "../../Environment.ts"
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

/** The token from `--token`, `--token-file` or `$EXEC_SERVER_TOKEN`, in that order. */
export const resolveToken = (
  token: Option.Option<Redacted.Redacted<string>>,
  tokenFile: Option.Option<string>
): Redacted.Redacted<string> | undefined => {
  if (Option.isSome(token)) return token.value
  if (Option.isSome(tokenFile)) return Redacted.make(readFileSync(tokenFile.value, "utf8").split("\n")[0]!.trim())
  const fromEnvironment = process.env.EXEC_SERVER_TOKEN
  return fromEnvironment === undefined || fromEnvironment === "" ? undefined : Redacted.make(fromEnvironment)
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
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly tokenFile: Option.Option<string>
}

/** The environment the flags name; a `--remote` that is no `ws://` URL is a usage error. */
export const environmentLayer = (
  flags: ConnectionFlags
): Effect.Effect<
  Layer.Layer<Environment.Environment | FileSystem.FileSystem, Environment.EnvironmentError | Config.ConfigError>,
  UsageError
> => {
  if (Option.isNone(flags.remote)) return Effect.succeed(Environment.layerConfig)
  const url = flags.remote.value
  if (!isServerUrl(url)) {
    return Effect.fail(
      new UsageError({ message: `--remote must be a ws:// or wss:// URL, such as ws://127.0.0.1:4000 (got ${url})` })
    )
  }
  return Effect.succeed(Environment.layerRemote({ url, token: resolveToken(flags.token, flags.tokenFile) }))
}
