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
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { Executor } from "./Executor.ts"
import * as LocalExecutor from "./LocalExecutor.ts"
import * as RemoteExecutor from "./RemoteExecutor.ts"

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
}>()("effect-exec/Environment") {}

/**
 * An environment served by whichever `Executor` is provided.
 *
 * @category layers
 * @since 0.1.0
 */
export const fromExecutor = (location: Location): Layer.Layer<Environment, never, Executor> =>
  Layer.effect(Environment, Effect.map(Executor, (executor) => Environment.of({ executor, location })))

/**
 * This machine: processes run as children of this process, in their own
 * process groups, with the current directory as the default `cwd`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLocal: Layer.Layer<Environment> = fromExecutor({ _tag: "Local" }).pipe(
  Layer.provide(LocalExecutor.layer())
)

/**
 * An exec-server at `url` (ours or Codex's): commands run on its host, in its
 * working directory unless they name one. Nothing connects until the first
 * command.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Environment, Exec, OutputSink } from "effect-exec"
 *
 * const token = Redacted.make(process.env.EXEC_SERVER_TOKEN ?? "")
 * const program = Exec.run({ command: ["uname", "-a"] }).pipe(
 *   Effect.provide([Environment.layerRemote({ url: "ws://10.0.0.5:4000", token }), OutputSink.layerDiscard])
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRemote = (options: RemoteExecutor.WebSocketOptions): Layer.Layer<Environment> =>
  fromExecutor({ _tag: "Remote", url: options.url }).pipe(Layer.provide(RemoteExecutor.layer(options)))

/**
 * Chooses by configuration: `EXEC_SERVER_URL` unset or empty runs locally; a
 * `ws://` URL runs on that exec-server, with `EXEC_SERVER_TOKEN` as its token
 * when set.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<Environment, EnvironmentError | Config.ConfigError> = Layer.unwrap(
  Effect.gen(function*() {
    const url = (yield* Config.String("EXEC_SERVER_URL").pipe(Config.withDefault(""))).trim()
    if (url === "") return layerLocal
    if (!url.startsWith("ws://") && !url.startsWith("wss://")) {
      return yield* new EnvironmentError({ message: `EXEC_SERVER_URL must be a ws:// or wss:// URL, got ${url}` })
    }
    const token = yield* Config.String("EXEC_SERVER_TOKEN").pipe(Config.withDefault(""))
    return layerRemote({ url, token: token === "" ? undefined : Redacted.make(token) })
  })
)
