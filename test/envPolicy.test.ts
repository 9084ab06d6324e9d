import { assert, describe, it } from "@effect/vitest"
import { childEnvironment } from "../src/internal/local/envPolicy.ts"

const base = { PATH: "/bin", HOME: "/root", API_KEY: "k", GITHUB_TOKEN: "t", MY_SECRET_X: "s", LANG: "C", LC_ALL: "C" }
const policy = { inherit: "all", ignoreDefaultExcludes: false, exclude: [], set: {}, includeOnly: [] } as const

describe("childEnvironment", () => {
  it("is exactly env without a policy", () => {
    assert.deepStrictEqual(childEnvironment({ ONLY: "1" }, undefined, base), { ONLY: "1" })
    assert.deepStrictEqual(childEnvironment({}, null, base), {})
  })

  it("inherits all but credential-looking names by default", () => {
    assert.deepStrictEqual(childEnvironment({}, policy, base), { PATH: "/bin", HOME: "/root", LANG: "C", LC_ALL: "C" })
  })

  it("keeps credentials when told to ignore the default excludes", () => {
    assert.strictEqual(childEnvironment({}, { ...policy, ignoreDefaultExcludes: true }, base).API_KEY, "k")
  })

  it("inherits only the core variables with inherit core", () => {
    assert.deepStrictEqual(childEnvironment({}, { ...policy, inherit: "core" }, base), { PATH: "/bin", HOME: "/root" })
  })

  it("applies exclude globs, then set, then includeOnly, then env on top", () => {
    const env = childEnvironment(
      { EXTRA: "e", LANG: "overlay" },
      { ...policy, exclude: ["lc_*"], set: { SET_ME: "1" }, includeOnly: ["PATH", "SET_*", "LANG"] },
      base
    )
    assert.deepStrictEqual(env, { PATH: "/bin", SET_ME: "1", LANG: "overlay", EXTRA: "e" })
  })
})
