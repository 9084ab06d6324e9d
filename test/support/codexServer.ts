/**
 * Test harness for the real Codex exec-server (`@openai/codex`), so suites can
 * run against the peer our remote executor has to talk to.
 *
 * - `ensureCodex` installs the npm package into `<repo>/.cache/codex` once
 *   (vitest `globalSetup` calls it before any worker starts).
 * - `locateCodex` only finds the binary: this is what test workers use.
 * - `startCodexServer` runs `codex exec-server` on 127.0.0.1 for one scope.
 */
import { Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readdirSync, realpathSync, renameSync, rmSync, statSync } from "node:fs"
import { mkdir, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { pathWithoutBwrap } from "./bwrap.ts"

/** The pinned Codex release the tests run against. */
export const codexVersion = "0.169.0"

/** Where `@openai/codex` is installed: `<repo>/.cache/codex` (ignored by git). */
export const codexInstallDir: string = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".cache", "codex")

const isFile = (path: string): boolean => {
  try {
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/**
 * The codex binary under `dir`, or `undefined`. Searches every platform package
 * `node_modules/@openai/codex-<platform>/vendor/<target triple>/bin/codex`,
 * so the triple is not hard-coded.
 */
export const findCodexBinary = (dir: string = codexInstallDir): string | undefined => {
  const scope = join(dir, "node_modules", "@openai")
  const list = (path: string): ReadonlyArray<string> => {
    try {
      return readdirSync(path)
    } catch {
      return []
    }
  }
  for (const pkg of list(scope).filter((name) => name.startsWith("codex-"))) {
    const vendor = join(scope, pkg, "vendor")
    for (const triple of list(vendor)) {
      const candidate = join(vendor, triple, "bin", "codex")
      if (isFile(candidate)) return candidate
    }
  }
  return undefined
}

/** The installed binary; throws when it is missing (workers must not install). */
export const locateCodex = (): string => {
  const binary = findCodexBinary()
  if (binary === undefined) {
    throw new Error(
      `codex binary not found under ${codexInstallDir}/node_modules/@openai/codex-*/vendor/*/bin/codex; ` +
        `test/globalSetup.ts installs it (is globalSetup missing from vitest.config.ts?)`
    )
  }
  return binary
}

const runNpmInstall = (prefix: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const args = [
      "install",
      "--prefix",
      prefix,
      "--no-save",
      "--no-audit",
      "--no-fund",
      `@openai/codex@${codexVersion}`
    ]
    const child = spawn("npm", args, { cwd: prefix, stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    child.stdout.resume()
    child.stderr.on("data", (data: Buffer) => (stderr += data.toString("utf8")))
    const fail = (reason: string) =>
      reject(new Error(`npm ${args.join(" ")} ${reason}\n--- npm stderr ---\n${stderr.trim() || "(empty)"}`))
    child.on("error", (error) => fail(`could not start: ${error.message}`))
    child.on("close", (code, signal) => (code === 0 ? resolve() : fail(`failed with ${signal ?? `exit code ${code}`}`)))
  })

/**
 * Returns the codex binary, installing `@openai/codex@0.169.0` into
 * {@link codexInstallDir} only when it is missing. The install goes to a
 * private folder that is renamed into place, so concurrent callers (e.g. two
 * `vitest run`s) never see a half-installed package. Throws (never skips)
 * when npm fails, with npm's stderr in the message.
 */
export const ensureCodex = async (): Promise<string> => {
  const existing = findCodexBinary()
  if (existing !== undefined) return existing
  const parent = dirname(codexInstallDir)
  await mkdir(parent, { recursive: true })
  const staging = mkdtempSync(join(parent, "codex.installing-"))
  chmodSync(staging, 0o755) // mkdtemp makes it 0700; it becomes the install folder
  try {
    await runNpmInstall(staging)
    if (findCodexBinary(staging) === undefined) {
      throw new Error(`npm installed @openai/codex@${codexVersion} into ${staging} but no vendor/*/bin/codex was found`)
    }
    // a leftover folder without a binary (interrupted by hand, …) is in the way
    if (existsSync(codexInstallDir) && findCodexBinary() === undefined) {
      await rm(codexInstallDir, { recursive: true, force: true })
    }
    try {
      renameSync(staging, codexInstallDir)
    } catch (error) {
      // somebody else finished first: theirs is as good as ours
      if (findCodexBinary() === undefined) throw error
    }
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
  return locateCodex()
}

/** A running exec-server: its WebSocket address and process id. */
export interface CodexServer {
  readonly url: string
  readonly pid: number
}

/** A new empty folder under the temporary directory (its real path), removed with the scope. */
export const scratchDir = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => realpathSync(mkdtempSync(join(tmpdir(), prefix)))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

/** Waits for the child's exit, or `millis`; true when it exited. */
const awaitExit = (child: ChildProcess, millis: number): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    if (hasExited(child)) return resume(Effect.succeed(true))
    const onExit = () => {
      clearTimeout(timer)
      resume(Effect.succeed(true))
    }
    const timer = setTimeout(() => {
      child.off("exit", onExit)
      resume(Effect.succeed(false))
    }, millis)
    child.once("exit", onExit)
    return Effect.sync(() => {
      clearTimeout(timer)
      child.off("exit", onExit)
    })
  })

/** SIGTERM, up to 3 s for the exit, then SIGKILL. */
const stop = (child: ChildProcess): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (child.pid === undefined || hasExited(child)) return // never started, or already gone
    child.kill("SIGTERM")
    if (yield* awaitExit(child, 3_000)) return
    child.kill("SIGKILL")
    yield* awaitExit(child, 3_000)
  })

const startupTimeoutMillis = 20_000

/**
 * Starts `codex exec-server --listen ws://127.0.0.1:0` with a fresh scratch
 * HOME and cwd, and returns the address it printed. Closing the scope stops the
 * server (SIGTERM, then SIGKILL after 3 s; it kills its own children) and
 * removes the scratch folders. Startup problems are defects with stderr attached.
 */
export const startCodexServer: Effect.Effect<CodexServer, never, Scope.Scope> = Effect.gen(function*() {
  const binary = yield* Effect.sync(locateCodex)
  const home = yield* scratchDir("codex-home-")
  const cwd = yield* scratchDir("codex-cwd-")
  // a bwrap on PATH would replace Codex's own, which its sandbox needs ("bwrap: execvp codex-linux-sandbox")
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, PATH: pathWithoutBwrap(process.env.PATH) }
  delete env.CODEX_HOME // would point it back at a real ~/.codex
  let stderr = ""
  let spawnError: Error | undefined
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(binary, ["exec-server", "--listen", "ws://127.0.0.1:0"], {
        cwd,
        env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      child.on("error", (error) => (spawnError ??= error)) // never an unhandled 'error' event
      child.stderr.on("data", (data: Buffer) => {
        if (stderr.length < 64 * 1024) stderr += data.toString("utf8")
      })
      return child
    }),
    stop
  )
  const describeFailure = (what: string) =>
    new Error(`codex exec-server (${binary}) ${what}\n--- stderr ---\n${stderr.trim() || "(empty)"}`)

  const firstLine = Effect.callback<string>((resume) => {
    if (spawnError !== undefined) {
      return resume(Effect.die(describeFailure(`could not be started: ${spawnError.message}`)))
    }
    if (hasExited(child)) return resume(Effect.die(describeFailure("exited before printing its address")))
    let buffered = ""
    const onData = (data: Buffer) => {
      buffered += data.toString("utf8")
      const newline = buffered.indexOf("\n")
      if (newline >= 0) {
        cleanup()
        child.stdout?.resume() // keep draining whatever else it prints
        resume(Effect.succeed(buffered.slice(0, newline).trim()))
      }
    }
    const onError = (error: Error) => {
      cleanup()
      resume(Effect.die(describeFailure(`could not be started: ${error.message}`)))
    }
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup()
      resume(Effect.die(describeFailure(`exited (${signal ?? `code ${code}`}) before printing its address`)))
    }
    const cleanup = () => {
      child.stdout?.off("data", onData)
      child.off("error", onError)
      child.off("exit", onExit)
    }
    child.stdout?.on("data", onData)
    child.on("error", onError)
    child.on("exit", onExit)
    return Effect.sync(cleanup)
  })

  const url = yield* firstLine.pipe(
    Effect.timeoutOrElse({
      duration: startupTimeoutMillis,
      orElse: () => Effect.die(describeFailure(`printed no address within ${startupTimeoutMillis} ms`))
    })
  )
  if (!/^ws:\/\/127\.0\.0\.1:\d+$/.test(url)) {
    return yield* Effect.die(describeFailure(`printed ${JSON.stringify(url)} instead of ws://127.0.0.1:PORT`))
  }
  if (child.pid === undefined) return yield* Effect.die(describeFailure("has no pid"))
  return { url, pid: child.pid }
})
