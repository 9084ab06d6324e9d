/**
 * The bubblewrap the sandbox tests use: Debian's package unpacked into the
 * ignored `<repo>/.cache/bwrap` (never installed: a `bwrap` on `PATH` breaks
 * Codex 0.169's own sandbox, and the Codex server runs in these tests).
 *
 * - `ensureBwrap` fetches it when missing (`apt-get download bubblewrap`, then
 *   `dpkg -x`); vitest's globalSetup and `.ci/run` call it.
 * - `bwrapPath` is where it is; test workers only read it.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** `<repo>/.cache/bwrap`. */
export const bwrapDir: string = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".cache", "bwrap")

/** The unpacked binary. */
export const bwrapPath: string = join(bwrapDir, "root", "usr", "bin", "bwrap")

const run = (command: string, args: ReadonlyArray<string>, cwd: string): void => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8" })
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${result.error?.message ?? `exit ${result.status}`}):\n${result.stderr}`
    )
  }
}

/** Fetches and unpacks Debian's bubblewrap into {@link bwrapDir} unless it is there; throws when it cannot. */
export const ensureBwrap = (): string => {
  if (existsSync(bwrapPath)) return bwrapPath
  mkdirSync(dirname(bwrapDir), { recursive: true })
  const staging = mkdtempSync(`${bwrapDir}.fetching-`)
  try {
    const download = spawnSync("apt-get", ["download", "bubblewrap"], { cwd: staging, encoding: "utf8" })
    if (download.status !== 0) run("sh", ["-c", "apt-get update -qq && apt-get download bubblewrap"], staging)
    const deb = readdirSync(staging).find((name) => name.startsWith("bubblewrap_") && name.endsWith(".deb"))
    if (deb === undefined) throw new Error(`apt-get download bubblewrap left no .deb in ${staging}`)
    run("dpkg", ["-x", deb, "root"], staging)
    try {
      renameSync(staging, bwrapDir)
    } catch (error) {
      // somebody else finished first
      if (!existsSync(bwrapPath)) throw error
    }
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
  return bwrapPath
}

/** `PATH` without the directories that hold a `bwrap` (for the Codex server, which must use its own). */
export const pathWithoutBwrap = (path: string | undefined): string =>
  (path ?? "").split(":").filter((directory) => directory !== "" && !existsSync(join(directory, "bwrap"))).join(":")
