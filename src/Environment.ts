/**
 * Where commands run: which `Executor` serves `Exec.run`, and where it is
 * (this machine, or an exec-server at a URL). Each layer also provides
 * Effect's `FileSystem` for the same place: Node's file system here, the
 * exec-server's `fs/*` methods there, so an app reads and writes files where
 * its commands run with the `FileSystem` it already knows.
 *
 * Paths: absolute paths are the environment host's; relative ones are
 * resolved against the environment's working directory (where a command that
 * names no `cwd` runs): this process's directory locally, the server's
 * remotely.
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node-shared/NodeFileSystem"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
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
  /** An exec-server program spoken to over its stdin and stdout. */
  | { readonly _tag: "Stdio"; readonly program: string; readonly args: ReadonlyArray<string> }

/**
 * An environment's configuration is wrong: an `EXEC_SERVER_URL` that is not a
 * `ws://` or `wss://` URL, an environments file that cannot be read or breaks
 * Codex's rules, environments given in code that break them. A server out of
 * reach is no `EnvironmentError`: the run fails with an `ExecutorError`
 * (`ConnectionLost`).
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
  /**
   * Held by each `Exec.run` in this environment for the whole run: a slot of
   * its concurrency limit (environments of an `EnvironmentRegistry`), waiting
   * while all are taken. Absent: runs are not counted.
   */
  readonly admit?: Effect.Effect<void, never, Scope.Scope>
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
 * process groups, with the current directory as the default `cwd`; files are
 * Node's (`FileSystem`).
 *
 * @example
 * ```ts
 * import { Effect, FileSystem } from "effect"
 * import { Environment, Exec, OutputSink } from "effect-exec"
 *
 * const program = Effect.gen(function*() {
 *   const fs = yield* FileSystem.FileSystem
 *   const dir = yield* fs.makeTempDirectoryScoped()
 *   yield* fs.writeFileString(`${dir}/greeting.txt`, "hello")
 *   return yield* Exec.run({ command: ["cat", "greeting.txt"], cwd: dir })
 * }).pipe(Effect.scoped, Effect.provide([Environment.layerLocal, OutputSink.layerDiscard]))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLocal: Layer.Layer<Environment | FileSystem.FileSystem> = Layer.merge(
  fromExecutor({ _tag: "Local" }).pipe(Layer.provide(LocalExecutor.layer())),
  NodeFileSystem.layer
)

/**
 * An exec-server at `url` (ours or Codex's): commands run on its host, in its
 * working directory unless they name one, and `FileSystem` reads and writes
 * its host's files (over its `fs/*` methods, on the same connection). Nothing
 * connects until the first command or file call.
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
export const layerRemote = (
  options: RemoteExecutor.WebSocketOptions
): Layer.Layer<Environment | FileSystem.FileSystem> =>
  Layer.effectContext(
    Effect.map(
      RemoteExecutor.makeEnvironment(RemoteExecutor.connectWebSocket(options), options),
      ({ executor, fileSystem }) =>
        Context.make(Environment, Environment.of({ executor, location: { _tag: "Remote", url: options.url } })).pipe(
          Context.add(FileSystem.FileSystem, fileSystem)
        )
    )
  )

/**
 * Chooses by configuration: `EXEC_SERVER_URL` unset or empty runs locally; a
 * `ws://` URL runs on that exec-server, with `EXEC_SERVER_TOKEN` as its token
 * when set. The `FileSystem` is the chosen place's.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<
  Environment | FileSystem.FileSystem,
  EnvironmentError | Config.ConfigError
> = Layer.unwrap(
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
