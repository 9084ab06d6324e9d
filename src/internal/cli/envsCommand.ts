/**
 * `effect-exec envs`: the environments of the registry (`--environments
 * FILE`, else `$EXEC_ENVIRONMENTS_FILE`, else `$CODEX_HOME/environments.toml`,
 * else `$EXEC_SERVER_URL`), each probed with an `initialize` round trip, as a
 * table: id (the default marked `*`), kind, URL or program, state, latency.
 * Exits 0 when every one is healthy, 1 otherwise.
 *
 * @internal
 */
import { Command, Flag } from "effect/cli"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as EnvironmentRegistry from "../../EnvironmentRegistry.ts"
import * as Connection from "./connection.ts"

const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print the rows as JSON, one object per environment, latency in milliseconds"),
  Flag.withDefault(false)
)

/** The rows, probed now. */
const probe = Effect.gen(function*() {
  const registry = yield* EnvironmentRegistry.EnvironmentRegistry
  return yield* registry.check()
})

const rowJson = (row: EnvironmentRegistry.HealthRow) => ({
  ...row,
  latency: row.latency === undefined ? null : Duration.toMillis(row.latency)
})

/** `effect-exec envs`. */
export const command = Command.make(
  "envs",
  { environments: Connection.environmentsFlag, json: jsonFlag },
  Effect.fnUntraced(function*(flags) {
    const rows = yield* probe.pipe(
      Effect.provide(EnvironmentRegistry.layerConfig({ file: Option.getOrUndefined(flags.environments) }))
    )
    yield* Console.log(
      flags.json ? JSON.stringify(rows.map(rowJson)) : EnvironmentRegistry.formatHealth(rows).trimEnd()
    )
    process.exitCode = rows.every((row) => row.state === "healthy") ? 0 : 1
  })
).pipe(
  Command.withDescription(
    "List the environments (Codex's environments.toml format) with their health: each is probed with an " +
      "initialize round trip; exit 1 when one is not healthy"
  ),
  Command.withExamples([
    { command: "effect-exec envs", description: "$CODEX_HOME/environments.toml, probed" },
    { command: "effect-exec envs --environments fleet.toml --json", description: "as JSON" }
  ])
)
