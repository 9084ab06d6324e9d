/**
 * The published package, tried as a user tries it: `npm pack` (which builds
 * `dist/`), installed into a scratch app with its own `package.json`; there
 * the examples are compiled with `tsc` under `module nodenext` and under
 * `bundler` resolution (declarations checked: `skipLibCheck` false) and run
 * with plain `node` 22 and 24, and the installed `effect-exec` runs.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFileSync, spawnSync } from "node:child_process"
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import * as Consumer from "./support/consumer.ts"

const examples = ["app", "oneLiner", "remote"] as const

let work: ReturnType<typeof Consumer.scratch>
let tarball: string
let app: string
let node22: string
const node24 = process.execPath

/** The compiler options of a consumer that checks our declarations too. */
const strictConsumer = { target: "es2023", strict: true, types: ["node"], skipLibCheck: false }

beforeAll(() => {
  work = Consumer.scratch()
  tarball = Consumer.pack(work.dir)
  app = join(work.dir, "app")
  Consumer.installApp(app, tarball)
  node22 = Consumer.ensureNode22()
  for (const name of examples) cpSync(join(Consumer.root, "examples", `${name}.ts`), join(app, "src", `${name}.ts`))
  writeFileSync(
    join(app, "tsconfig.nodenext.json"),
    JSON.stringify({
      compilerOptions: { ...strictConsumer, module: "nodenext", rootDir: "src", outDir: "build" },
      include: ["src"]
    })
  )
  writeFileSync(
    join(app, "tsconfig.bundler.json"),
    JSON.stringify({
      compilerOptions: { ...strictConsumer, module: "preserve", moduleResolution: "bundler", noEmit: true },
      include: ["src"]
    })
  )
}, 300_000)

afterAll(() => work?.cleanup())

/** Runs `command` in the app with `node` first on PATH (the executable's shebang finds it there). */
const inApp = (node: string, command: string, args: ReadonlyArray<string>, input?: string) =>
  spawnSync(command, args, {
    cwd: app,
    input,
    encoding: "utf8",
    env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ""}`, EXEC_SERVER_URL: "" }
  })

const tsc = (compiler: string, config: string) => {
  const result = spawnSync(node24, [compiler, "-p", config], { cwd: app, encoding: "utf8" })
  assert.strictEqual(result.status, 0, `${compiler} -p ${config}:\n${result.stdout}${result.stderr}`)
}

describe("the package, installed from its tarball", () => {
  it("ships dist/ (library, declarations, maps, the CLI bundle), the sources, LICENSE and CHANGELOG", () => {
    const files = Consumer.tarballFiles(tarball)
    for (
      const expected of [
        "package.json",
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "dist/index.js",
        "dist/index.d.ts",
        "dist/index.d.ts.map",
        "dist/Exec.js.map",
        "dist/effect-exec.cjs",
        "dist/cli.cjs",
        "src/Exec.ts"
      ]
    ) assert.include(files, expected)
    assert.isFalse(files.some((file) => file.startsWith("test/") || file.startsWith("bench/")), "no tests")
    assert.notInclude(files, "dist/cli.cjs.map", "the bundle's 8 MB map stays home")
  })

  it("points exports and bin into dist, with the engines and peers it needs", () => {
    const manifest = JSON.parse(readFileSync(join(app, "node_modules", "effect-exec", "package.json"), "utf8"))
    assert.isUndefined(manifest.private)
    assert.deepStrictEqual(manifest.bin, { "effect-exec": "dist/effect-exec.cjs" })
    assert.deepStrictEqual(manifest.exports["."], { types: "./dist/index.d.ts", default: "./dist/index.js" })
    assert.deepStrictEqual(manifest.peerDependencies, { effect: "^4.1.0" })
    assert.isUndefined(manifest.dependencies["@effect/platform-node"])
    assert.isFalse(existsSync(join(app, "node_modules", "@effect", "platform-node")), "a library user needs none")
    assert.strictEqual(manifest.engines.node, ">=22.19")
  })

  it("carries no scripts (npm 11 asks every app to approve a package's install scripts), and packing keeps ours", () => {
    const manifest = JSON.parse(readFileSync(join(app, "node_modules", "effect-exec", "package.json"), "utf8"))
    assert.isUndefined(manifest.scripts)
    const ours = JSON.parse(readFileSync(join(Consumer.root, "package.json"), "utf8"))
    const { scripts, ...rest } = ours
    assert.deepStrictEqual(manifest, rest, "the rest of the manifest ships as it is")
    // the copy `npm pack` ran in has its package.json back, byte for byte, and nothing left beside it
    const source = join(work.dir, "source")
    assert.strictEqual(
      readFileSync(join(source, "package.json"), "utf8"),
      readFileSync(join(Consumer.root, "package.json"), "utf8")
    )
    assert.isFalse(existsSync(join(source, "package.json.unpacked")))
    assert.isString(scripts.prepare, "a clone's `npm ci` still builds dist/")
  })

  it("type-checks the examples under module nodenext and bundler resolution, with TypeScript 7 and 5.9", () => {
    const typescript7 = join(Consumer.root, "node_modules", "typescript", "bin", "tsc")
    const typescript59 = join(app, "node_modules", "typescript", "bin", "tsc")
    assert.strictEqual(
      JSON.parse(readFileSync(join(app, "node_modules", "typescript", "package.json"), "utf8")).version,
      Consumer.typescript59Version
    )
    tsc(typescript7, "tsconfig.bundler.json")
    tsc(typescript59, "tsconfig.bundler.json")
    tsc(typescript59, "tsconfig.nodenext.json")
    // the last: its JavaScript is what the next test runs
    tsc(typescript7, "tsconfig.nodenext.json")
    // 20–60 s alone; 4 minutes and more beside other test runs on 2 cores
  }, 420_000)

  it.each([["22", () => node22], ["24", () => node24]] as const)("runs the compiled examples with Node %s", (
    version,
    node
  ) => {
    assert.match(execFileSync(node(), ["--version"], { encoding: "utf8" }), new RegExp(`^v${version}\\.`))
    const appRun = inApp(node(), node(), ["build/app.js"])
    assert.strictEqual(appRun.status, 3, `it exits as its command did: ${appRun.stderr}`)
    assert.strictEqual(appRun.stdout, "hello world\nexit code 3 (Exited), 12 bytes out\n")
    assert.strictEqual(appRun.stderr, "almost done\n")
    const oneLiner = inApp(node(), node(), ["build/oneLiner.js"])
    assert.strictEqual(oneLiner.stdout, "running on Linux\n", oneLiner.stderr)
    const remote = inApp(node(), node(), ["build/remote.js"])
    assert.strictEqual(remote.status, 0, remote.stderr)
    assert.deepStrictEqual(JSON.parse(remote.stdout), {
      remote: "written through fs/writeFile",
      local: "written through fs/writeFile"
    })
  }, 60_000)

  it.each([["22", () => node22], ["24", () => node24]] as const)("runs the installed CLI with Node %s", (
    version,
    node
  ) => {
    const cli = join(app, "node_modules", ".bin", "effect-exec")
    const script = inApp(node(), cli, ["run", "--", "sh", "-c", "echo cli; echo oops >&2; exit 4"])
    assert.deepStrictEqual([script.status, script.stdout, script.stderr], [4, "cli\n", "oops\n"])
    const piped = inApp(node(), cli, ["run", "--", "sh", "-c", "cat; node --version"], "from stdin\n")
    assert.strictEqual(piped.stdout, `from stdin\n${execFileSync(node(), ["--version"], { encoding: "utf8" })}`)
    assert.match(piped.stdout, new RegExp(`v${version}\\.`), "the shebang's node is the one on PATH")
    const usage = inApp(node(), cli, ["run", "sh", "-c", "true"])
    assert.strictEqual(usage.status, 2)
    assert.match(usage.stderr, /^effect-exec run: unknown flag -c: put -- before the command[^\n]*\n$/)
  }, 60_000)
})
