/**
 * The README's tables, as the code has them (its examples are run by
 * examples.test.ts), read through the package's own entry point.
 */
import { assert, describe, it } from "@effect/vitest"
import { ExecServer } from "effect-exec"
import { readFileSync } from "node:fs"

describe("README limits table", () => {
  it("quotes every server default as the code has it", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const rows = [...readme.matchAll(/^\| `(\w+)` \| (\d+) \|/gm)].map(([, name, value]) => [name, Number(value)])
    assert.deepStrictEqual(Object.fromEntries(rows), { ...ExecServer.defaults })
  })
})
