/**
 * The package as a user gets it: `npm pack` of a copy of the sources (so
 * `prepack` builds `dist/` there, not under the tests that run the CLI from
 * this checkout's `dist/`), installed into a scratch app with its own
 * `package.json`, and Node 22 beside the Node 24 the tests run on.
 */
import { execFileSync, type ExecFileSyncOptions } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** The repository's root. */
export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** The Node 22 the package is tried on (the newest 22.x LTS), installed from npm once. */
export const node22Version = "22.23.3"
const node22Prefix = join(root, ".cache", "node22")

/** TypeScript 5.9, what most consumers compile with (the oldest that Effect 4's own declarations accept). */
export const typescript59Version = "5.9.3"

/** What a package needs to be built and packed: everything `files` ships, and the build's inputs. */
const packInputs = [
  "package.json",
  "README.md",
  "LICENSE",
  "CHANGELOG.md",
  "tsconfig.json",
  "tsconfig.build.json",
  "scripts/build.ts",
  "scripts/packManifest.ts",
  "bin",
  "src"
]

const npm = (args: ReadonlyArray<string>, options: ExecFileSyncOptions = {}): string =>
  execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    ...options
  }) as string

/** A scratch directory, removed by `cleanup`. */
export const scratch = (): { readonly dir: string; readonly cleanup: () => void } => {
  const dir = mkdtempSync(join(tmpdir(), "effect-exec-package-"))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Packs a copy of the sources into `into`; returns the tarball's path. `prepack` builds it, as on publish. */
export const pack = (into: string): string => {
  const copy = join(into, "source")
  for (const input of packInputs) cpSync(join(root, input), join(copy, input), { recursive: true })
  // the build's tools; npm pack ignores node_modules otherwise
  symlinkSync(join(root, "node_modules"), join(copy, "node_modules"))
  const name = npm(["pack", "--pack-destination", into], {
    cwd: copy,
    // prepack's `node` is the project's Node 24, as `npm run` finds it
    env: { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH ?? ""}` }
  }).trim().split("\n").pop()!
  return join(into, name)
}

/** The files a tarball holds, without the `package/` prefix. */
export const tarballFiles = (tarball: string): ReadonlyArray<string> =>
  execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n").map((path) =>
    path.replace(/^package\//, "")
  )

/** Installs the tarball into a new app at `dir`, as a user would: `npm install effect-exec effect`. */
export const installApp = (dir: string, tarball: string): void => {
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "consumer-app", private: true, type: "module" }, null, 2)
  )
  npm([
    "install",
    "--prefer-offline",
    tarball,
    "effect@4.1.0",
    "@types/node@22.20.5",
    `typescript@${typescript59Version}`
  ], {
    cwd: dir
  })
}

/** Node 22's binary, installed from the npm registry into `.cache/node22` the first time. */
export const ensureNode22 = (): string => {
  const binary = join(node22Prefix, "node_modules", "node", "bin", "node")
  if (existsSync(binary)) return binary
  mkdirSync(node22Prefix, { recursive: true })
  writeFileSync(
    join(node22Prefix, "package.json"),
    JSON.stringify({ name: "node22", private: true, allowScripts: { node: true } })
  )
  npm(["install", "--prefer-offline", `node@${node22Version}`], { cwd: node22Prefix })
  if (!existsSync(binary)) {
    throw new Error(`node@${node22Version} installed no binary at ${binary}: ${readdirSync(node22Prefix).join(" ")}`)
  }
  return binary
}
