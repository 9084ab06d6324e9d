/**
 * One `environments.toml`, two clients: the released Codex CLI 0.169 and
 * effect-exec's registry read the same file and run in the same environment —
 * its default, a WebSocket exec-server reached with the file's token — and the
 * registry reaches the file's other environment, a stdio program, by its id.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as EnvironmentRegistry from "../src/EnvironmentRegistry.ts"
import * as Exec from "../src/Exec.ts"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as OutputSink from "../src/OutputSink.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import * as CodexCli from "./support/codexCli.ts"
import * as MockModel from "./support/mockModel.ts"
import { bin } from "./support/servers.ts"

describe("one environments.toml for the Codex CLI and for effect-exec", () => {
  it.live("both run in its default environment; effect-exec reaches the other one by id", () =>
    Effect.gen(function*() {
      const token = "shared-file-token"
      const executor = yield* LocalExecutor.make({ baseEnvironment: { ...process.env, HOST_NAME: "devbox" } })
      const devbox = yield* Effect.provideService(
        WebSocketListener.listen({ token: Redacted.make(token) }),
        Executor,
        executor
      )
      const toml = [
        `default = "devbox"`,
        `include_local = false`,
        ``,
        `[[environments]]`,
        `id = "devbox"`,
        `url = "${devbox.url}"`,
        `auth_bearer_token = "${token}"`,
        ``,
        `[[environments]]`,
        `id = "over-stdio"`,
        `program = ${JSON.stringify(process.execPath)}`,
        `args = ${JSON.stringify([bin, "serve", "--listen", "stdio"])}`,
        `[environments.env]`,
        `HOST_NAME = "over-stdio"`,
        ``
      ].join("\n")

      // the Codex CLI: its agent's command runs in the default environment
      const workspace = yield* CodexCli.workspace()
      const { toolResults } = yield* CodexCli.run({
        workspace,
        server: { _tag: "EnvironmentsFile", toml },
        script: [
          MockModel.execCommand({ cmd: "printf 'on %s' \"$HOST_NAME\"", yield_time_ms: 30_000 }),
          MockModel.say("done")
        ]
      })
      assert.strictEqual(CodexCli.commandOutput(toolResults[0]).output, "on devbox")

      // effect-exec, from the same file
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "shared-environments-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      const file = join(dir, "environments.toml")
      writeFileSync(file, toml)
      const command = ["sh", "-c", "printf 'on %s' \"$HOST_NAME\""]
      const results = yield* Effect.gen(function*() {
        const byDefault = yield* Exec.run({ command }).pipe(Effect.provide(EnvironmentRegistry.layerEnvironment()))
        const byId = yield* Exec.run({ command, environment: "over-stdio" })
        return [byDefault.stdout.text, byId.stdout.text]
      }).pipe(Effect.provide([EnvironmentRegistry.layerConfig({ file }), OutputSink.layerDiscard]))
      assert.deepStrictEqual(results, ["on devbox", "on over-stdio"])
    }), 120_000)
})
