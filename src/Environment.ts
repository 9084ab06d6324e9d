/**
 * Where commands run: which `Executor` serves `Exec.run`, and where it is
 * (this machine, or an exec-server at a URL).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { Executor } from "./Executor.ts"
import * as LocalExecutor from "./LocalExecutor.ts"

/**
 * Where an environment's processes run.
 *
 * @category models
 * @since 0.1.0
 */
export type Location =
  | { readonly _tag: "Local" }
  | { readonly _tag: "Remote"; readonly url: string }

/**
 * An environment could not be set up (bad configuration, unreachable server).
 *
 * @category errors
 * @since 0.1.0
 */
export class EnvironmentError extends Schema.TaggedError<EnvironmentError>()("EnvironmentError", {
  message: Schema.String
}) {}

/**
 * The execution environment `Exec.run` uses.
 *
 * @category services
 * @since 0.1.0
 */
export class Environment extends Context.Service<Environment, {
  readonly executor: Executor["Service"]
  readonly location: Location
  /** Working directory for requests that give none. */
  readonly defaultCwd: string
}>()("effect-exec/Environment") {}

/**
 * An environment served by whichever `Executor` is provided.
 *
 * @category layers
 * @since 0.1.0
 */
export const fromExecutor = (
  location: Location,
  defaultCwd: string
): Layer.Layer<Environment, never, Executor> =>
  Layer.effect(
    Environment,
    Effect.map(Executor, (executor) => Environment.of({ executor, location, defaultCwd }))
  )

/**
 * This machine: processes run as children of this process, in their own
 * process groups, with the current directory as the default `cwd`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLocal: Layer.Layer<Environment> = fromExecutor({ _tag: "Local" }, process.cwd()).pipe(
  Layer.provide(LocalExecutor.layer())
)

/**
 * Chooses by configuration: `EXEC_SERVER_URL` unset or empty runs locally; a
 * `ws://` URL would run on that exec-server, which this version cannot do yet
 * (it fails with an `EnvironmentError` that says so).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<Environment, EnvironmentError | Config.ConfigError> = Layer.unwrap(
  Effect.gen(function*() {
    const url = yield* Config.String("EXEC_SERVER_URL").pipe(Config.withDefault(""))
    if (url.trim() === "") return layerLocal
    return yield* Effect.fail(
      new EnvironmentError({
        message: `EXEC_SERVER_URL is set to ${url}, but this version of effect-exec has no remote executor yet; ` +
          `unset EXEC_SERVER_URL to run locally`
      })
    )
  })
)
