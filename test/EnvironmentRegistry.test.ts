/**
 * The environment registry with real exec-servers on 127.0.0.1: runs by id and
 * by choice, the default, one connection per environment, the concurrency
 * limit, health checks, and what a killed server does to its runs and to the
 * registry's view of it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FileSystem from "effect/FileSystem"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Environment } from "../src/Environment.ts"
import * as EnvironmentRegistry from "../src/EnvironmentRegistry.ts"
import * as Exec from "../src/Exec.ts"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as OutputSink from "../src/OutputSink.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { spawnServe } from "./support/servers.ts"
import { tcpCounter } from "./support/tcpCounter.ts"

/** An exec-server on 127.0.0.1 whose commands see `HOST_NAME=name`, for the scope. */
const host = (name: string, options: WebSocketListener.Options = {}) =>
  Effect.flatMap(
    LocalExecutor.make({ baseEnvironment: { ...process.env, HOST_NAME: name } }),
    (executor) => Effect.provideService(WebSocketListener.listen(options), Executor, executor)
  )

/** A registry of `environments` (this machine excluded unless asked) for the scope. */
const registryOf = (
  environments: ReadonlyArray<EnvironmentRegistry.Spec>,
  options: EnvironmentRegistry.Options & { readonly default?: string; readonly includeLocal?: boolean } = {}
) =>
  Effect.gen(function*() {
    const config = yield* EnvironmentRegistry.fromCode({
      environments,
      includeLocal: options.includeLocal ?? false,
      ...(options.default === undefined ? {} : { default: options.default })
    })
    return yield* EnvironmentRegistry.make(config, options)
  })

const whoRuns = ["sh", "-c", "printf %s \"$HOST_NAME\""]

const runIn = (registry: EnvironmentRegistry.EnvironmentRegistry["Service"], request: Exec.ExecRequestIn) =>
  Exec.run(request).pipe(
    Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
    Effect.provide(OutputSink.layerDiscard)
  )

describe("EnvironmentRegistry: runs by id", () => {
  it.live("Exec.run({ environment }) runs in the environment of that id", () =>
    Effect.gen(function*() {
      const a = yield* host("a")
      const b = yield* host("b")
      const registry = yield* registryOf([
        EnvironmentRegistry.WebSocket({ id: "a", url: a.url }),
        EnvironmentRegistry.WebSocket({ id: "b", url: b.url })
      ], { includeLocal: true })
      assert.deepStrictEqual(registry.ids, ["local", "a", "b"])
      for (const id of ["b", "a", "b"]) {
        const result = yield* runIn(registry, { command: whoRuns, environment: id })
        assert.strictEqual(result.stdout.text, id)
      }
      const local = yield* runIn(registry, { command: ["sh", "-c", "printf %s \"$HOST_NAME\""], environment: "local" })
      assert.strictEqual(local.stdout.text, process.env.HOST_NAME ?? "")
    }))

  it.live("an environment's executor keeps the optional method of the one it serves (acknowledge), and runs read it whole", () =>
    Effect.gen(function*() {
      const a = yield* host("a")
      const registry = yield* registryOf([EnvironmentRegistry.WebSocket({ id: "a", url: a.url })], {
        includeLocal: true
      })
      for (const id of ["local", "a"]) {
        const { environment } = yield* registry.hold(id)
        // the local executor acknowledges without reading (what a server calls); a remote one has no such method
        if (id === "local") assert.isDefined(environment.executor.acknowledge, `${id}: acknowledge`)
        // and a run through it reads every byte
        const result = yield* runIn(registry, { command: ["head", "-c", "3000000", "/dev/zero"], environment: id })
        assert.strictEqual(result.stdout.totalBytes, 3_000_000, id)
      }
    }))

  it.live("an unknown id, or no registry at all, fails the run before anything starts", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([], { includeLocal: true })
      const unknown = yield* Effect.flip(runIn(registry, { command: ["true"], environment: "devbox" }))
      assert.strictEqual(unknown.reason._tag, "EnvironmentUnavailable")
      if (unknown.reason._tag === "EnvironmentUnavailable") {
        assert.strictEqual(unknown.reason.kind, "Unknown")
        assert.include(unknown.message, "local")
      }
      // no registry in the context: the type says one is needed, so this program lies about it
      const run = Exec.run({ command: ["true"], environment: "devbox" }) as Effect.Effect<Exec.ExecResult, any>
      const missing = yield* Effect.flip(run)
      assert.strictEqual(missing.reason.kind, "NoRegistry")
    }))

  it.live("layerEnvironment: the default environment's Environment and FileSystem, for code that knows only those", () =>
    Effect.gen(function*() {
      const a = yield* host("a")
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "registry-fs-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      const registry = yield* registryOf([EnvironmentRegistry.WebSocket({ id: "a", url: a.url })], { default: "a" })
      const result = yield* Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* fs.writeFileString(join(dir, "note"), "through a")
        const environment = yield* Environment
        assert.deepStrictEqual(environment.location, { _tag: "Remote", url: a.url })
        return yield* Exec.run({ command: ["sh", "-c", "cat note; printf \" $HOST_NAME\""], cwd: dir })
      }).pipe(
        Effect.provide(EnvironmentRegistry.layerEnvironment()),
        Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
        Effect.provide(OutputSink.layerDiscard)
      )
      assert.strictEqual(result.stdout.text, "through a a")
      assert.strictEqual(readFileSync(join(dir, "note"), "utf8"), "through a")
    }))

  it.live("default = none: no default environment, a typed refusal", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([], { default: "none", includeLocal: true })
      const error = yield* Effect.flip(
        Effect.provide(
          Effect.gen(function*() {
            return yield* Environment
          }),
          EnvironmentRegistry.layerEnvironment()
        ).pipe(
          Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry)
        )
      )
      assert.strictEqual(error.reason._tag === "EnvironmentUnavailable" && error.reason.kind, "Disabled")
    }))
})

describe("EnvironmentRegistry: connections", () => {
  it.live("one connection per environment, however many runs share it", () =>
    Effect.gen(function*() {
      const a = yield* host("a")
      const counter = yield* tcpCounter(a.url)
      const registry = yield* registryOf([EnvironmentRegistry.WebSocket({ id: "a", url: counter.url })])
      assert.strictEqual(counter.opened(), 0, "nothing connects before the first use")
      const results = yield* Effect.forEach(
        Array.from({ length: 12 }, () => runIn(registry, { command: whoRuns, environment: "a" })),
        (run) => run,
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results.map((result) => result.stdout.text), Array(12).fill("a"))
      assert.strictEqual(counter.opened(), 1)
    }))

  it.effect("an environment nobody holds is closed after idleTimeToLive (TestClock), and reopened on the next use", () =>
    Effect.gen(function*() {
      const a = yield* host("a")
      const counter = yield* tcpCounter(a.url)
      const registry = yield* registryOf([EnvironmentRegistry.WebSocket({ id: "a", url: counter.url })], {
        idleTimeToLive: "1 minute"
      })
      const waitFor = (what: string, ready: () => boolean) =>
        Effect.gen(function*() {
          for (let i = 0; i < 500 && !ready(); i++) yield* TestClock.withLive(Effect.sleep("10 millis"))
          assert.isTrue(ready(), what)
        })
      yield* runIn(registry, { command: ["true"], environment: "a", timeout: "1 minute" })
      assert.strictEqual(counter.open(), 1)
      yield* TestClock.adjust("59 seconds")
      yield* TestClock.withLive(Effect.sleep("100 millis"))
      assert.strictEqual(counter.open(), 1, "still open before the idle time")
      yield* TestClock.adjust("2 seconds")
      yield* waitFor("closed after the idle time", () => counter.open() === 0)
      yield* runIn(registry, { command: ["true"], environment: "a", timeout: "1 minute" })
      assert.strictEqual(counter.opened(), 2)
    }))
})

describe("EnvironmentRegistry: admissions", () => {
  it.live("an environment admits at most maxConcurrentRuns runs; the others wait for a slot", () =>
    Effect.gen(function*() {
      const a = yield* host("a")
      const registry = yield* registryOf([EnvironmentRegistry.WebSocket({ id: "a", url: a.url })], {
        maxConcurrentRuns: 2
      })
      const started = yield* Queue.unbounded<OutputSink.OutputDelta>()
      const releases = yield* Effect.forEach(Array.from({ length: 5 }), () => Deferred.make<void>())
      const runs = yield* Effect.forEach(releases, (release) =>
        Exec.run({
          command: ["sh", "-c", "echo started; exec sleep 60"],
          environment: "a",
          timeout: "2 minutes",
          interrupt: Deferred.await(release)
        }).pipe(
          Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
          Effect.provide(OutputSink.layerQueue(started)),
          Effect.forkChild
        ))
      yield* Queue.take(started)
      yield* Queue.take(started)
      yield* Effect.sleep("500 millis")
      assert.strictEqual(yield* Queue.size(started), 0, "a third run started past the limit")
      assert.deepStrictEqual((yield* registry.status).map((row) => [row.running, row.limit]), [[2, 2]])
      // ending one run frees a slot for the next
      yield* Deferred.succeed(releases[0]!, undefined)
      yield* Queue.take(started)
      for (const release of releases) yield* Deferred.succeed(release, undefined)
      const results = yield* Fiber.joinAll(runs)
      assert.deepStrictEqual(results.map((result) => result.termination._tag), Array(5).fill("Interrupted"))
      assert.deepStrictEqual((yield* registry.status).map((row) => row.running), [0])
    }))

  it.effect("the wait for a slot is part of the run's timeout (TestClock): nothing starts, the run is TimedOut", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([], { includeLocal: true, maxConcurrentRuns: 1 })
      const started = yield* Queue.unbounded<OutputSink.OutputDelta>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Exec.run({
        command: ["sh", "-c", "echo holding; exec sleep 60"],
        environment: "local",
        timeout: "10 minutes",
        interrupt: Deferred.await(release)
      }).pipe(
        Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
        Effect.provide(OutputSink.layerQueue(started)),
        Effect.forkChild
      )
      yield* TestClock.withLive(Queue.take(started))
      const waiting = yield* runIn(registry, { command: ["echo", "never"], environment: "local", timeout: "5 seconds" })
        .pipe(Effect.forkChild)
      yield* TestClock.adjust("5 seconds")
      const result = yield* Fiber.join(waiting)
      assert.deepStrictEqual(result.termination, Exec.Termination.TimedOut({ timeout: Duration.seconds(5) }))
      assert.strictEqual(result.stdout.text, "")
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual((yield* Fiber.join(holder)).termination._tag, "Interrupted")
    }))

  it.live("leastBusy spreads concurrent runs evenly, and sequential ones round-robin", () =>
    Effect.gen(function*() {
      const names = ["h1", "h2", "h3", "h4"]
      const servers = yield* Effect.forEach(names, (name) => host(name))
      const registry = yield* registryOf(
        names.map((name, index) => EnvironmentRegistry.WebSocket({ id: name, url: servers[index]!.url }))
      )
      const sequential: Array<string> = []
      for (let i = 0; i < 8; i++) {
        sequential.push(
          (yield* runIn(registry, { command: whoRuns, environment: EnvironmentRegistry.leastBusy() })).stdout.text
        )
      }
      assert.deepStrictEqual(sequential, [...names, ...names])
      const concurrent = yield* Effect.forEach(
        Array.from({ length: 12 }),
        () =>
          runIn(registry, {
            command: ["sh", "-c", "sleep 0.3; printf %s \"$HOST_NAME\""],
            environment: EnvironmentRegistry.leastBusy()
          }),
        { concurrency: "unbounded" }
      )
      const perHost = names.map((name) => concurrent.filter((result) => result.stdout.text === name).length)
      assert.deepStrictEqual(perHost, [3, 3, 3, 3])
    }))
})

describe("EnvironmentRegistry: health", () => {
  it.live("check probes each environment with an initialize round trip; a closed port is unhealthy, with why", () =>
    Effect.gen(function*() {
      const a = yield* host("a", { token: Redacted.make("s3cret") })
      const registry = yield* registryOf([
        EnvironmentRegistry.WebSocket({ id: "a", url: a.url, token: Redacted.make("s3cret") }),
        EnvironmentRegistry.WebSocket({ id: "wrong-token", url: a.url, token: Redacted.make("nope") }),
        EnvironmentRegistry.WebSocket({ id: "closed", url: "ws://127.0.0.1:9" })
      ], { includeLocal: true, default: "a" })
      const rows = yield* registry.check()
      const byId = Object.fromEntries(rows.map((row) => [row.id, row]))
      assert.deepStrictEqual(rows.map((row) => [row.id, row.kind, row.state]), [
        ["local", "local", "healthy"],
        ["a", "websocket", "healthy"],
        ["wrong-token", "websocket", "unhealthy"],
        ["closed", "websocket", "unhealthy"]
      ])
      assert.isDefined(byId.a!.latency)
      assert.isTrue(byId.a!.isDefault)
      assert.include(byId["wrong-token"]!.reason, "401")
      assert.include(byId.closed!.reason, "127.0.0.1:9")
      const table = EnvironmentRegistry.formatHealth(rows)
      assert.match(table, /^ID\s+KIND\s+TARGET\s+STATE\s+LATENCY\s+RUNS/)
      assert.match(table, /\na \*\s+websocket\s+ws:\/\/127\.0\.0\.1:\d+\s+healthy\s+\d+(\.\d+)? ms\s+0\/64/)
      assert.notInclude(table, "s3cret")
    }))

  it.live(
    "a killed server: its runs end Lost with their output so far, it is passed over until it answers again",
    () =>
      Effect.gen(function*() {
        const victim = yield* spawnServe([], { HOST_NAME: "victim" })
        const port = new URL(victim.url).port
        const other = yield* host("other")
        const registry = yield* registryOf([
          EnvironmentRegistry.WebSocket({ id: "victim", url: victim.url }),
          EnvironmentRegistry.WebSocket({ id: "other", url: other.url })
        ], { probeInterval: "100 millis", maxProbeInterval: "200 millis" })
        const started = yield* Queue.unbounded<OutputSink.OutputDelta>()
        const command = ["sh", "-c", "printf 'partial from %s\\n' \"$HOST_NAME\"; sleep 2; echo done"]
        const runs = yield* Effect.forEach(["victim", "other", "victim", "other"], (id) =>
          Exec.run({ command, environment: id }).pipe(
            Effect.provideService(EnvironmentRegistry.EnvironmentRegistry, registry),
            Effect.provide(OutputSink.layerQueue(started)),
            Effect.forkChild
          ))
        // killed once every run printed its first line (a run's start still under way would fail, not end Lost);
        // the others' last lines may come first on a busy machine, so the lines are counted, not the deltas
        let printed = ""
        const count = (line: string) =>
          printed.split(line).length - 1
        while (count("partial from victim\n") < 2 || count("partial from other\n") < 2) {
          printed += new TextDecoder().decode((yield* Queue.take(started)).chunk)
        }
        victim.child.kill("SIGKILL")
        const results = yield* Fiber.joinAll(runs)
        for (const index of [0, 2]) {
          assert.strictEqual(results[index]!.termination._tag, "Lost")
          assert.strictEqual(results[index]!.stdout.text, "partial from victim\n")
        }
        for (const index of [1, 3]) {
          assert.deepStrictEqual(results[index]!.termination, Exec.Termination.Exited({ exitCode: 0 }))
          assert.strictEqual(results[index]!.stdout.text, "partial from other\ndone\n")
        }
        const rows = yield* registry.status
        assert.deepStrictEqual(rows.map((row) => [row.id, row.state]), [["victim", "unhealthy"], ["other", "healthy"]])
        // while it is unhealthy, a choice never lands on it
        for (let i = 0; i < 4; i++) {
          const result = yield* runIn(registry, { command: whoRuns, environment: EnvironmentRegistry.leastBusy() })
          assert.strictEqual(result.stdout.text, "other")
        }
        // the host comes back on the same address: a probe finds it, and choices use it again
        yield* spawnServe(["--listen", `ws://127.0.0.1:${port}`], { HOST_NAME: "victim" })
        for (let i = 0; i < 300 && (yield* registry.status)[0]!.state !== "healthy"; i++) {
          yield* Effect.sleep("50 millis")
        }
        assert.strictEqual((yield* registry.status)[0]!.state, "healthy")
        const again = yield* runIn(registry, { command: whoRuns, environment: "victim" })
        assert.strictEqual(again.stdout.text, "victim")
      }),
    60_000
  )

  it.live("every candidate unhealthy: a choice fails at once with the reason", () =>
    Effect.gen(function*() {
      const registry = yield* registryOf([EnvironmentRegistry.WebSocket({ id: "closed", url: "ws://127.0.0.1:9" })])
      yield* registry.check()
      const error = yield* Effect.flip(
        runIn(registry, { command: ["true"], environment: EnvironmentRegistry.leastBusy() })
      )
      assert.strictEqual(error.reason._tag === "EnvironmentUnavailable" && error.reason.kind, "Unhealthy")
    }))
})
