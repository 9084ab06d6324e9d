/**
 * A URL the WebSocket client cannot use is a typed `ConnectionLost`, like an
 * unreachable server, never a defect (the CLI's `run --remote ""` crashed).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"

describe("RemoteExecutor.connectWebSocket", () => {
  it.live("an unusable URL fails the call with ConnectionLost, saying which URL", () =>
    Effect.gen(function*() {
      for (const url of ["", "http://127.0.0.1:1", "ws://"]) {
        const error = yield* Effect.flip(
          Exec.run({ command: ["true"] }).pipe(
            Effect.provide([Environment.layerRemote({ url }), OutputSink.layerDiscard])
          )
        )
        assert.strictEqual(error.reason._tag, "ConnectionLost", url)
        assert.include(error.message, url === "" ? "\"\"" : url)
      }
    }))
})
