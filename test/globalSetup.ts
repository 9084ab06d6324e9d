/**
 * vitest globalSetup: runs once in the main process before any worker starts.
 * It builds `dist/` (the CLI tests run the bundled executable, as a user gets
 * it, and the README test imports the package by its name), and installs the
 * Codex exec-server (and bubblewrap) exactly once per run; workers only locate
 * the binaries. A failed build or install fails the run loudly.
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { ensureBwrap } from "./support/bwrap.ts"
import { ensureCodex } from "./support/codexServer.ts"

export default async function setup(): Promise<void> {
  execFileSync(process.execPath, [fileURLToPath(new URL("../scripts/build.ts", import.meta.url))], {
    stdio: "inherit"
  })
  await ensureCodex()
  // the sandbox tests' bubblewrap, unpacked into .cache/bwrap (never on PATH)
  ensureBwrap()
}
