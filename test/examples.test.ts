/**
 * The programs in `examples/`, run as a user runs them: plain `node` on the
 * file, `effect-exec` imported by its package name (the built `dist/`). The
 * README shows them verbatim, so what it shows runs. (`npm run check`
 * type-checks them; the package test compiles and runs `app.ts` in a
 * consumer project on Node 22 and 24.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const example = (name: string) => fileURLToPath(new URL(`../examples/${name}`, import.meta.url))

const runExample = (name: string) =>
  Effect.callback<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
    const child = execFile(
      process.execPath,
      [example(name)],
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : (error.code as number | null), stdout, stderr }))
    )
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

describe("examples/", () => {
  it.live("oneLiner.ts prints the kernel's name", () =>
    Effect.gen(function*() {
      const result = yield* runExample("oneLiner.ts")
      assert.strictEqual(result.code, 0)
      assert.strictEqual(result.stdout, "running on Linux\n")
    }))

  it.live("app.ts feeds stdin, streams the output live and reports the result", () =>
    Effect.gen(function*() {
      const result = yield* runExample("app.ts")
      assert.strictEqual(result.code, 3, "it exits as its command did")
      assert.strictEqual(result.stdout, "hello world\nexit code 3 (Exited), 12 bytes out\n")
      assert.strictEqual(result.stderr, "almost done\n")
    }))

  it.live("remote.ts runs the same code on an exec-server and here", () =>
    Effect.gen(function*() {
      const result = yield* runExample("remote.ts")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.deepStrictEqual(JSON.parse(result.stdout), {
        remote: "written through fs/writeFile",
        local: "written through fs/writeFile"
      })
    }))

  it("the README shows app.ts and oneLiner.ts as they are", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    for (const name of ["app.ts", "oneLiner.ts"]) {
      assert.include(readme, "```ts\n" + readFileSync(example(name), "utf8") + "```", `README shows ${name}`)
    }
  })
})
