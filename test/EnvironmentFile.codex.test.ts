/**
 * The verdicts of `support/environmentFiles.ts` are Codex's: the released
 * Codex CLI 0.169 reads each file from a scratch `CODEX_HOME` and accepts it
 * (it gets as far as starting its session) or refuses it (it exits with an
 * error about the environments before any session). Our reading of the same
 * files is checked against the same verdicts in
 * `EnvironmentRegistry.config.test.ts`, so the two programs agree on each.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { locateCodex } from "./support/codexServer.ts"
import { environmentFiles } from "./support/environmentFiles.ts"

// a model provider on a closed port: the CLI never reaches a model, and nothing leaves this machine
const configToml = [
  `model_provider = "mock"`,
  `model = "gpt-5.5"`,
  `[model_providers.mock]`,
  `name = "mock"`,
  `base_url = "http://127.0.0.1:9/v1"`,
  `wire_api = "responses"`,
  `env_key = "MOCK_MODEL_KEY"`,
  `request_max_retries = 0`,
  `stream_max_retries = 0`,
  ``
].join("\n")

/** Codex's verdict on `toml`: "accepted" once it starts a session, else its error line. */
const codexVerdict = (toml: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const root = mkdtempSync(join(tmpdir(), "codex-environments-"))
      for (const dir of ["home", "codex-home", "work"]) mkdirSync(join(root, dir))
      writeFileSync(join(root, "codex-home", "config.toml"), configToml)
      writeFileSync(join(root, "codex-home", "environments.toml"), toml)
      return root
    }),
    (root) =>
      Effect.callback<string>((resume) => {
        const child = spawn(locateCodex(), ["exec", "--skip-git-repo-check", "hi"], {
          cwd: join(root, "work"),
          env: {
            PATH: process.env.PATH,
            HOME: join(root, "home"),
            CODEX_HOME: join(root, "codex-home"),
            MOCK_MODEL_KEY: "x"
          },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let output = ""
        const settle = (verdict: string) => {
          child.kill("SIGKILL")
          resume(Effect.succeed(verdict))
        }
        const look = (chunk: Buffer) => {
          output += chunk.toString("utf8")
          if (/^session id: /m.test(output)) settle("accepted")
        }
        child.stdout.on("data", look)
        child.stderr.on("data", look)
        child.on("close", () => {
          const error = output.split("\n").find((line) => line.startsWith("Error:"))
          resume(Effect.succeed(error ?? `exited without a session or an error: ${output.slice(-400)}`))
        })
        return Effect.sync(() => child.kill("SIGKILL"))
      }),
    (root) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
  )

describe("environments.toml verdicts, checked against the Codex CLI 0.169", () => {
  it.live("Codex accepts and refuses exactly the files we do", () =>
    Effect.gen(function*() {
      const verdicts = yield* Effect.forEach(
        environmentFiles,
        (file) => Effect.map(codexVerdict(file.toml), (verdict) => [file.name, verdict] as const),
        { concurrency: 4 }
      )
      for (const [index, [name, verdict]] of verdicts.entries()) {
        const expected = environmentFiles[index]!.verdict
        if (expected === true) assert.strictEqual(verdict, "accepted", name)
        else assert.match(verdict, /^Error: exec-server protocol error: /, name)
      }
    }), 120_000)
})
