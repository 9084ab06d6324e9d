import { assert, describe, it } from "@effect/vitest"
import { childEnvironment } from "../src/internal/local/envPolicy.ts"
import { compileGlobs, foldCase, matchesAny, matchesAnyFolded } from "../src/internal/local/glob.ts"

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

describe("globs", () => {
  /** What a glob means, as a (backtracking) regular expression: the reference for small inputs only. */
  const reference = (pattern: string, name: string) =>
    new RegExp(
      "^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^]*").replace(/\?/g, "[^]") + "$",
      "i"
    ).test(name)

  it("matches as the reference on every pattern and name over a small alphabet", () => {
    // every pattern of up to 4 symbols over {a, b, *, ?}, against every name of up to 5 letters over {a, b}
    const symbols = ["a", "b", "*", "?", "A"]
    const words = (alphabet: ReadonlyArray<string>, length: number): Array<string> =>
      length === 0 ? [""] : words(alphabet, length - 1).flatMap((w) => alphabet.map((s) => w + s))
    const patterns = [0, 1, 2, 3, 4].flatMap((n) => words(symbols, n))
    const names = [0, 1, 2, 3, 4, 5].flatMap((n) => words(["a", "b", "B"], n))
    let compared = 0
    for (const pattern of patterns) {
      const glob = compileGlobs([pattern])
      for (const name of names) {
        assert.strictEqual(matchesAnyFolded(glob, foldCase(name)), reference(pattern, name), `${pattern} ~ ${name}`)
        compared++
      }
    }
    assert.isAbove(compared, 280_000)
  })

  it("matches a list as any of its patterns, without one pattern's state spilling into the next", () => {
    const symbols = ["a", "b", "*", "?"]
    const lists = [
      ["ab", "b"],
      ["a", "*b"],
      ["?", "ab*"],
      ["", "a"],
      ["a*", ""],
      ["*", "b"],
      ["b?", "a", "?b?"],
      symbols
    ]
    // a list long enough to need several machine words, each pattern ending where the next starts
    lists.push(Array.from({ length: 30 }, (_, i) => "ab".repeat(i % 5) + symbols[i % 4]))
    for (const list of lists) {
      const globs = compileGlobs(list)
      for (const name of ["", "a", "b", "ab", "ba", "aab", "abb", "abab", "ababababab", "bbbbbbbbbbba"]) {
        assert.strictEqual(
          matchesAnyFolded(globs, name),
          list.some((pattern) => reference(pattern, name)),
          `${JSON.stringify(list)} ~ ${name}`
        )
      }
    }
  })

  it("matches as the reference on patterns longer than one machine word", () => {
    const long = "x".repeat(40)
    for (
      const [pattern, name] of [
        [`${long}*`, `${long}tail`],
        [`*${long}`, `head${long}`],
        [`*${long}?*y`, `ab${long}zzy`],
        [`${"?".repeat(70)}`, "q".repeat(70)],
        [`${"?".repeat(70)}`, "q".repeat(71)],
        [`${"*a".repeat(40)}*b`, "a".repeat(39) + "b"],
        [`${"*a".repeat(40)}*b`, "a".repeat(40) + "b"]
      ] as const
    ) assert.strictEqual(matchesAny([pattern], name), reference(pattern, name), `${pattern} ~ ${name}`)
  })

  it("treats regular-expression characters and unicode as literals, case-insensitively", () => {
    assert.isTrue(matchesAny(["A.B+(c)|[d]$^\\"], "a.b+(C)|[D]$^\\"))
    assert.isFalse(matchesAny(["A.B"], "AxB"))
    assert.isTrue(matchesAny(["ÉTÉ_*"], "été_x"))
    assert.isTrue(matchesAny(["a?c"], "a\nc"), "? is any one character, a newline too")
    assert.isTrue(matchesAny(["__PROTO__"], "__proto__"))
  })
})

describe("childEnvironment, hostile", () => {
  it("keeps a variable named __proto__ as a variable", () => {
    const env = childEnvironment({}, { ...policy, set: JSON.parse("{\"__proto__\":\"x\"}") }, {})
    assert.deepStrictEqual(Object.keys(env), ["__proto__"])
    assert.strictEqual(env["__proto__"], "x")
  })
})
