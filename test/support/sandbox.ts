/**
 * Helpers for the sandbox tests: scratch directories outside /tmp (which the
 * workspace-write preset makes writable, so a write there would prove
 * nothing), and the local executor with the tests' bubblewrap.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs"
import { homedir, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type * as Protocol from "../../src/Protocol.ts"

const underTmp = (path: string) =>
  [realpathSync("/tmp"), realpathSync(tmpdir())].some((tmp) => path.startsWith(`${tmp}/`))

const repository = realpathSync(join(dirname(fileURLToPath(import.meta.url)), "..", ".."))

/**
 * `<repo>/.cache/sandbox-tests` (ignored by git); for a clone under /tmp,
 * `~/.cache/effect-exec-sandbox-tests`: never under /tmp.
 */
export const scratchRoot: string = underTmp(repository)
  ? join(homedir(), ".cache", "effect-exec-sandbox-tests")
  : join(repository, ".cache", "sandbox-tests")

/** A fresh directory under {@link scratchRoot}, its path free of symlinks; removed on dispose. */
export const scratchDir = (label: string) => {
  mkdirSync(scratchRoot, { recursive: true })
  const path = realpathSync(mkdtempSync(join(scratchRoot, `${label}-`)))
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) }
}

/** One entry of a restricted file system in Codex's wire shape: `"root"` (the special path) or an absolute path or `file://` URI. */
export const entry = (path: string, access: "read" | "write" | "deny"): Protocol.SandboxEntry =>
  path === "root"
    ? { path: { type: "special", value: { kind: "root" } }, access }
    : { path: { type: "path", path }, access }

/** A managed policy in Codex's wire shape: a file system restricted to `entries`, the network restricted. */
export const restricted = (entries: ReadonlyArray<Protocol.SandboxEntry>): Protocol.SandboxContext => ({
  permissions: { type: "managed", network: "restricted", file_system: { type: "restricted", entries } },
  windowsSandboxLevel: "disabled"
})

/** Codex's `read-only` preset: every file readable, nothing writable, the network restricted. */
export const readOnly: Protocol.SandboxContext = restricted([entry("root", "read")])
