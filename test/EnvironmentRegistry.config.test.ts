/**
 * Reading environments as Codex does: `environments.toml` (the verdicts of
 * `support/environmentFiles.ts`, which Codex 0.169 itself gives), the
 * variable when there is no file, and the order in which the CLI looks.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as EnvironmentRegistry from "../src/EnvironmentRegistry.ts"
import { environmentFiles } from "./support/environmentFiles.ts"

const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "environments-config-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const writeFile = (dir: string, name: string, text: string) =>
  Effect.sync(() => {
    writeFileSync(join(dir, name), text)
    return join(dir, name)
  })

const withVariables = (values: Record<string, string>) =>
  Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(values)))

describe("environments.toml, as Codex 0.169 reads it", () => {
  for (const file of environmentFiles) {
    it.effect(`${file.verdict === true ? "accepts" : "refuses"} ${file.name}`, () =>
      Effect.gen(function*() {
        const dir = yield* scratch
        const path = yield* writeFile(dir, "environments.toml", file.toml)
        const result = yield* Effect.result(EnvironmentRegistry.fromFile(path))
        if (file.verdict === true) {
          assert.strictEqual(result._tag, "Success", result._tag === "Failure" ? result.failure.message : "")
        } else {
          assert.strictEqual(result._tag, "Failure")
          if (result._tag === "Failure") {
            assert.strictEqual(result.failure._tag, "EnvironmentError")
            assert.include(result.failure.message, file.verdict.refusedFor)
            assert.include(result.failure.message, path, "the reason names the file")
          }
        }
      }))
  }

  it.effect("reads every key into the model; a relative cwd is the file's folder's", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const path = yield* writeFile(dir, "environments.toml", environmentFiles[1]!.toml)
      const config = yield* EnvironmentRegistry.fromFile(path)
      assert.strictEqual(config.defaultId, "ssh-dev")
      assert.isTrue(config.includeLocal)
      assert.strictEqual(config.source, path)
      const [devbox, ssh] = config.environments
      assert.deepStrictEqual(devbox, {
        _tag: "WebSocket",
        id: "devbox",
        url: "ws://127.0.0.1:4512",
        token: undefined,
        connectTimeout: Duration.seconds(12),
        initializeTimeout: Duration.seconds(3.5)
      })
      assert.deepStrictEqual(ssh, {
        _tag: "Stdio",
        id: "ssh-dev",
        program: "true",
        args: ["dev", "effect-exec serve --listen stdio"],
        env: { EXEC_LOG: "debug" },
        cwd: join(dir, "workspace"),
        initializeTimeout: undefined
      })
    }))

  it.effect("keeps a token redacted: it appears in no message or string of the config", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const path = yield* writeFile(dir, "environments.toml", environmentFiles[4]!.toml)
      const config = yield* EnvironmentRegistry.fromFile(path)
      const spec = config.environments[0]!
      assert.strictEqual(spec._tag, "WebSocket")
      if (spec._tag === "WebSocket") assert.strictEqual(Redacted.value(spec.token!), "secret")
      assert.notInclude(JSON.stringify(config), "secret")
      assert.notInclude(String(config.environments[0]), "secret")
    }))

  it.effect("without a default: local when included, else none; \"none\" means none", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const read = (text: string) => Effect.flatMap(writeFile(dir, "e.toml", text), EnvironmentRegistry.fromFile)
      assert.strictEqual((yield* read("")).defaultId, "local")
      assert.strictEqual((yield* read("include_local = false\n")).defaultId, undefined)
      assert.strictEqual((yield* read(`default = "none"\n`)).defaultId, undefined)
      assert.isTrue((yield* read(`default = "none"\n`)).includeLocal)
    }))

  it.effect("a missing file named explicitly is an error naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(EnvironmentRegistry.fromFile("/nonexistent/environments.toml"))
      assert.include(error.message, "/nonexistent/environments.toml")
    }))
})

describe("EnvironmentRegistry.fromCode", () => {
  it.effect("checks ids and the default by the same rules as a file", () =>
    Effect.gen(function*() {
      const reserved = yield* Effect.flip(
        EnvironmentRegistry.fromCode({ environments: [EnvironmentRegistry.WebSocket({ id: "local", url: "ws://x" })] })
      )
      assert.include(reserved.message, "reserved")
      const unknown = yield* Effect.flip(EnvironmentRegistry.fromCode({ default: "devbox" }))
      assert.include(unknown.message, "devbox")
      const relative = yield* Effect.flip(
        EnvironmentRegistry.fromCode({
          environments: [EnvironmentRegistry.Stdio({ id: "p", program: "x", cwd: "relative" })]
        })
      )
      assert.include(relative.message, "absolute")
    }))

  it.effect("lets code send a token to a ws:// URL off this machine, as Environment.layerRemote does", () =>
    Effect.gen(function*() {
      const config = yield* EnvironmentRegistry.fromCode({
        environments: [
          EnvironmentRegistry.WebSocket({ id: "far", url: "ws://192.0.2.7:4000", token: Redacted.make("t") })
        ],
        default: "far"
      })
      assert.strictEqual(config.defaultId, "far")
    }))
})

describe("EnvironmentRegistry.load: where the CLI finds its environments", () => {
  it.effect("without a file, EXEC_SERVER_URL by Codex's rules for CODEX_EXEC_SERVER_URL", () =>
    Effect.gen(function*() {
      const unset = yield* EnvironmentRegistry.load().pipe(withVariables({}))
      assert.deepStrictEqual([unset.includeLocal, unset.defaultId, unset.environments.length], [true, "local", 0])
      const none = yield* EnvironmentRegistry.load().pipe(withVariables({ EXEC_SERVER_URL: " none " }))
      assert.deepStrictEqual([none.includeLocal, none.defaultId, none.environments.length], [false, undefined, 0])
      const remote = yield* EnvironmentRegistry.load().pipe(
        withVariables({ EXEC_SERVER_URL: " ws://127.0.0.1:4000 ", EXEC_SERVER_TOKEN: "t" })
      )
      assert.deepStrictEqual([remote.includeLocal, remote.defaultId], [false, "remote"])
      const spec = remote.environments[0]!
      assert.strictEqual(spec._tag === "WebSocket" && spec.url, "ws://127.0.0.1:4000")
      assert.strictEqual(spec._tag === "WebSocket" && spec.token && Redacted.value(spec.token), "t")
      const bad = yield* Effect.flip(EnvironmentRegistry.load().pipe(withVariables({ EXEC_SERVER_URL: "10.0.0.5:1" })))
      assert.include(bad.message, "EXEC_SERVER_URL")
    }))

  it.effect("the file given first, then EXEC_ENVIRONMENTS_FILE, then $CODEX_HOME/environments.toml, then the variable", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const given = yield* writeFile(dir, "given.toml", `default = "none"\n`)
      const named = yield* writeFile(dir, "named.toml", `include_local = false\n`)
      mkdirSync(join(dir, "codex-home"))
      const codexFile = yield* writeFile(join(dir, "codex-home"), "environments.toml", "")
      const variables = {
        EXEC_ENVIRONMENTS_FILE: named,
        CODEX_HOME: join(dir, "codex-home"),
        EXEC_SERVER_URL: "ws://127.0.0.1:4000"
      }
      assert.strictEqual(
        (yield* EnvironmentRegistry.load({ file: given }).pipe(withVariables(variables))).source,
        given
      )
      assert.strictEqual((yield* EnvironmentRegistry.load().pipe(withVariables(variables))).source, named)
      const { EXEC_ENVIRONMENTS_FILE: _, ...withoutNamed } = variables
      assert.strictEqual((yield* EnvironmentRegistry.load().pipe(withVariables(withoutNamed))).source, codexFile)
      // a CODEX_HOME without the file: the variable
      const fallback = yield* EnvironmentRegistry.load().pipe(
        withVariables({ ...withoutNamed, CODEX_HOME: join(dir, "empty-home") })
      )
      assert.deepStrictEqual([fallback.source, fallback.defaultId], ["EXEC_SERVER_URL", "remote"])
    }))
})
