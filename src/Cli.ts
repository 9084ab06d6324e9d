/**
 * The `effect-exec` command line: `run` executes one command through the
 * library (here, or on an exec-server) as a Unix tool does — live output byte
 * for byte, stdin forwarded, the command's exit code — and `serve` makes this
 * host an exec-server.
 *
 * `main` parses `process.argv`; `runMain` runs it as this process's main
 * program (signals, a closed stdout, one-line errors: `internal/cli/processMain`).
 * Each command lives under `internal/cli/`: `runCommand`, `serveCommand`,
 * their shared flags (`connection`, `duration`), how `run` reports
 * (`runReport`), the terminal and stdin it lends (`userTerminal`, `stdin`),
 * usage errors (`usage`) and exit codes (`exitCodes`).
 *
 * @since 0.1.0
 */
import * as NodeChildProcessSpawner from "@effect/platform-node-shared/NodeChildProcessSpawner"
import * as NodeFileSystem from "@effect/platform-node-shared/NodeFileSystem"
import * as NodePath from "@effect/platform-node-shared/NodePath"
import * as NodeStdio from "@effect/platform-node-shared/NodeStdio"
import * as NodeTerminal from "@effect/platform-node-shared/NodeTerminal"
import { Command } from "effect/cli"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ExecServer from "./ExecServer.ts"
import * as EnvsCommand from "./internal/cli/envsCommand.ts"
import * as ProcessMain from "./internal/cli/processMain.ts"
import * as RunCommand from "./internal/cli/runCommand.ts"
import * as ServeCommand from "./internal/cli/serveCommand.ts"
import * as Usage from "./internal/cli/usage.ts"

/**
 * `effect-exec run [flags] -- COMMAND ARGS…`.
 *
 * @category commands
 * @since 0.1.0
 */
export const run = RunCommand.command

/**
 * `effect-exec serve [flags]`.
 *
 * @category commands
 * @since 0.1.0
 */
export const serve = ServeCommand.command

/**
 * `effect-exec envs [--environments FILE] [--json]`.
 *
 * @category commands
 * @since 0.1.0
 */
export const envs = EnvsCommand.command

/**
 * The root `effect-exec` command.
 *
 * @category commands
 * @since 0.1.0
 */
export const root = Command.make("effect-exec").pipe(
  Command.withDescription("Run commands in an execution environment, the Effect way"),
  Command.withSubcommands([run, serve, envs])
)

/** What `effect/cli` needs of the platform: this process's files, paths, stdio and terminal. */
const platform = NodeChildProcessSpawner.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeStdio.layer, NodeTerminal.layer))
)

/**
 * The CLI on this process's arguments: usage errors presented as one line on
 * stderr; the exit code the command decides is `process.exitCode`.
 *
 * @category running
 * @since 0.1.0
 */
export const main: Effect.Effect<void, unknown> = Effect.suspend(() =>
  Command.run(root, { version: ExecServer.version }).pipe(
    Effect.provide([platform, Usage.layer(process.argv.slice(2))])
  )
)

/**
 * Runs the CLI as this process's main program: a stop signal (INT, TERM, HUP,
 * QUIT) kills the command's group and exits 128 + n, a closed stdout exits
 * 141 quietly, a failure is one line on stderr.
 *
 * @example
 * ```ts
 * import * as Cli from "effect-exec/Cli"
 *
 * // all that the effect-exec executable does
 * Cli.runMain()
 * ```
 *
 * @category running
 * @since 0.1.0
 */
export const runMain = (): void => ProcessMain.runMain(main)
