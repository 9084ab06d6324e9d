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

  it.effect("says clearly that a remote URL is not served by this version", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.provide(Environment.Environment, withConfig({ EXEC_SERVER_URL: "ws://127.0.0.1:4000" }))
      )
      assert.strictEqual(error._tag, "EnvironmentError")
      assert.include(error.message, "ws://127.0.0.1:4000")
    }))
})
