/**
 * The conformance suite, unchanged, against the remote executor talking to our
 * own exec-server: over a real loopback WebSocket, and over NDJSON streams.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { PassThrough } from "node:stream"
import * as ExecServer from "../src/ExecServer.ts"
import { Executor } from "../src/Executor.ts"
import { fromStreams } from "../src/JsonRpc.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { suite } from "./support/ExecutorContract.ts"
import { readUntilClosed } from "./support/processes.ts"
import { remoteOverWebSocket } from "./support/servers.ts"

const overStdio = Layer.effect(
  Executor,
  Effect.gen(function*() {
    const toServer = new PassThrough()
    const toClient = new PassThrough()
    yield* Effect.forkScoped(ExecServer.serveStdio(toServer, toClient))
    return yield* RemoteExecutor.make(Effect.succeed(fromStreams(toClient, toServer)))
  })
).pipe(Layer.provide(LocalExecutor.layer()))

suite("RemoteExecutor ↔ ExecServer over WebSocket", remoteOverWebSocket, { extensions: true })
suite("RemoteExecutor ↔ ExecServer over stdio", overStdio, { extensions: true })

describe("RemoteExecutor: events of a process id used again", () => {
  it.live("are the new process's, as the local executor's are", () =>
    Effect.gen(function*() {
      // the executor forgets a closed process at once, so its id may be used again
      const local = yield* LocalExecutor.make({ closedRetention: "100 millis" })
      const { url } = yield* WebSocketListener.listen({}).pipe(Effect.provideService(Executor, local))
      const remote = yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url }))
      const run = (executor: Executor["Service"], word: string) =>
        Effect.gen(function*() {
          const request = { processId: "same", argv: ["echo", word], cwd: "/tmp", env: {}, tty: false }
          // the first one is forgotten (a read says so) before the id is used again
          yield* executor.read({ processId: "same", waitMs: 0 }).pipe(
            Effect.flip,
            Effect.filterOrFail((error) => error.reason._tag === "UnknownProcess"),
            Effect.retry({ times: 100, schedule: Schedule.spaced("50 millis") })
          )
          yield* executor.start(request)
          const events = yield* Stream.runCollect(executor.events("same")).pipe(Effect.timeout("10 seconds"))
          return events.map((e) => e._tag === "Output" ? `Output ${new TextDecoder().decode(e.chunk).trim()}` : e._tag)
        })
      for (const executor of [local, remote]) {
        assert.deepStrictEqual(yield* run(executor, "first"), ["Output first", "Exited", "Closed"])
        assert.deepStrictEqual(yield* run(executor, "second"), ["Output second", "Exited", "Closed"])
      }
    }))
})

describe("RemoteExecutor: events of output the server no longer retains", () => {
  it.live("say how much was dropped, and every byte is either an output or counted dropped", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const { url } = yield* WebSocketListener.listen({}).pipe(Effect.provideService(Executor, local))
      const remote = yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url }))
      const total = 3_000_000
      // nothing pushed: the events read the output, of which the server retains 1 MiB
      yield* remote.start({
        processId: "large",
        argv: ["head", "-c", String(total), "/dev/zero"],
        cwd: "/tmp",
        env: {},
        tty: false,
        outputNotifications: false
      })
      const events = yield* Stream.runCollect(remote.events("large")).pipe(Effect.timeout("20 seconds"))
      let dropped = 0
      let output = 0
      for (const event of events) {
        if (event._tag === "Dropped") dropped += event.bytes
        if (event._tag === "Output") output += event.chunk.length
      }
      assert.isAbove(dropped, 0)
      assert.strictEqual(dropped + output, total)
      assert.deepStrictEqual(events.slice(-2).map((event) => event._tag), ["Exited", "Closed"])
    }))
})

describe("RemoteExecutor: a relative cwd", () => {
  it.live("is refused before anything is sent: the server cannot tell what it is relative to", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const { url } = yield* WebSocketListener.listen({}).pipe(Effect.provideService(Executor, local))
      const remote = yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url }))
      const request = { processId: "relative", argv: ["pwd"], cwd: "tmp", env: {}, tty: false }
      const error = yield* Effect.flip(remote.start(request))
      assert.strictEqual(error.reason._tag, "InvalidRequest")
      assert.include(error.message, "cwd must be an absolute path")
      // nothing started under that id: the server knows of none
      const unknown = yield* Effect.flip(remote.read({ processId: "relative", waitMs: 0 }))
      assert.strictEqual(unknown.reason._tag, "UnknownProcess")
      // an absolute one runs there
      yield* remote.start({ ...request, cwd: "/tmp" })
      const seen = yield* readUntilClosed("relative").pipe(Effect.provideService(Executor, remote))
      assert.strictEqual(seen.stdout, "/tmp\n")
    }))
})
