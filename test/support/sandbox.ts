/**
 * Helpers for the sandbox tests: scratch directories outside /tmp (which the
 * workspace-write preset makes writable, so a write there would prove
 * nothing), and the local executor with the tests' bubblewrap.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** `<repo>/.cache/sandbox-tests`: ignored by git, not under /tmp. */
export const scratchRoot: string = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".cache", "sandbox-tests")

/** A fresh directory under {@link scratchRoot}, its path free of symlinks; removed on dispose. */
export const scratchDir = (label: string) => {
  mkdirSync(scratchRoot, { recursive: true })
  const path = realpathSync(mkdtempSync(join(scratchRoot, `${label}-`)))
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) }
}
