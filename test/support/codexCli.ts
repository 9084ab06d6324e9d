/**
 * The released Codex CLI (`codex exec`, the binary `test/globalSetup.ts`
 * installs) run against an exec-server, offline: a scripted mock model
 * (`mockModel.ts`) answers as the model through a custom provider in a scratch
 * `CODEX_HOME`, and the agent's environment is the exec-server under test —
 * over WebSocket (`CODEX_EXEC_SERVER_URL`) or over stdio (an
 * `environments.toml` entry with a `program`). Every run has its own `HOME`,
 * `CODEX_HOME` and workspace; its stdin is /dev/null (the CLI reads stdin to
 * the end before it starts).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { locateCodex, scratchDir } from "./codexServer.ts"
import * as MockModel from "./mockModel.ts"

/**
 * Where the agent's environment is: an exec-server's WebSocket, a program
 * speaking the protocol on stdio, or whatever an `environments.toml` of one's
 * own says.
 */
export type ExecServer =
  | { readonly _tag: "WebSocket"; readonly url: string }
  | { readonly _tag: "Stdio"; readonly program: string; readonly args: ReadonlyArray<string> }
  | { readonly _tag: "EnvironmentsFile"; readonly toml: string }

/**
 * A fresh, empty folder to be an exec-server's `HOME`, removed with the scope.
 * The CLI runs every command in a login shell (`bash -lc`) that inherits the
 * server's environment: with the `HOME` of this machine's user it would read
 * that user's profile, whose output joins the command's (pyenv's, on this
 * machine, warns when another shell rehashes at the same time) and whose locks
 * make commands wait for other shells. `startCodexServer` gives Codex's server
 * one too; a stdio server inherits the CLI's own scratch `HOME`.
 */
export const serverHome: Effect.Effect<string, never, Scope.Scope> = scratchDir("codex-cli-server-home-")

/** A fresh workspace holding `files` (paths relative to it; parents are created), removed with the scope. */
export const workspace = (
  files: Readonly<Record<string, string | Uint8Array>> = {}
): Effect.Effect<string, never, Scope.Scope> =>
  Effect.tap(scratchDir("codex-cli-ws-"), (dir) =>
    Effect.sync(() => {
      for (const [path, content] of Object.entries(files)) {
        mkdirSync(dirname(join(dir, path)), { recursive: true })
        writeFileSync(join(dir, path), content)
      }
    }))

export interface RunOptions {
  readonly workspace: string
  readonly server: ExecServer
  /** One turn per model request; the last should end the turn (`MockModel.say`). */
  readonly script: ReadonlyArray<MockModel.Turn>
  readonly prompt?: string
  /** How long the CLI may take before it is killed and the run dies (default 90 s). */
  readonly timeoutMillis?: number
  /** The CLI's own sandbox mode (default: approvals and sandbox bypassed). */
  readonly sandbox?: "read-only" | "workspace-write"
}

export interface Run {
  /** The `--json` events the CLI printed (`item.completed`, `turn.completed`, …). */
  readonly events: ReadonlyArray<any>
  readonly stderr: string
  /** Every model request, in order. */
  readonly requests: ReadonlyArray<MockModel.ModelRequest>
  /** Every tool call and the output the model got for it, from the last request (which holds the whole history). */
  readonly toolResults: ReadonlyArray<MockModel.ToolResult>
}

const configToml = (baseUrl: string) =>
  [
    `model_provider = "mock"`,
    `model = "gpt-5.5"`,
    ``,
    `[model_providers.mock]`,
    `name = "mock"`,
    `base_url = ${JSON.stringify(baseUrl)}`,
    `wire_api = "responses"`,
    `env_key = "MOCK_MODEL_KEY"`,
    `request_max_retries = 0`,
    `stream_max_retries = 0`,
    ``
  ].join("\n")

const environmentsToml = (program: string, args: ReadonlyArray<string>) =>
  [
    `default = "under-test"`,
    `include_local = false`,
    ``,
    `[[environments]]`,
    `id = "under-test"`,
    `program = ${JSON.stringify(program)}`,
    `args = [${args.map((arg) => JSON.stringify(arg)).join(", ")}]`,
    ``
  ].join("\n")

interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Spawns the CLI for the scope (SIGKILLed at its end if still running) and waits for it to exit. */
const runCli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, cwd: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => spawn(locateCodex(), args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] })),
    (child) =>
      Effect.callback<Exit>((resume) => {
        const stdout: Array<Buffer> = []
        const stderr: Array<Buffer> = []
        child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
        child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk))
        child.on("error", (error) => resume(Effect.die(error)))
        child.on("close", (code, signal) =>
          resume(Effect.succeed({
            code,
            signal,
            stdout: Buffer.concat(stdout).toString("utf8"),
            stderr: Buffer.concat(stderr).toString("utf8")
          })))
      }),
    (child) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      })
  )

const parseEvents = (stdout: string): ReadonlyArray<any> =>
  stdout.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return []
    try {
      return [JSON.parse(line)]
    } catch {
      return []
    }
  })

/**
 * Runs `codex exec` with the mock model playing `script`, in `workspace`, with
 * `server` as its only environment (`gpt-5.5`, approvals and the CLI's own
 * sandbox bypassed). Dies, with the CLI's stderr, unless the CLI exits 0 after
 * exactly one model request per turn — so a run that returns went as scripted.
 */
export const run = (options: RunOptions): Effect.Effect<Run, never, Scope.Scope> =>
  Effect.gen(function*() {
    const model = yield* MockModel.serve(options.script)
    const scratch = yield* scratchDir("codex-cli-home-")
    const env = yield* Effect.sync(() => cliEnvironment(scratch, model.baseUrl, options.server))
    const args = [
      "exec",
      "--json",
      "-m",
      "gpt-5.5",
      ...(options.sandbox === undefined
        ? ["--dangerously-bypass-approvals-and-sandbox"]
        : ["--sandbox", options.sandbox]),
      "--skip-git-repo-check",
      "-C",
      options.workspace,
      options.prompt ?? "Do as scripted."
    ]
    const timeoutMillis = options.timeoutMillis ?? 90_000
    const exit = yield* runCli(args, env, scratch).pipe(
      Effect.timeoutOrElse({
        duration: timeoutMillis,
        orElse: () =>
          Effect.die(
            new Error(`codex exec did not finish within ${timeoutMillis} ms (${model.requests.length} requests)`)
          )
      })
    )
    const requests = [...model.requests]
    if (exit.code !== 0 || requests.length !== options.script.length) {
      return yield* Effect.die(
        new Error(
          `codex exec exited with ${exit.signal ?? exit.code} after ${requests.length} of ${options.script.length} ` +
            `model requests\n--- stderr (end) ---\n${exit.stderr.slice(-4000)}\n--- stdout (end) ---\n` +
            exit.stdout.slice(-2000)
        )
      )
    }
    const last = requests[requests.length - 1]!
    return { events: parseEvents(exit.stdout), stderr: exit.stderr, requests, toolResults: MockModel.toolResults(last) }
  })

/**
 * Lays out `HOME` and `CODEX_HOME` under `scratch` (the model provider, and the
 * stdio environment if any) and returns the CLI's environment: this process's,
 * without Codex or OpenAI settings, with those folders and the server.
 */
const cliEnvironment = (scratch: string, modelUrl: string, server: ExecServer): NodeJS.ProcessEnv => {
  const home = join(scratch, "home")
  const codexHome = join(scratch, "codex-home")
  mkdirSync(home)
  mkdirSync(codexHome)
  writeFileSync(join(codexHome, "config.toml"), configToml(modelUrl))
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("CODEX_") && !name.startsWith("OPENAI_")) env[name] = value
  }
  Object.assign(env, { HOME: home, CODEX_HOME: codexHome, MOCK_MODEL_KEY: "mock-key" })
  if (server._tag === "WebSocket") env.CODEX_EXEC_SERVER_URL = server.url
  else if (server._tag === "Stdio") {
    writeFileSync(join(codexHome, "environments.toml"), environmentsToml(server.program, server.args))
  } else writeFileSync(join(codexHome, "environments.toml"), server.toml)
  return env
}

// =============================================================================
// Reading what the model got
// =============================================================================

/** What `exec_command` and `write_stdin` tell the model, read back from their text. */
export interface CommandOutput {
  /** The exit code, once the process exited within the call. */
  readonly exitCode: number | undefined
  /** While the process still runs: the session id `write_stdin` takes. */
  readonly sessionId: number | undefined
  /** ceil(bytes / 4) of everything the process printed so far, even when the text shown is truncated. */
  readonly originalTokenCount: number | undefined
  /** The output as shown to the model (stdout and stderr merged in arrival order; head and tail when long). */
  readonly output: string
}

/** Reads a command tool's output text (`Chunk ID: …\nWall time: …\nProcess exited with code N\n…\nOutput:\n…`). */
export const commandOutput = (result: MockModel.ToolResult | undefined): CommandOutput => {
  if (result === undefined) throw new Error("no such tool result")
  if (typeof result.output !== "string") throw new Error(`${result.tool} answered ${JSON.stringify(result.output)}`)
  const marker = result.output.indexOf("\nOutput:\n")
  if (marker === -1) throw new Error(`${result.tool} answered without output: ${result.output}`)
  const header = result.output.slice(0, marker)
  const number = (pattern: RegExp) => {
    const match = pattern.exec(header)
    return match === null ? undefined : Number(match[1])
  }
  return {
    exitCode: number(/^Process exited with code (-?\d+)$/m),
    sessionId: number(/^Process running with session ID (\d+)$/m),
    originalTokenCount: number(/^Original token count: (\d+)$/m),
    output: result.output.slice(marker + "\nOutput:\n".length)
  }
}
