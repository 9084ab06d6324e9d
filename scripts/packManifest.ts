/**
 * The `package.json` a tarball carries, without the repository's scripts.
 *
 * A published `prepare` (which builds `dist/` on `npm ci` in a clone) is an
 * install script to npm 11: every app that installs the package is told to
 * review and approve it (`npm warn install-scripts`), though npm never runs it
 * for a registry or tarball install, and the tarball has no `scripts/` to run.
 *
 * `npm pack` and `npm publish` run `prepack` (`node scripts/packManifest.ts
 * strip`, after the build), read `package.json` again to pack it (so the
 * stripped one is what ships, and `prepare` does not run a second build), and
 * then run `postpack` from the manifest they read first
 * (`node scripts/packManifest.ts restore`). The original is kept beside it as
 * `package.json.unpacked` in between; a pack that died there leaves it, and
 * the next `strip` or `restore` puts it back first.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const manifest = join(root, "package.json")
const kept = join(root, "package.json.unpacked")

const restore = (): void => {
  if (existsSync(kept)) renameSync(kept, manifest)
}

const strip = (): void => {
  restore()
  const original = readFileSync(manifest, "utf8")
  const { scripts: _scripts, ...shipped } = JSON.parse(original) as Record<string, unknown>
  writeFileSync(kept, original)
  writeFileSync(manifest, `${JSON.stringify(shipped, null, 2)}\n`)
}

const mode = process.argv[2]
if (mode === "strip") strip()
else if (mode === "restore") restore()
else {
  console.error("usage: node scripts/packManifest.ts strip|restore")
  process.exit(2)
}
