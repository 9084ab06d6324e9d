import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Environment from "../src/Environment.ts"

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
