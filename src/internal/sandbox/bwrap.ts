/**
 * Finding bubblewrap and finding out whether it works here. The binary is the
 * one named by the executor's options (`serve --bwrap PATH`), else by
 * `EXEC_SANDBOX_BWRAP`, else `bwrap` on `PATH`. It works when a trial sandbox
 * with every flag a sandbox uses (user, pid, ipc and net namespaces, no
 * capabilities, a seccomp program) starts and runs: that is what a host
 * without user namespaces, or a container that forbids them, fails.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type { SandboxSupport } from "../../Executor.ts"
import * as Defaults from "../defaults.ts"
import { networkFilter } from "./seccomp.ts"

/** A bubblewrap that works here, and what it can do. */
export interface Bwrap {
  readonly path: string
  /** Whether it has `--argv0` (bubblewrap 0.9 and later). */
  readonly argv0: boolean
}

/** What probing found: a working bubblewrap, or why there is none. */
export type BwrapStatus =
  | { readonly _tag: "Available"; readonly bwrap: Bwrap }
  | { readonly _tag: "Unavailable"; readonly reason: string }

/** The status as the `Executor` contract states it. */
export const supportOf = (status: BwrapStatus): SandboxSupport =>
  status._tag === "Available" ? { available: true } : { available: false, reason: status.reason }

const isExecutable = (path: string): boolean => {
  try {
    NodeFs.accessSync(path, NodeFs.constants.X_OK)
    return NodeFs.statSync(path).isFile()
  } catch {
    return false
  }
}

/** The first executable `name` in a `PATH`-style list of directories. */
export const searchPath = (name: string, pathVariable: string | undefined): string | undefined =>
  (pathVariable ?? "").split(":").filter((directory) => directory !== "").map((directory) =>
    NodePath.resolve(directory, name)
  ).find(isExecutable)

/** Where the bubblewrap binary is: the explicit path, else the environment variable, else `PATH`. */
export const locate = (
  explicit: string | undefined,
  environment: Readonly<Record<string, string | undefined>> = process.env
): string | undefined => {
  if (explicit !== undefined && explicit !== "") return explicit
  const fromVariable = environment[Defaults.sandbox.bwrapVariable]
  if (fromVariable !== undefined && fromVariable !== "") return fromVariable
  return searchPath("bwrap", environment.PATH)
}

interface TrialOutcome {
  readonly exitCode: number | null
  readonly output: string
  readonly error?: string
}

/**
 * Writes each input to the child's file descriptor 3, 4, … and closes it. A
 * child that exits without reading them (a failing bubblewrap) must not
 * bring this process down with EPIPE or ECONNRESET.
 */
export const feed = (child: NodeChildProcess.ChildProcess, inputs: ReadonlyArray<Uint8Array>): void =>
  inputs.forEach((bytes, index) => {
    const stream = child.stdio[3 + index] as NodeJS.WritableStream | null | undefined
    stream?.on("error", () => {})
    stream?.end(bytes)
  })

/** Runs bubblewrap with `args`, feeding `inputs` to fds 3, 4, …; resolves with its exit and output. */
const trial = (path: string, args: ReadonlyArray<string>, inputs: ReadonlyArray<Uint8Array>) =>
  Effect.callback<TrialOutcome>((resume) => {
    let output = ""
    let child: NodeChildProcess.ChildProcess
    try {
      child = NodeChildProcess.spawn(path, args, {
        stdio: ["ignore", "pipe", "pipe", ...inputs.map(() => "pipe" as const)],
        detached: true
      })
    } catch (error) {
      return resume(Effect.succeed({ exitCode: null, output, error: String(error) }))
    }
    const collect = (chunk: Buffer) => {
      if (output.length < 64 * 1024) output += chunk.toString("utf8")
    }
    child.stdout?.on("data", collect)
    child.stderr?.on("data", collect)
    child.once("error", (error) => resume(Effect.succeed({ exitCode: null, output, error: error.message })))
    child.once("spawn", () => feed(child, inputs))
    child.once("close", (exitCode) => resume(Effect.succeed({ exitCode, output })))
    return Effect.sync(() => {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL")
        } catch {
          child.kill("SIGKILL")
        }
      }
    })
  })

const unavailable = (reason: string): BwrapStatus => ({ _tag: "Unavailable", reason })

/**
 * Probes the bubblewrap at `path` (if any): this platform must be Linux on
 * x86_64 (where the seccomp program is built), and a trial sandbox must run
 * bubblewrap's own `--help` inside it.
 */
export const probe = (path: string | undefined): Effect.Effect<BwrapStatus> =>
  Effect.gen(function*() {
    if (process.platform !== "linux") return unavailable(`no sandbox on ${process.platform} (Linux only)`)
    const seccomp = networkFilter("restricted")
    if (seccomp === undefined) return unavailable(`no seccomp network filter for ${process.arch} (x86_64 only)`)
    if (path === undefined) {
      return unavailable(
        `bubblewrap not found (give serve --bwrap PATH, set ${Defaults.sandbox.bwrapVariable}, or put bwrap on PATH)`
      )
    }
    const args = [
      "--new-session",
      "--die-with-parent",
      "--ro-bind",
      "/",
      "/",
      "--dev",
      "/dev",
      "--proc",
      "/proc",
      "--unshare-user",
      "--disable-userns",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-net",
      "--cap-drop",
      "ALL",
      "--add-seccomp-fd",
      "3",
      "--",
      path,
      "--help"
    ]
    const outcome = yield* trial(path, args, [seccomp]).pipe(
      Effect.timeoutOrElse({
        duration: Defaults.sandbox.probeTimeoutMillis,
        orElse: () => Effect.succeed<TrialOutcome>({ exitCode: null, output: "", error: "the trial timed out" })
      })
    )
    if (outcome.exitCode !== 0) {
      const detail = outcome.error ?? (outcome.output.trim().split("\n")[0] || `exit code ${outcome.exitCode}`)
      return unavailable(`bubblewrap at ${path} cannot build a sandbox here: ${detail}`)
    }
    return { _tag: "Available", bwrap: { path, argv0: outcome.output.includes("--argv0") } }
  })
