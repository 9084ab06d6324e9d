/**
 * A follower of a remote process's events across a lost link, against our own
 * exec-server and Codex's (0.169.0) over a real WebSocket on 127.0.0.1
 * (through a recording proxy):
 * when the close was written into the dying connection, or the session it
 * belonged to ended while the client was away, nothing more will be pushed, and
 * the follower learns where the process stands once it is connected again
 * (from the server; from the new session the link had to begin, when the old
 * one is gone), rather than waiting for ever.
 *
 * A follower that should end is asked whether it ended after the client is
 * connected again and a few requests of the test went there and back on that
 * connection (each followed by turns for the other fibers): a bounded count,
 * not a wait for time.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as FileSystem from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Executor } from "../src/Executor.ts"
import * as Remote from "../src/internal/remote/environment.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { startCodexServer } from "./support/codexServer.ts"
import * as Fake from "./support/fakeServer.ts"
import { closedFrame, reasonOf, shown, valueOf } from "./support/remoteRecords.ts"
import * as WebSocketProxy from "./support/webSocketProxy.ts"

const settings: Remote.Settings = {
  clientName: "followers-test",
  connectTimeout: Duration.seconds(60),
  requestTimeoutMillis: 30_000,
  binaryOutput: true
}

const bytes = (s: string) => new TextEncoder().encode(s)

const startRequest = (processId: string, argv: ReadonlyArray<string>) => ({
  processId,
  argv,
  cwd: "/tmp",
  env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  tty: false,
  pipeStdin: true
})

/** A follower of `processId`'s events, and a wait for its first event. */
const follow = (executor: Executor["Service"], processId: string) =>
  Effect.gen(function*() {
    const first = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkChild(
      Stream.runCollect(executor.events(processId).pipe(Stream.tap(() => Deferred.succeed(first, undefined))))
    )
    return { fiber, firstEvent: Deferred.await(first) }
  })

/**
 * A fiber that has ended once the client is connected again and the test's own
 * requests went there and back a few times (the follower's are on the same
 * connection), each followed by turns for the other fibers.
 */
const settledAfterRoundTrips = <A, E>(executor: Executor["Service"], fiber: Fiber.Fiber<A, E>, what: string) =>
  Effect.gen(function*() {
    for (let trip = 0; trip < 20 && fiber.pollUnsafe() === undefined; trip++) {
      yield* Effect.exit(executor.read({ processId: "never-started", waitMs: 0 }))
      for (let turn = 0; turn < 100 && fiber.pollUnsafe() === undefined; turn++) yield* Effect.yieldNow
    }
    assert.isDefined(fiber.pollUnsafe(), `${what} is still waiting`)
    return fiber.pollUnsafe()!
  })

const sessionIdOf = (proxy: WebSocketProxy.WebSocketProxy, link: number): string =>
  proxy.frames.find((f) => f.link === link && typeof f.message?.result?.sessionId === "string")!.message.result
    .sessionId

describe("RemoteExecutor: a follower whose process closed while the link was dying", () => {
  it.live("reads what it missed once connected again: the output, the exit and the close, in the server's seqs", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const { url } = yield* WebSocketListener.listen({}).pipe(Effect.provideService(Executor, local))
      const proxy = yield* WebSocketProxy.start(url)
      const { executor } = yield* Remote.make(RemoteExecutor.connectWebSocket({ url: proxy.url }), settings)
      yield* executor.start(startRequest("quiet", ["sh", "-c", "printf early; read _; printf late; exit 3"]))
      // and one nobody follows while the link is down
      yield* executor.start(startRequest("unwatched", ["sh", "-c", "read _; printf bye; exit 5"]))
      const follower = yield* follow(executor, "quiet")
      yield* follower.firstEvent
      const internalId = (processId: string) => `${sessionIdOf(proxy, 1)}/${processId}`

      // the link dies while the server still writes to it: the late output, the exits and the closes are lost
      yield* proxy.cut({ holdServerSide: true })
      for (const processId of ["quiet", "unwatched"]) {
        yield* local.write({ processId: internalId(processId), chunk: bytes("\n"), writeId: "go" })
        yield* proxy.waitFor(`the lost close of ${processId}`, (f) => closedFrame(processId, 1)(f) && !f.delivered)
      }
      yield* proxy.releaseServerSide
      // the client resumes its session: the server sends none of them again
      yield* proxy.waitFor("the resumed session", (f) => f.link === 2 && f.message?.result?.sessionId !== undefined)

      const exit = yield* settledAfterRoundTrips(executor, follower.fiber, "the follower of the closed process")
      const truth = yield* Stream.runCollect(local.events(internalId("quiet")))
      assert.deepStrictEqual(shown(valueOf(exit)), shown(truth))
      // the exit and the late output in either order (Node may report the exit before the pipe's last bytes)
      assert.sameMembers(shown(truth).slice(1, 3).map((event) => event.slice(2)), ["Output late", "Exited 3"])
      // the record has them now: a later follower gets the same events
      const later = yield* follow(executor, "quiet")
      const again = yield* settledAfterRoundTrips(executor, later.fiber, "a later follower of the closed process")
      assert.deepStrictEqual(shown(valueOf(again)), shown(truth))

      // a follower that starts after the reconnection asks too: its process started on the first connection
      const unwatched = yield* follow(executor, "unwatched")
      const events = yield* settledAfterRoundTrips(executor, unwatched.fiber, "the follower of the unwatched process")
      const unwatchedTruth = yield* Stream.runCollect(local.events(internalId("unwatched")))
      assert.deepStrictEqual(shown(valueOf(events)), shown(unwatchedTruth))
      assert.sameMembers(shown(unwatchedTruth).map((event) => event.slice(2)), ["Output bye", "Exited 5", "Closed"])
    }))
})

describe("RemoteExecutor: a follower whose process closed while the link to Codex's exec-server was dying", () => {
  it.live("reads what it missed once the session is resumed, in Codex's seqs", () =>
    Effect.gen(function*() {
      const server = yield* startCodexServer
      const proxy = yield* WebSocketProxy.start(server.url)
      const { executor } = yield* Remote.make(RemoteExecutor.connectWebSocket({ url: proxy.url }), settings)
      // the process goes on once the test creates this file (Codex's server offers no other way in)
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => FileSystem.mkdtempSync(Path.join(Os.tmpdir(), "followers-"))),
        (dir) => Effect.sync(() => FileSystem.rmSync(dir, { recursive: true, force: true }))
      )
      const go = Path.join(dir, "go")
      const script = `printf early; while [ ! -e '${go}' ]; do sleep 0.02; done; printf late; exit 3`
      yield* executor.start({ ...startRequest("quiet", ["sh", "-c", script]), pipeStdin: false })
      const follower = yield* follow(executor, "quiet")
      yield* follower.firstEvent

      yield* proxy.cut({ holdServerSide: true })
      FileSystem.writeFileSync(go, "")
      yield* proxy.waitFor("the lost close", (f) => closedFrame("quiet", 1)(f) && !f.delivered)
      yield* proxy.releaseServerSide
      yield* proxy.waitFor("the resumed session", (f) => f.link === 2 && f.message?.result?.sessionId !== undefined)

      const exit = yield* settledAfterRoundTrips(executor, follower.fiber, "the follower of the closed process")
      // what Codex's server notified, lost on the way (its exit and its last output may come in either order)
      const lost = proxy.frames.filter((f) => f.link === 1 && !f.delivered && f.message?.params?.processId === "quiet")
        .map(({ message: { method, params } }) =>
          method === "process/output"
            ? `${params.seq} Output ${Buffer.from(params.chunk, "base64").toString()}`
            : method === "process/exited"
            ? `${params.seq} Exited ${params.exitCode}`
            : `${params.seq} Closed`
        ).toSorted((a, b) => Number.parseInt(a) - Number.parseInt(b))
      assert.deepStrictEqual(lost.slice(2), ["4 Closed"])
      assert.sameMembers(lost.slice(0, 2).map((event) => event.slice(2)), ["Output late", "Exited 3"])
      assert.deepStrictEqual(shown(valueOf(exit)), ["1 Output early", ...lost])
    }), { timeout: 60_000 })
})

describe("RemoteExecutor: a follower whose process closed, against a server numbering nextSeq from its chunks", () => {
  it.live("reads once more after the last chunk to learn the close's seq (Codex's exec-server before 0.169)", () =>
    Effect.gen(function*() {
      const connections: Array<Fake.FakeConnection> = []
      const server = yield* Fake.fakeServer((message, connection) => {
        connections[connection.index] = connection
        if (message.method === "process/start") {
          connection.answer(message.id, Fake.startAnswer(message))
          connection.notify("process/output", { processId: "old", seq: 1, stream: "stdout", chunk: Fake.base64("a") })
        } else if (message.method === "process/read" && message.params.processId === "old") {
          // the exit (3) and the close (4) came after the last chunk; an answer with chunks says only what follows it
          connection.answer(
            message.id,
            message.params.afterSeq < 2
              ? Fake.readAnswer(2, ["late"], { exitCode: 3, closed: true })
              : Fake.readAnswer(5, [], { exitCode: 3, closed: true })
          )
        } else if (message.id !== undefined) {
          connection.fail(message.id, -32600, `unknown process id ${message.params?.processId}`)
        }
      })
      const { executor } = yield* Remote.make(RemoteExecutor.connectWebSocket({ url: server.url }), settings)
      yield* executor.start(startRequest("old", ["true"]))
      const follower = yield* follow(executor, "old")
      yield* follower.firstEvent
      connections[0]!.cut()
      const exit = yield* settledAfterRoundTrips(executor, follower.fiber, "the follower of the closed process")
      assert.deepStrictEqual(shown(valueOf(exit)), ["1 Output a", "2 Output late", "3 Exited 3", "4 Closed"])
      assert.deepStrictEqual(
        server.calls("process/read").filter((m) => m.params.processId === "old").map((m) => m.params.afterSeq),
        [1, 2]
      )
    }))
})

describe("RemoteExecutor: a follower whose session ended while the client was away", () => {
  it.live("fails with SessionLost once the client is connected to a new session", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const { url } = yield* WebSocketListener.listen({ sessionTtl: "100 millis" }).pipe(
        Effect.provideService(Executor, local)
      )
      const proxy = yield* WebSocketProxy.start(url)
      // the client connects only when the test lets it: it stays away past the session's TTL
      let gate: Deferred.Deferred<void> | undefined
      const connect = Effect.andThen(
        Effect.suspend(() => gate === undefined ? Effect.void : Deferred.await(gate)),
        RemoteExecutor.connectWebSocket({ url: proxy.url })
      )
      const { executor } = yield* Remote.make(connect, settings)
      yield* executor.start(startRequest("lost", ["sh", "-c", "printf early; exec sleep 60"]))
      const follower = yield* follow(executor, "lost")
      yield* follower.firstEvent
      const internalId = `${sessionIdOf(proxy, 1)}/lost`

      gate = yield* Deferred.make<void>()
      yield* proxy.cut()
      // the session ends at its TTL, and its process with it
      yield* local.read({ processId: internalId, waitMs: 0 }).pipe(
        Effect.filterOrFail((read) => read.closed),
        Effect.retry({ times: 1000, schedule: Schedule.spaced("10 millis") })
      )
      yield* Deferred.succeed(gate, undefined)
      yield* proxy.waitFor("the new session", (f) => f.link === 2 && f.message?.result?.sessionId !== undefined)
      assert.notStrictEqual(sessionIdOf(proxy, 2), sessionIdOf(proxy, 1), "a new session, not the old one resumed")

      const exit = yield* settledAfterRoundTrips(executor, follower.fiber, "the follower of the lost session's process")
      assert.strictEqual(reasonOf(exit)?._tag, "SessionLost", `the follower got ${String(exit)}`)
      // its record stays: a later follower learns the same (RemoteSessionLost.test.ts has the rest)
      const laterFollower = yield* follow(executor, "lost")
      const later = yield* settledAfterRoundTrips(executor, laterFollower.fiber, "a later follower of that process")
      assert.strictEqual(reasonOf(later)?._tag, "SessionLost", `a later follower got ${String(later)}`)
    }))
})
