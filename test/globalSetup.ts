/**
 * vitest globalSetup: runs once in the main process before any worker starts,
 * so the Codex exec-server is installed exactly once per run. Workers only
 * locate the binary (`locateCodex`). A failed install fails the run loudly.
 */
import { ensureCodex } from "./support/codexServer.ts"

export default async function setup(): Promise<void> {
  await ensureCodex()
}
