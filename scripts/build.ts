/**
 * `npm run build` (run by `prepare` on `npm ci` in a clone, and by `prepack`
 * before `npm pack` and `npm publish`) writes `dist/`:
 *
 * - the library: ESM JavaScript, `.d.ts` and source maps of `src/`
 *   (`tsc -p tsconfig.build.json`);
 * - the CLI: `dist/cli.cjs`, one bundle of `bin/effect-exec.ts` with the
 *   library, effect and ws inside (esbuild), started by `dist/effect-exec.cjs`.
 *
 * The bundle is what makes the CLI start fast (bench/README.md): one file to
 * read, CommonJS so Node's built-ins load through `require` (an ESM `import`
 * of `node:http` builds its ESM facade, which touches http's lazy `WebSocket`
 * getter and loads undici: ~15 ms at every start), and V8's compile cache
 * (Node ≥ 22.1) so it is parsed and compiled once per Node version.
 */
import * as esbuild from "esbuild"
import { execFileSync } from "node:child_process"
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const dist = join(root, "dist")

/**
 * `effect/cli`'s output module builds an `Intl.Segmenter` when it is imported:
 * ICU's break-iterator setup costs 9–19 ms at every start, though only help
 * layout uses it. This builds it on first use instead, and fails the build
 * loudly if effect changes the line.
 */
const lazyGraphemeSegmenter: esbuild.Plugin = {
  name: "lazy-grapheme-segmenter",
  setup(build) {
    build.onLoad({ filter: /effect[\\/]dist[\\/]cli[\\/]CliOutput\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8")
      const eager =
        /const graphemeSegmenter = \/\*#__PURE__\*\/new Intl\.Segmenter\(undefined, \{\s*granularity: "grapheme"\s*\}\);/
      if (!eager.test(source)) {
        throw new Error(
          "effect/cli/CliOutput.js changed: update the lazy-grapheme-segmenter plugin in scripts/build.ts"
        )
      }
      const lazy = "let graphemeSegmenterInstance; const graphemeSegmenter = { segment: (text) => " +
        "(graphemeSegmenterInstance ??= new Intl.Segmenter(undefined, { granularity: \"grapheme\" })).segment(text) };"
      return { contents: source.replace(eager, lazy), loader: "js" }
    })
  }
}

/**
 * The executable: enables the compile cache, then loads the bundle. A 1 MiB
 * semi-space makes V8 collect the dead 64 KiB pipe buffers of a large stream
 * about as fast as they come (it lowers peak RSS for 256 MiB by ~30 %, at no
 * cost in throughput or start-up).
 */
const launcher = `#!/usr/bin/env -S node --max-semi-space-size=1
"use strict"
// effect-exec's command line: dist/cli.cjs holds it all (scripts/build.ts)
require("node:module").enableCompileCache?.()
require("./cli.cjs")
`

rmSync(dist, { recursive: true, force: true })
execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", join(root, "tsconfig.build.json")], { stdio: "inherit" })

await esbuild.build({
  absWorkingDir: root,
  entryPoints: { cli: "bin/effect-exec.ts" },
  outdir: dist,
  outExtension: { ".js": ".cjs" },
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node22",
  // minifying saves no measurable start-up once the compile cache is warm, and costs readable traces
  minify: false,
  sourcemap: "linked",
  external: [
    // ws requires its optional native add-ons inside try/catch
    "bufferutil",
    "utf-8-validate",
    // a native add-on, loaded on the first tty start from the installed package
    "@lydell/node-pty"
  ],
  // import.meta.url is the bundle's own URL (ptyProcess resolves node-pty from it)
  banner: { js: "\"use strict\";\nconst __bundleUrl = require(\"node:url\").pathToFileURL(__filename).href;" },
  define: { "import.meta.url": "__bundleUrl" },
  // effect reads import.meta.env?.…, which is meant to be undefined outside a bundler that sets it
  logOverride: { "empty-import-meta": "silent" },
  plugins: [lazyGraphemeSegmenter],
  logLevel: "warning"
})

writeFileSync(join(dist, "effect-exec.cjs"), launcher)
chmodSync(join(dist, "effect-exec.cjs"), 0o755)
