/**
 * Stdio environments: `effect-exec serve --listen stdio` started as a child by
 * the registry, spoken to in NDJSON; started again by the next use after it
 * died, killed when the registry's scope ends or the environment is idle, and
 * a program that cannot start or dies at once said so in the error.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FileSystem from "effect/FileSystem"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as EnvironmentRegistry from "../src/EnvironmentRegistry.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"
import { awaitDeath, isAlive } from "./support/processes.ts"
import { bin } from "./support/servers.ts"

const serveStdio = (id: string, options: { readonly env?: Record<string, string> } = {}) =>
  EnvironmentRegistry.Stdio({
    id,
    program: process.execPath,
    args: [bin, "serve", "--listen", "stdio"],
    env: { HOST_NAME: id, ...options.env }
  })

const registryOf = (environments: ReadonlyArray<EnvironmentRegistry.Spec>, options: EnvironmentRegistry.Options = {}) =>
  Effect.flatMap(
    EnvironmentRegistry.fromCode({ environments, includeLocal: false }),
    (config) => EnvironmentRegistry.make(config, options)
  )

const runIn = (registry: EnvironmentRegistry.EnvironmentRegistry["Service"], request: Exec.ExecRequestIn) =>
  Exec.run({ timeout: "30 seconds", ...request }).pipe(
    Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
    Effect.provide(OutputSink.layerDiscard)
  )

/** Waits (real time) until `pid` is gone from /proc: its parent, this process, has reaped it. */
const awaitReaped = (pid: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 250 && existsSync(`/proc/${pid}`); i++) yield* Effect.sleep("20 millis")
    assert.isFalse(existsSync(`/proc/${pid}`), `process ${pid} not reaped`)
  })

/** The pid of the exec-server that runs the command: the command's parent. */
const serverPid = (registry: EnvironmentRegistry.EnvironmentRegistry["Service"], id: string) =>
  Effect.map(
    runIn(registry, { command: ["sh", "-c", "printf '%s %s' \"$PPID\" \"$HOST_NAME\""], environment: id }),
    (result) => {
      const [pid, name] = result.stdout.text.split(" ")
      assert.strictEqual(name, id)
      return Number(pid)
    }
  )

describe("EnvironmentRegistry: stdio environments", () => {
  it.live("runs commands and reads and writes files through an exec-server child", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "stdio-env-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      const registry = yield* registryOf([serveStdio("child")])
      const pid = yield* serverPid(registry, "child")
      assert.notStrictEqual(pid, process.pid)
      const held = yield* registry.hold("child")
      assert.deepStrictEqual(held.environment.location, {
        _tag: "Stdio",
        program: process.execPath,
        args: [bin, "serve", "--listen", "stdio"]
      })
      yield* held.fileSystem.writeFileString(join(dir, "f"), "via stdio")
      assert.strictEqual(readFileSync(join(dir, "f"), "utf8"), "via stdio")
      // the same child serves the files and the next command
      assert.strictEqual(yield* serverPid(registry, "child"), pid)
      const [row] = yield* registry.check()
      assert.deepStrictEqual([row!.kind, row!.state], ["stdio", "healthy"])
      assert.include(row!.target, "serve --listen stdio")
    }))

  it.live("a child that died is started again by the next use", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([serveStdio("child")])
      const first = yield* serverPid(registry, "child")
      process.kill(first, "SIGKILL")
      // "after it died": once this process has reaped it and read the end of its stdout
      yield* awaitReaped(first)
      yield* Effect.sleep("200 millis")
      const second = yield* serverPid(registry, "child")
      assert.notStrictEqual(second, first)
      assert.isTrue(isAlive(second))
    }))

  it.live("a child dying under a run: the run ends Lost with its output so far, and the next use restarts it", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([serveStdio("child")], { probeInterval: "50 millis" })
      const server = yield* serverPid(registry, "child")
      const output = yield* Queue.unbounded<OutputSink.OutputDelta>()
      const run = yield* Exec.run({ command: ["sh", "-c", "echo before; sleep 30; echo after"], environment: "child" })
        .pipe(
          Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
          Effect.provide(OutputSink.layerQueue(output)),
          Effect.forkChild
        )
      // once its output arrived, the run is under way: its server dies
      yield* Queue.take(output)
      process.kill(server, "SIGKILL")
      const result = yield* Fiber.join(run)
      assert.strictEqual(result.termination._tag, "Lost")
      // the new child never had the session: the run's process is not unknown, its fate is
      if (result.termination._tag === "Lost") assert.strictEqual(result.termination.error.reason._tag, "SessionLost")
      assert.strictEqual(result.stdout.text, "before\n")
      const pid = yield* serverPid(registry, "child")
      assert.isTrue(isAlive(pid))
    }))

  it.live("closing the registry's scope kills its children", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const registry = yield* Scope.provide(registryOf([serveStdio("a"), serveStdio("b")]), scope)
      const pids = [yield* serverPid(registry, "a"), yield* serverPid(registry, "b")]
      assert.isTrue(pids.every(isAlive))
      yield* Scope.close(scope, Exit.void)
      for (const pid of pids) assert.isFalse(isAlive(pid), `exec-server ${pid} outlived its registry`)
    }))

  it.effect("an idle stdio environment's child is killed after idleTimeToLive (TestClock)", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([serveStdio("child")], { idleTimeToLive: "30 seconds" })
      const pid = yield* serverPid(registry, "child")
      yield* TestClock.adjust("29 seconds")
      yield* TestClock.withLive(Effect.sleep("100 millis"))
      assert.isTrue(isAlive(pid), "killed before its idle time")
      yield* TestClock.adjust("2 seconds")
      yield* TestClock.withLive(awaitDeath(pid))
    }))

  it.live("a program that cannot start, or that dies at once, fails the run with why", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([
        EnvironmentRegistry.Stdio({ id: "missing", program: "/nonexistent/exec-server" }),
        EnvironmentRegistry.Stdio({
          id: "dies",
          program: "sh",
          args: ["-c", "echo 'no such host: devbox' >&2; exit 255"]
        })
      ])
      const missing = yield* Effect.flip(runIn(registry, { command: ["true"], environment: "missing" }))
      assert.strictEqual(missing.reason._tag, "ConnectionLost")
      assert.include(missing.message, "cannot start /nonexistent/exec-server")
      const dies = yield* Effect.flip(runIn(registry, { command: ["true"], environment: "dies" }))
      assert.strictEqual(dies.reason._tag, "ConnectionLost")
      assert.include(dies.message, "exited with code 255; its stderr ended with: no such host: devbox")
      const rows = yield* registry.status
      assert.deepStrictEqual(rows.map((row) => row.state), ["unhealthy", "unhealthy"])
    }))

  it.live("the FileSystem of a stdio environment through layerEnvironment", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([serveStdio("child")])
      const text = yield* Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        return yield* fs.readFileString(join(process.cwd(), "package.json"))
      }).pipe(
        Effect.provide(EnvironmentRegistry.layerEnvironment("child")),
        Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry)
      )
      assert.include(text, "\"name\": \"effect-exec\"")
    }))
})
