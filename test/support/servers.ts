/**
 * Exec-servers for tests: ours in process (a local executor behind it, our
 * remote executor in front), or the `effect-exec serve` CLI as a child process.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { appendFileSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import { Environment } from "../../src/Environment.ts"
import { Executor } from "../../src/Executor.ts"
import * as LocalExecutor from "../../src/LocalExecutor.ts"
import * as RemoteExecutor from "../../src/RemoteExecutor.ts"
import * as WebSocketListener from "../../src/WebSocketListener.ts"

/** The CLI as it is installed: the bundle `npm run build` writes (the tests' global setup builds it). */
export const bin = fileURLToPath(new URL("../../dist/effect-exec.cjs", import.meta.url))

/** Our exec-server on a loopback WebSocket, serving a local executor, seen through a `RemoteExecutor`. */
export const remoteOverWebSocket: Layer.Layer<Executor, WebSocketListener.ListenError> = Layer.effect(
  Executor,
  Effect.gen(function*() {
    const server = yield* WebSocketListener.listen({})
    return yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url: server.url }))
  })
).pipe(Layer.provide(LocalExecutor.layer()))

/**
 * Our exec-server on 127.0.0.1 for the current scope, serving a local executor
 * built in the same scope (`Effect.provide(layer)` would close the executor as
 * soon as `listen` returns); `requireSandbox` is the executor's
 * `sandbox.required`, which the server follows for `fs/*` calls.
 */
export const listenLocal = (
  { requireSandbox, ...options }: WebSocketListener.Options & { readonly requireSandbox?: boolean } = {}
) =>
  Effect.flatMap(
    LocalExecutor.make(requireSandbox === true ? { sandbox: { required: true } } : {}),
    (executor) => Effect.provideService(WebSocketListener.listen(options), Executor, executor)
  )

/** The variable that names the file `listenMeasured` reports each server's peak RSS to. */
export const rssReportVariable = "EFFECT_EXEC_RSS_REPORT"

/** A process's peak resident set (`VmHWM`), in KiB. */
export const peakRssKiB = (pid: number): number =>
  Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0)

/**
 * Our exec-server on 127.0.0.1 for the current scope: in this process (as
 * `listenLocal`), or — when `EFFECT_EXEC_RSS_REPORT` names a file — in a
 * process of its own (`serverProcess.ts`), whose peak RSS is appended to that
 * file, with the test's name, when the scope closes (`bench/hostileRss.ts`).
 */
export const listenMeasured = (options: WebSocketListener.Options = {}) => {
  const report = process.env[rssReportVariable]
  if (report === undefined || report === "") return listenLocal(options)
  const { token, ...rest } = options
  return Effect.acquireRelease(
    Effect.callback<{ readonly url: string; readonly child: ChildProcess }>((resume) => {
      const script = fileURLToPath(new URL("./serverProcess.ts", import.meta.url))
      const json = JSON.stringify({ ...rest, ...(token === undefined ? {} : { token: Redacted.value(token) }) })
      // with the CLI's Node flags (bin/effect-exec.js), so the figures are those of `effect-exec serve`
      const child = spawn(process.execPath, ["--max-semi-space-size=1", script, json], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      let stdout = ""
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString()
        const url = /^(ws:\/\/\S+)$/m.exec(stdout)?.[1]
        if (url !== undefined) resume(Effect.succeed({ url, child }))
      })
      child.on("exit", (code) => resume(Effect.die(new Error(`the server process exited early (${code})`))))
    }),
    ({ child }) =>
      Effect.callback<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        appendFileSync(
          report,
          JSON.stringify({ test: expect.getState().currentTestName, peakKiB: peakRssKiB(child.pid!) }) + "\n"
        )
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGTERM")
      })
  ).pipe(Effect.map(({ url }) => ({ url })))
}

export interface ServeProcess {
  readonly url: string
  readonly child: ChildProcess
  /** What the server wrote to stderr so far. */
  readonly stderr: () => string
}

/**
 * Starts `effect-exec serve ARGS` as a child process and waits for its
 * address; SIGTERM at scope close. `env` is laid over this process's (an
 * `undefined` value removes a variable); `prefix` runs it through another
 * command (`setpriv …`).
 */
export const spawnServe = (
  args: ReadonlyArray<string> = [],
  env: Record<string, string | undefined> = {},
  prefix: ReadonlyArray<string> = []
) =>
  Effect.acquireRelease(
    Effect.callback<ServeProcess>((resume) => {
      const [command, ...commandArgs] = [...prefix, process.execPath, bin, "serve", ...args]
      const child = spawn(command!, commandArgs, {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...env }
      })
      let stdout = ""
      let stderr = ""
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString()
        const newline = stdout.indexOf("\n")
        if (newline !== -1) resume(Effect.succeed({ url: stdout.slice(0, newline), child, stderr: () => stderr }))
      })
      child.on("exit", (code) => resume(Effect.die(new Error(`serve exited early (${code}): ${stderr}`))))
    }),
    ({ child }) =>
      Effect.callback<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGTERM")
      })
  )

/**
 * The environment (`Environment` and `FileSystem`) of the exec-server at
 * `url`, seen through our remote executor and file system on one link.
 */
export const remoteEnvironment = <E>(
  server: Effect.Effect<{ readonly url: string }, E, Scope.Scope>,
  options: RemoteExecutor.Options = {}
): Layer.Layer<Environment | FileSystem.FileSystem, E> =>
  Layer.effectContext(Effect.gen(function*() {
    const { url } = yield* server
    const remote = yield* RemoteExecutor.makeEnvironment(RemoteExecutor.connectWebSocket({ url }), options)
    return Context.make(Environment, Environment.of({ executor: remote.executor, location: { _tag: "Remote", url } }))
      .pipe(Context.add(FileSystem.FileSystem, remote.fileSystem))
  }))

/** Our exec-server on a loopback WebSocket, seen as a remote environment. */
export const environmentOverWebSocket = (
  options: WebSocketListener.Options = {},
  clientOptions: RemoteExecutor.Options = {}
) => remoteEnvironment(listenLocal(options), clientOptions)
