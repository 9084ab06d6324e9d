/**
 * vitest globalSetup: runs once in the main process before any worker starts,
 * so the Codex exec-server (and bubblewrap) is installed exactly once per run.
 * Workers only locate the binaries. A failed install fails the run loudly.
 */
import { ensureBwrap } from "./support/bwrap.ts"
import { ensureCodex } from "./support/codexServer.ts"

export default async function setup(): Promise<void> {
  await ensureCodex()
  // the sandbox tests' bubblewrap, unpacked into .cache/bwrap (never on PATH)
  ensureBwrap()
}
