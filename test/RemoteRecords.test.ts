/**
 * The remote client's process records against our own exec-server, over a
 * real WebSocket on 127.0.0.1 (through a recording proxy): a follower of a
 * process's events keeps its record past the bound of records, and a start
 * the server accepts under the id of a process it forgot gets a record of its
 * own, while a follower of the forgotten one ends.
 *
 * A follower that should end is asked whether it ended once the client took
 * in the event that ends it: the proxy saw that frame pass, and the answer to
 * a later request on the same connection came after it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Executor, type ProcessEvent } from "../src/Executor.ts"
import * as Remote from "../src/internal/remote/environment.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { readUntilClosed, startRequest } from "./support/processes.ts"
import { closedFrame, reasonOf, valueOf } from "./support/remoteRecords.ts"
import * as WebSocketProxy from "./support/webSocketProxy.ts"

const settings: Remote.Settings = {
  clientName: "records-test",
  connectTimeout: Duration.seconds(10),
  requestTimeoutMillis: 30_000,
  binaryOutput: true
}

const bytes = (s: string) => new TextEncoder().encode(s)
const text = (chunk: Uint8Array) => new TextDecoder().decode(chunk)
const shown = (events: ReadonlyArray<ProcessEvent>) =>
  events.map((e) =>
    e._tag === "Output" ? `Output ${text(e.chunk)}` : e._tag === "Exited" ? `Exited ${e.exitCode}` : e._tag
  )

/** A fiber that has ended once the other fibers had their turns (none of them waits for I/O by then). */
const settled = <A, E>(fiber: Fiber.Fiber<A, E>, what: string) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 1000 && fiber.pollUnsafe() === undefined; turn++) yield* Effect.yieldNow
    assert.isDefined(fiber.pollUnsafe(), `${what} is still waiting`)
    return fiber.pollUnsafe()!
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

describe("RemoteExecutor: a follower past the bound of records", () => {
  it.live("keeps its process's record, gets every event to the close and ends; the bound holds again after", () =>
    Effect.gen(function*() {
      const { url } = yield* WebSocketListener.listen({}).pipe(
        Effect.provideServiceEffect(Executor, LocalExecutor.make())
      )
      const proxy = yield* WebSocketProxy.start(url)
      const { executor, footprint } = yield* Remote.make(
        RemoteExecutor.connectWebSocket({ url: proxy.url }),
        { ...settings, maxRecords: 2 }
      )
      yield* executor.start(
        startRequest("followed", ["sh", "-c", "printf early; read _; printf late; exit 3"], { pipeStdin: true })
      )
      const follower = yield* follow(executor, "followed")
      yield* follower.firstEvent
      // two more records: past the bound of 2, the oldest is the followed one
      for (const processId of ["later-1", "later-2"]) yield* executor.start(startRequest(processId, ["sleep", "60"]))
      yield* executor.write({ processId: "followed", chunk: bytes("\n"), writeId: "go" })
      yield* proxy.waitFor("the close of the followed process", closedFrame("followed", 1))
      // answered after the close, on the same connection: the client has taken the close in
      yield* Effect.exit(executor.read({ processId: "never-started", waitMs: 0 }))
      const exit = yield* settled(follower.fiber, "the follower of the oldest record")
      assert.deepStrictEqual(shown(valueOf(exit)), ["Output early", "Output late", "Exited 3", "Closed"])
      // followed no more (and closed): the next start brings the records back within their bound
      yield* executor.start(startRequest("later-3", ["true"]))
      assert.strictEqual(footprint().records, 2)
      // a follower that stops following an open process leaves its record to the bound
      yield* executor.start(startRequest("left", ["sh", "-c", "echo hi; exec sleep 60"]))
      const leaving = yield* follow(executor, "left")
      yield* leaving.firstEvent
      yield* Fiber.interrupt(leaving.fiber)
      for (const processId of ["later-4", "later-5"]) yield* executor.start(startRequest(processId, ["true"]))
      assert.strictEqual(footprint().records, 2)
      const forgotten = yield* Effect.exit(Stream.runHead(executor.events("left")))
      assert.strictEqual(reasonOf(forgotten)?._tag, "Unsupported", "the client no longer remembers it")
    }))
})

describe("RemoteExecutor: a start under the id of a process the server forgot, its close never seen", () => {
  it.live("gets a record of its own: its output, exit and close are read and followed; the old follower ends", () =>
    Effect.gen(function*() {
      // the server's executor forgets a closed process at once
      const local = yield* LocalExecutor.make({ closedRetention: "1 millis" })
      const { url } = yield* WebSocketListener.listen({}).pipe(Effect.provideService(Executor, local))
      const proxy = yield* WebSocketProxy.start(url)
      const executor = yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url: proxy.url }))
      yield* executor.start(startRequest("reused", ["sh", "-c", "printf old; exec sleep 60"]))
      const old = yield* follow(executor, "reused")
      yield* old.firstEvent
      const sessionId: string = proxy.frames.find((f) => typeof f.message?.result?.sessionId === "string")!
        .message.result.sessionId
      const internalId = `${sessionId}/reused`

      // the link dies while the server still writes to it: the old process's close is lost on the way
      yield* proxy.cut({ holdServerSide: true })
      yield* local.terminate(internalId)
      yield* proxy.waitFor("the lost close", (f) => closedFrame("reused", 1)(f) && !f.delivered)
      yield* proxy.releaseServerSide
      // and the server's executor forgets it
      yield* local.read({ processId: internalId, waitMs: 0 }).pipe(
        Effect.flip,
        Effect.filterOrFail((error) => error.reason._tag === "UnknownProcess"),
        Effect.retry({ times: 500, schedule: Schedule.spaced("10 millis") })
      )

      // the client still thinks the old one open; the server accepts a new one under its id, and every notification
      // of the new process reaches the client before the answer does (as Codex's can)
      yield* proxy.holdBack(
        (f) => f.message?.result?.processId === "reused",
        (f) => f.link > 1 && closedFrame("reused", f.link)(f)
      )
      yield* executor.start({
        ...startRequest("reused", ["sh", "-c", "printf new; exit 7"]),
        backpressure: true
      })
      const oldExit = yield* settled(old.fiber, "the follower of the forgotten process")
      assert.strictEqual(reasonOf(oldExit)?._tag, "UnknownProcess", `the old follower got ${String(oldExit)}`)

      const follower = yield* follow(executor, "reused")
      const seen = yield* readUntilClosed("reused").pipe(Effect.provideService(Executor, executor))
      assert.deepStrictEqual([seen.stdout, seen.last.exitCode], ["new", 7])
      yield* proxy.waitFor("the close of the new process", (f) => f.link > 1 && closedFrame("reused", f.link)(f))
      yield* Effect.exit(executor.read({ processId: "never-started", waitMs: 0 }))
      const events = yield* settled(follower.fiber, "the follower of the new process")
      assert.deepStrictEqual(shown(valueOf(events)), ["Output new", "Exited 7", "Closed"])
    }))
})

describe("RemoteExecutor: a follower whose process's close overtakes its exit", () => {
  it.live("gets the exit all the same, read from the server (Codex's server sends them from separate tasks)", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const { url } = yield* WebSocketListener.listen({}).pipe(Effect.provideService(Executor, local))
      const proxy = yield* WebSocketProxy.start(url)
      const executor = yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url: proxy.url }))
      // the exit's notification is held until the server answers a request sent once the follower ended
      yield* proxy.holdBack(
        (f) => f.message?.method === "process/exited" && f.message.params?.processId === "overtaken",
        (f) => f.from === "server" && f.message?.error !== undefined
      )
      yield* executor.start(startRequest("overtaken", ["sh", "-c", "printf new; exit 4"]))
      const events = yield* Stream.runCollect(executor.events("overtaken"))
      yield* Effect.exit(executor.read({ processId: "never-started", waitMs: 0 }))
      assert.isDefined(proxy.frames.find((f) => f.message?.method === "process/exited"), "the exit was notified")
      assert.deepStrictEqual(shown(events), ["Output new", "Exited 4", "Closed"])
    }))
})
