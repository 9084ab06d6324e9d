/**
 * The README's "In an Effect app" example, through the package's own entry
 * point, as a user imports it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Environment, Exec, ExecServer, OutputSink } from "effect-exec"
import { readFileSync } from "node:fs"

describe("README example", () => {
  it.live("runs a command locally and returns a typed result", () =>
    Effect.gen(function*() {
      const result = yield* Exec.run({
        command: ["sh", "-c", "echo hi; echo oops >&2; exit 3"],
        cwd: "/tmp",
        timeout: "2 minutes",
        capture: "shellTool"
      }).pipe(Effect.provide(Layer.mergeAll(Environment.layerLocal, OutputSink.layerDiscard)))
      assert.strictEqual(result.exitCode, 3)
      assert.strictEqual(result.stdout.text, "hi\n")
      assert.strictEqual(result.stderr.text, "oops\n")
      assert.deepStrictEqual(result.termination, Exec.Termination.Exited({ exitCode: 3 }))
    }))
})

describe("README limits table", () => {
  it("quotes every server default as the code has it", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const rows = [...readme.matchAll(/^\| `(\w+)` \| (\d+) \|/gm)].map(([, name, value]) => [name, Number(value)])
    assert.deepStrictEqual(Object.fromEntries(rows), { ...ExecServer.defaults })
  })
})
