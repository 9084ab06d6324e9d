import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"
import { listenLocal } from "./support/servers.ts"

const withConfig = (values: Record<string, string>) =>
  Environment.layerConfig.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(values))))

describe("Environment.layerConfig", () => {
  it.effect("runs locally when EXEC_SERVER_URL is unset or empty", () =>
    Effect.gen(function*() {
      for (const values of [{}, { EXEC_SERVER_URL: "" }]) {
        const environment = yield* Effect.provide(Environment.Environment, withConfig(values))
        assert.deepStrictEqual(environment.location, { _tag: "Local" })
      }
    }))

  it.effect("runs remotely when EXEC_SERVER_URL is a ws:// URL", () =>
    Effect.gen(function*() {
      const environment = yield* Effect.provide(
        Environment.Environment,
        withConfig({ EXEC_SERVER_URL: "ws://127.0.0.1:4000", EXEC_SERVER_TOKEN: "t" })
      )
      assert.deepStrictEqual(environment.location, { _tag: "Remote", url: "ws://127.0.0.1:4000" })
    }))

  it.effect("refuses an EXEC_SERVER_URL that is not a WebSocket URL, saying why", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.provide(Environment.Environment, withConfig({ EXEC_SERVER_URL: "10.0.0.5:4000" }))
      )
      assert.strictEqual(error._tag, "EnvironmentError")
      assert.include(error.message, "10.0.0.5:4000")
    }))
})

describe("Environment layers and FileSystem", () => {
  /** Writes a file with the environment's FileSystem, then runs `cat` on it in the same environment. */
  const writeThenCat = Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "environment-fs-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const fs = yield* FileSystem.FileSystem
    yield* fs.writeFileString(join(dir, "note.txt"), "written here")
    const result = yield* Exec.run({ command: ["cat", "note.txt"], cwd: dir })
    return { dir, catted: result.stdout.text }
  })

  it.live("layerRemote provides the server's FileSystem beside the Environment", () =>
    Effect.gen(function*() {
      const { url } = yield* listenLocal()
      const { catted, dir } = yield* writeThenCat.pipe(
        Effect.provide([Environment.layerRemote({ url }), OutputSink.layerDiscard])
      )
      assert.strictEqual(catted, "written here")
      assert.strictEqual(readFileSync(join(dir, "note.txt"), "utf8"), "written here")
    }))

  it.live("layerConfig provides the FileSystem of the place it chose", () =>
    Effect.gen(function*() {
      const { url } = yield* listenLocal()
      for (const values of [{}, { EXEC_SERVER_URL: url }]) {
        const { catted } = yield* writeThenCat.pipe(Effect.provide([withConfig(values), OutputSink.layerDiscard]))
        assert.strictEqual(catted, "written here")
      }
    }))
})
