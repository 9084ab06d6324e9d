/**
 * Finding bubblewrap and finding out whether it works here. The binary is the
 * one named by the executor's options (`serve --bwrap PATH`), else by
 * `EXEC_SANDBOX_BWRAP`, else `bwrap` on `PATH`. It works when a trial sandbox
 * with every flag a sandbox uses (user, pid, ipc and net namespaces, no
 * capabilities, a seccomp program, its arguments and a cleared environment
 * read from a descriptor) starts and runs: that is what a host without user
 * namespaces, a container that forbids them, or a bubblewrap too old for
 * `--clearenv` fails.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeChildProcess from "node:child_process"
import type { SandboxSupport } from "../../Executor.ts"
import * as Defaults from "../defaults.ts"
import { resolveCommand } from "../local/commandPath.ts"
import { networkFilter } from "./seccomp.ts"

/**
 * The environment of every program a sandbox runs on the host, unconfined
 * (bubblewrap, the descriptor closer): fixed, so that nothing of a client's
 * (`LD_PRELOAD`, `BASH_ENV`, `PERL5OPT`, …) reaches a dynamic loader or an
 * interpreter outside the sandbox. The command's own environment is set
 * inside it.
 */
export const hostEnvironment: Readonly<Record<string, string>> = { PATH: "/usr/bin:/bin" }

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

/** Where the bubblewrap binary is: the explicit path, else the environment variable, else `PATH`. */
export const locate = (
  explicit: string | undefined,
  environment: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<string | undefined> => {
  if (explicit !== undefined && explicit !== "") return Effect.succeed(explicit)
  const fromVariable = environment[Defaults.sandbox.bwrapVariable]
  if (fromVariable !== undefined && fromVariable !== "") return Effect.succeed(fromVariable)
  // a PATH lookup needs a PATH: without one there is no bwrap "on PATH"
  if (environment.PATH === undefined) return Effect.undefined
  return resolveCommand("bwrap", "/", environment.PATH).pipe(Effect.orElseSucceed(() => undefined))
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
        env: hostEnvironment,
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
        `bubblewrap not found: put bwrap on PATH or set ${Defaults.sandbox.bwrapVariable} ` +
          "(a server also takes serve --bwrap PATH)"
      )
    }
    // the arguments a sandbox reads from its descriptor 3, the environment cleared and set among them
    const fromDescriptor = ["--clearenv", "--setenv", "EFFECT_EXEC_PROBE", "1"]
    const args = [
      "--args",
      "3",
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
      "4",
      "--",
      path,
      "--help"
    ]
    const encoded = Buffer.from(fromDescriptor.map((arg) => `${arg}\0`).join(""), "utf8")
    const outcome = yield* trial(path, args, [encoded, seccomp]).pipe(
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
