/**
 * What a server tells a client of its host in `initialize`, as Codex 0.169's
 * exec-server does (measured against its binary, see `notes/codex-fs-pty.md`):
 * the user's login shell from the user database (`$SHELL` is not read, so a
 * server started by a service manager reports the same shell as one started
 * from a terminal), the home, temporary and working directories, the platform,
 * and which optional Codex features this server offers (none of them).
 *
 * @internal
 */
import * as NodeOs from "node:os"
import { delimiter, join, resolve } from "node:path"
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { isExecutableFileSync } from "../local/commandPath.ts"

/** A shell as Codex names it: its kind, and the file that runs it. */
export interface Shell {
  readonly name: "zsh" | "bash" | "sh" | "powershell" | "cmd"
  readonly path: string
}

/**
 * The shells Codex recognises, by exact path (a file merely named like a shell
 * elsewhere, `/tmp/bash`, is not one).
 */
const knownShells: Readonly<Record<string, Shell["name"]>> = {
  "/bin/zsh": "zsh",
  "/usr/bin/zsh": "zsh",
  "/usr/local/bin/zsh": "zsh",
  "/opt/homebrew/bin/zsh": "zsh",
  "/bin/sh": "sh",
  "/usr/bin/sh": "sh",
  "/bin/bash": "bash",
  "/usr/bin/bash": "bash",
  "/usr/local/bin/bash": "bash",
  "/opt/homebrew/bin/bash": "bash",
  "/bin/pwsh": "powershell",
  "/usr/bin/pwsh": "powershell",
  "/usr/local/bin/pwsh": "powershell",
  "/opt/homebrew/bin/pwsh": "powershell"
}

/** What login-shell detection looks at; the defaults are this process's. */
export interface ShellLookup {
  /** The login shell of the server's user in the user database, if it has an entry. */
  readonly passwdShell: string | undefined
  /** The directories of the server's `PATH`. */
  readonly pathDirs: ReadonlyArray<string>
  readonly isExecutable: (path: string) => boolean
  readonly platform: NodeJS.Platform
}

/**
 * The user's login shell, as Codex finds it: the user database's entry when it
 * is a shell Codex knows (and exists); otherwise (`/usr/sbin/nologin`, say)
 * `bash` from `PATH`, then `/bin/bash`, then `zsh` the same way (zsh first on
 * macOS), and `/bin/sh` as the last resort.
 */
export const detectLoginShell = (lookup: ShellLookup): Shell => {
  const { passwdShell } = lookup
  const known = passwdShell === undefined ? undefined : knownShells[passwdShell]
  if (passwdShell !== undefined && known !== undefined && lookup.isExecutable(passwdShell)) {
    return { name: known, path: passwdShell }
  }
  const find = (name: "bash" | "zsh"): Shell | undefined => {
    const path = [...lookup.pathDirs.filter((dir) => dir !== "").map((dir) => join(dir, name)), `/bin/${name}`]
      .find(lookup.isExecutable)
    return path === undefined ? undefined : { name, path }
  }
  const order = lookup.platform === "darwin" ? (["zsh", "bash"] as const) : (["bash", "zsh"] as const)
  return find(order[0]) ?? find(order[1]) ?? { name: "sh", path: "/bin/sh" }
}

const passwdShell = (): string | undefined => {
  try {
    return NodeOs.userInfo().shell ?? undefined
  } catch {
    return undefined // no entry for this uid
  }
}

let hostShell: Shell | undefined

/** This host's login shell (looked up once). */
export const loginShell = (): Shell =>
  hostShell ??= detectLoginShell({
    passwdShell: passwdShell(),
    pathDirs: (process.env.PATH ?? "").split(delimiter),
    isExecutable: isExecutableFileSync,
    platform: process.platform
  })

/** Codex's optional features, each as this server offers it: none. */
export const capabilities: Readonly<Record<string, boolean>> = {
  networkProxyLaunch: false,
  networkProxyReviewDomains: false,
  credentialMasking: false,
  credentialMaskingCustomProviders: false,
  capabilityDiscoverySandbox: false,
  fsWatchMissing: false,
  capabilityDiscoveryV2: false,
  environmentConfigRead: false,
  httpHeaderEnvVars: false,
  sandboxedFileStreaming: false,
  fileWriteStreaming: false,
  shellSnapshotV2: false,
  windowsMxc: false,
  linuxRootWritePreservesDevices: false,
  linuxApprovedRootWritePreservesRestrictions: false
}

const platformOs = (): string =>
  process.platform === "darwin" ? "macos" : process.platform === "win32" ? "windows" : process.platform

/** This host as `initialize` describes it, with `cwd` as the executor's working directory. */
export const environmentInfo = (cwd: string): Protocol.EnvironmentInfo => {
  const tmpdir = process.env.TMPDIR === undefined || process.env.TMPDIR === "" ? undefined : resolve(process.env.TMPDIR)
  return {
    shell: loginShell(),
    executorVersion: `effect-exec ${Defaults.version}`,
    cwd,
    userHomeDir: NodeOs.homedir(),
    platformOs: platformOs(),
    temporaryDirectories: tmpdir === undefined ? [] : [tmpdir],
    tempDir: tmpdir ?? "/tmp",
    capabilities
  }
}
