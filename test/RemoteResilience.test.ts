/**
 * The remote executor when the link fails: a dropped connection is resumed
 * without losing or repeating a byte; a dead server fails calls promptly.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Net from "node:net"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as OutputSink from "../src/OutputSink.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { freshId, start } from "./support/processes.ts"
import { spawnServe } from "./support/servers.ts"

/** A TCP proxy on 127.0.0.1 whose connections can be cut, as a network would. */
const cuttableProxy = (targetPort: number) =>
  Effect.acquireRelease(
    Effect.callback<
      {
        readonly port: number
        readonly cut: () => void
        readonly connections: () => number
        readonly close: () => void
      }
    >((resume) => {
      const sockets = new Set<Net.Socket>()
      let connections = 0
      const server = Net.createServer((client) => {
        connections++
        const upstream = Net.connect(targetPort, "127.0.0.1")
        for (const socket of [client, upstream]) {
          sockets.add(socket)
          socket.on("close", () => sockets.delete(socket))
          socket.on("error", () => {})
        }
        client.pipe(upstream)
        upstream.pipe(client)
        client.on("close", () => upstream.destroy())
        upstream.on("close", () => client.destroy())
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({
          port: (server.address() as Net.AddressInfo).port,
          cut: () => {
            for (const socket of sockets) socket.destroy()
          },
          connections: () => connections,
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        })))
    }),
    (proxy) => Effect.sync(proxy.close)
  )

const MiB = 1024 * 1024

describe("remote executor resilience", () => {
  it.live("resumes the session after the connection drops, losing and repeating nothing", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const server = yield* WebSocketListener.listen({}).pipe(Effect.provideService(Executor, local))
      const proxy = yield* cuttableProxy(server.port)
      const remote = yield* RemoteExecutor.make(
        RemoteExecutor.connectWebSocket({ url: `ws://127.0.0.1:${proxy.port}` })
      )
      // the cuts wait for the state they need (output flowing; the link resumed, and output after it), not for a while
      let deltas = 0
      const until = (condition: () => boolean) =>
        Effect.gen(function*() {
          while (!condition()) yield* Effect.sleep("5 millis")
        })
      const layer = Layer.mergeAll(
        Environment.fromExecutor({ _tag: "Remote", url: `ws://127.0.0.1:${proxy.port}` }).pipe(
          Layer.provide(Layer.succeed(Executor, remote))
        ),
        Layer.succeed(OutputSink.OutputSink, OutputSink.OutputSink.of({ emit: () => Effect.sync(() => void deltas++) }))
      )
      const run = yield* Exec.run({
        // paced so the cuts fall mid-stream: 64 MiB in 16 bursts
        command: [
          "bash",
          "-c",
          `for i in $(seq 16); do head -c ${
            4 * MiB
          } /dev/urandom; sleep 0.05; done | tee >(sha256sum | cut -d' ' -f1 >&2)`
        ],
        cwd: "/tmp",
        capture: "fullBuffer"
      }).pipe(Effect.provide(layer), Effect.forkChild)
      yield* until(() => deltas >= 1)
      proxy.cut()
      // output read from what was pushed before the cut needs no link: wait for the new connection itself
      yield* until(() => proxy.connections() >= 2)
      const before = deltas
      yield* until(() => deltas > before)
      proxy.cut()
      const result = yield* Fiber.join(run)
      assert.isAtLeast(proxy.connections(), 3, "two cuts, two reconnections")
      assert.strictEqual(result.termination._tag, "Exited")
      assert.strictEqual(result.exitCode, 0)
      assert.strictEqual(result.stdout.totalBytes, 64 * MiB)
      assert.strictEqual(createHash("sha256").update(result.stdout.bytes).digest("hex"), result.stderr.text.trim())
      // 5–10 s alone; over a minute on a machine at load 16
    }), 180_000)

  it.live("fails pending and later calls promptly with ConnectionLost when the server dies", () =>
    Effect.gen(function*() {
      const { child: server, url } = yield* spawnServe()
      const remote = yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url }))
      const processId = freshId("doomed")
      const marker = `30.${process.pid}${Date.now() % 1000}`
      yield* start(processId, ["sh", "-c", `exec sleep ${marker}`]).pipe(Effect.provideService(Executor, remote))
      const pending = yield* Effect.forkChild(Effect.flip(remote.read({ processId, afterSeq: 1_000, waitMs: 60_000 })))
      yield* Effect.sleep("100 millis")
      server.kill("SIGKILL")
      const error = yield* Fiber.join(pending).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(error.reason._tag, "ConnectionLost")
      const later = yield* Effect.flip(remote.read({ processId, afterSeq: 0, waitMs: 0 })).pipe(
        Effect.timeout("5 seconds")
      )
      assert.strictEqual(later.reason._tag, "ConnectionLost")
      assert.include(later.message, "ECONNREFUSED")
      // a server killed with SIGKILL cannot take its children along (Node has no PR_SET_PDEATHSIG)
      yield* Effect.sync(() => spawn("pkill", ["-KILL", "-f", `^sleep ${marker}$`]))
    }))

  it.live("Exec.run returns a Lost result, with the output so far, when the server dies", () =>
    Effect.gen(function*() {
      const { child: server, url } = yield* spawnServe()
      const marker = `30.${process.pid}${Date.now() % 1000}`
      let arrived = ""
      const sink = Layer.succeed(
        OutputSink.OutputSink,
        OutputSink.OutputSink.of({
          emit: (delta) => Effect.sync(() => void (arrived += Buffer.from(delta.chunk).toString()))
        })
      )
      const run = yield* Exec.run({
        command: ["sh", "-c", `printf before; exec sleep ${marker}`],
        cwd: "/tmp",
        timeout: "60 seconds"
      }).pipe(Effect.provide(Layer.mergeAll(Environment.layerRemote({ url }), sink)), Effect.forkChild)
      // killed once the output reached the client, however long the start took on a busy machine
      while (arrived !== "before") yield* Effect.sleep("5 millis")
      server.kill("SIGKILL")
      const result = yield* Fiber.join(run).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(result.termination._tag, "Lost")
      assert.strictEqual(result.stdout.text, "before")
      // a server killed with SIGKILL cannot take its children along (Node has no PR_SET_PDEATHSIG)
      yield* Effect.sync(() => spawn("pkill", ["-KILL", "-f", `^sleep ${marker}$`]))
    }))
})
