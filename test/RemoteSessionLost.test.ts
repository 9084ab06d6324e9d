/**
 * A remote client that reconnects to an exec-server which no longer has its
 * session — it expired while the client was away, or the server restarted
 * behind the same address (ours, and Codex's 0.169.0) — over real WebSockets
 * on 127.0.0.1 through a recording proxy. Every call about a process of the
 * old session fails with `SessionLost`, never `UnknownProcess`: a follower
 * after the events the client already held, a read, a write, a terminate;
 * processes started in the new session run as any other, even under an old
 * process's id; `Exec.run` ends such a command `Lost` with that reason.
 *
 * The tests wait for states (the session's process closed on the server, the
 * new session's answer, the first output), not for a while; a wait that should
 * end and does not fails an assertion.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import { Executor, type ExecutorError, type ProcessEvent, SessionLost } from "../src/Executor.ts"
import * as Remote from "../src/internal/remote/environment.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as OutputSink from "../src/OutputSink.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { startCodexServer } from "./support/codexServer.ts"
import { reasonOf, shown, valueOf } from "./support/remoteRecords.ts"
import * as WebSocketProxy from "./support/webSocketProxy.ts"

const settings: Remote.Settings = {
  clientName: "session-lost-test",
  connectTimeout: Duration.seconds(60),
  requestTimeoutMillis: 30_000,
  binaryOutput: true
}

const text = (chunk: Uint8Array) => new TextDecoder().decode(chunk)

const startRequest = (processId: string, script: string) => ({
  processId,
  argv: ["sh", "-c", script],
  cwd: "/tmp",
  env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  tty: false
})

/** The message every `SessionLost` of `processId` carries: one line a user can act on. */
const lostMessage = (processId: string) =>
  `the exec-server no longer has the session process ${processId} ran in: it expired while the client was ` +
  `disconnected, or the server restarted; what became of the process is unknown`

/** A follower of `processId` that keeps every event it took, whatever its end; and a wait for its first event. */
const follow = (executor: Executor["Service"], processId: string) =>
  Effect.gen(function*() {
    const taken: Array<ProcessEvent> = []
    const first = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkChild(
      Stream.runDrain(
        executor.events(processId).pipe(
          Stream.tap((event) =>
            Effect.andThen(Effect.sync(() => taken.push(event)), Deferred.succeed(first, undefined))
          )
        )
      )
    )
    return { taken, fiber, firstEvent: Deferred.await(first) }
  })

/** How a follower (or any fiber) ended; an assertion fails when it has not within 15 s (it takes milliseconds). */
const endOf = <A>(fiber: Fiber.Fiber<A, ExecutorError>, what: string) =>
  Effect.exit(Fiber.join(fiber)).pipe(
    Effect.timeoutOrElse({
      duration: "15 seconds",
      orElse: () => Effect.sync(() => assert.fail(`${what} never ended`))
    })
  )

/** The failure an effect that must fail with an `ExecutorError` failed with. */
const failureOf = <A>(effect: Effect.Effect<A, ExecutorError>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert.isTrue(Exit.isFailure(exit), `expected a failure, got ${String(exit)}`)
    return reasonOf(exit)
  })

/** The session id a server gave on the proxy's link `link`. */
const sessionIdOf = (proxy: WebSocketProxy.WebSocketProxy, link: number): string | undefined =>
  proxy.frames.find((f) => f.link === link && typeof f.message?.result?.sessionId === "string")?.message.result
    .sessionId

/** What the client asked on link `link` about `processId`, method by method. */
const askedAbout = (proxy: WebSocketProxy.WebSocketProxy, link: number, processId: string) =>
  proxy.frames.filter((f) => f.link === link && f.from === "client" && f.message?.params?.processId === processId)
    .map((f) => f.message.method)

/** Our exec-server serving a local executor of its own, both in `scope`. */
const ourServer = (scope: Scope.Scope, options: WebSocketListener.Options = {}) =>
  Effect.gen(function*() {
    const local = yield* LocalExecutor.make()
    const { url } = yield* WebSocketListener.listen(options).pipe(Effect.provideService(Executor, local))
    return { local, url }
  }).pipe(Scope.provide(scope))

/** An exec-server of either make, in `scope`. */
type StartServer = (scope: Scope.Scope) => Effect.Effect<{ readonly url: string }, unknown>

const ours: StartServer = (scope) => ourServer(scope)
const codex: StartServer = (scope) => startCodexServer.pipe(Scope.provide(scope))

/**
 * A client of the server `startServer` starts behind a proxy; `restart` ends
 * that server (its processes with it, nothing of that told to the client)
 * and leads the address to a second one, which never had the session.
 */
const restartable = (startServer: StartServer) =>
  Effect.gen(function*() {
    const before = yield* Scope.make()
    const first = yield* startServer(before)
    const second = yield* startServer(yield* Effect.scope)
    const proxy = yield* WebSocketProxy.start(first.url)
    const { executor } = yield* Remote.make(RemoteExecutor.connectWebSocket({ url: proxy.url }), settings)
    const restart = Effect.gen(function*() {
      yield* proxy.setTarget(second.url)
      yield* proxy.cut({ holdServerSide: true })
      yield* Scope.close(before, Exit.void)
    })
    return { proxy, executor, restart }
  })

/** Events of a process that printed `output` and exited with `exitCode`: output and exit in either order. */
const assertRanToItsEnd = (events: ReadonlyArray<ProcessEvent>, output: string, exitCode: number) => {
  const tags = shown(events).map((event) => event.replace(/^\d+ /, ""))
  assert.sameMembers(tags.slice(0, 2), [`Output ${output}`, `Exited ${exitCode}`], String(tags))
  assert.deepStrictEqual(tags.slice(2), ["Closed"])
}

describe("RemoteExecutor: a session that expired while the client was away", () => {
  it.live("fails every call about its processes with SessionLost, after what the client held; new ones run", () =>
    Effect.gen(function*() {
      const { local, url } = yield* ourServer(yield* Effect.scope, { sessionTtl: "100 millis" })
      const proxy = yield* WebSocketProxy.start(url)
      // the client connects only when the test lets it: it stays away past the session's TTL
      let gate: Deferred.Deferred<void> | undefined
      const connect = Effect.andThen(
        Effect.suspend(() => gate === undefined ? Effect.void : Deferred.await(gate)),
        RemoteExecutor.connectWebSocket({ url: proxy.url })
      )
      const { executor } = yield* Remote.make(connect, settings)
      yield* executor.start({ ...startRequest("lost", "printf early; exec sleep 60"), pipeStdin: true })
      const follower = yield* follow(executor, "lost")
      yield* follower.firstEvent
      const oldSession = sessionIdOf(proxy, 1)!

      gate = yield* Deferred.make<void>()
      yield* proxy.cut()
      // the session ends at its TTL, and its process with it
      yield* local.read({ processId: `${oldSession}/lost`, waitMs: 0 }).pipe(
        Effect.filterOrFail((read) => read.closed),
        Effect.retry({ times: 1000, schedule: Schedule.spaced("10 millis") })
      )
      yield* Deferred.succeed(gate, undefined)

      const end = yield* endOf(follower.fiber, "the follower of the expired session's process")
      assert.strictEqual(reasonOf(end)?._tag, "SessionLost", `the follower got ${String(end)}`)
      assert.deepStrictEqual(shown(follower.taken), ["1 Output early"], "what it held came first")
      const newSession = sessionIdOf(proxy, 2)
      assert.isDefined(newSession)
      assert.notStrictEqual(newSession, oldSession, "a new session, not the old one resumed")

      // a read, a write, a terminate and a later follower learn the same; the later follower after what is held
      const read = yield* failureOf(executor.read({ processId: "lost", afterSeq: 1, waitMs: 0 }))
      assert.deepStrictEqual(read?._tag, "SessionLost")
      assert.strictEqual(read?.message, lostMessage("lost"))
      assert.strictEqual(
        (yield* failureOf(executor.write({ processId: "lost", chunk: new Uint8Array([10]) })))?._tag,
        "SessionLost"
      )
      assert.strictEqual((yield* failureOf(executor.terminate("lost")))?._tag, "SessionLost")
      const later = yield* follow(executor, "lost")
      const laterEnd = yield* endOf(later.fiber, "a later follower of that process")
      assert.strictEqual(reasonOf(laterEnd)?._tag, "SessionLost", `a later follower got ${String(laterEnd)}`)
      assert.deepStrictEqual(shown(later.taken), ["1 Output early"])
      // none of them asked the new session, which would have answered for a process it never had
      assert.deepStrictEqual(askedAbout(proxy, 2, "lost"), [])

      // processes started in the new session are its own, even under the old process's id
      yield* executor.start(startRequest("fresh", "printf new; exit 4"))
      yield* executor.start(startRequest("lost", "printf again; exit 5"))
      assertRanToItsEnd(yield* Stream.runCollect(executor.events("fresh")), "new", 4)
      assertRanToItsEnd(yield* Stream.runCollect(executor.events("lost")), "again", 5)
      const reread = yield* executor.read({ processId: "lost", afterSeq: 0, waitMs: 0 })
      assert.strictEqual(text(reread.chunks[0]!.chunk), "again")
    }))
})

/**
 * A follower of a process across a restart of its server: it gets what the
 * client held, then `SessionLost`; the second server refused to resume the
 * session (both makes answer -32600 "unknown session id …"), the client began
 * a new one, and a process started there runs to its end.
 */
const followerAcrossARestart = (startServer: StartServer) =>
  Effect.gen(function*() {
    const { executor, proxy, restart } = yield* restartable(startServer)
    yield* executor.start(startRequest("p", "printf early; exec sleep 60"))
    const follower = yield* follow(executor, "p")
    yield* follower.firstEvent
    yield* restart

    const end = yield* endOf(follower.fiber, "the follower of the first server's process")
    assert.strictEqual(reasonOf(end)?._tag, "SessionLost", `the follower got ${String(end)}`)
    assert.deepStrictEqual(shown(follower.taken), ["1 Output early"])
    const initializes = proxy.frames.filter((f) => f.link === 2 && f.message?.method === "initialize")
    assert.deepStrictEqual(initializes.map((f) => f.message.params.resumeSessionId ?? null), [
      sessionIdOf(proxy, 1),
      null
    ])
    const refusal = proxy.frames.find((f) => f.link === 2 && f.message?.error !== undefined)?.message.error
    assert.strictEqual(refusal?.code, -32600)
    assert.match(refusal?.message ?? "", /^unknown session id /)
    assert.notStrictEqual(sessionIdOf(proxy, 2), sessionIdOf(proxy, 1))

    yield* executor.start(startRequest("q", "printf new; exit 4"))
    assertRanToItsEnd(yield* Stream.runCollect(executor.events("q")), "new", 4)
  })

describe("RemoteExecutor: a follower across a restart of its exec-server", () => {
  it.live("ours: gets the events the client held, then SessionLost; the new session starts afresh", () =>
    followerAcrossARestart(ours))

  it.live(
    "Codex's: gets the events the client held, then SessionLost; the new session starts afresh",
    () => followerAcrossARestart(codex),
    { timeout: 60_000 }
  )
})

/**
 * Calls sent while the link is down, after the server restarted: each is the
 * one that meets the new session, which answers for a process it never had
 * (an error, `unknownProcess`, `running: false`); each fails with
 * `SessionLost` instead.
 */
const callsMeetingTheNewSession = (startServer: StartServer) =>
  Effect.gen(function*() {
    const { executor, proxy, restart } = yield* restartable(startServer)
    yield* executor.start({ ...startRequest("p", "exec sleep 60"), pipeStdin: true })
    yield* restart

    const reasons = yield* Effect.all([
      failureOf(executor.read({ processId: "p", afterSeq: 0, waitMs: 0 })),
      failureOf(executor.write({ processId: "p", chunk: new Uint8Array([10]) })),
      failureOf(executor.terminate("p"))
    ], { concurrency: "unbounded" })
    assert.deepStrictEqual(reasons.map((reason) => reason?._tag), ["SessionLost", "SessionLost", "SessionLost"])
    // the new session was asked, and answered as for an id it never saw
    assert.sameMembers(askedAbout(proxy, 2, "p"), ["process/read", "process/write", "process/terminate"])
  })

describe("RemoteExecutor: calls that meet the new session of a restarted server", () => {
  it.live("ours: a read, a write and a terminate fail with SessionLost in place of its answers", () =>
    callsMeetingTheNewSession(ours))

  it.live(
    "Codex's: a read, a write and a terminate fail with SessionLost in place of its answers",
    () => callsMeetingTheNewSession(codex),
    { timeout: 60_000 }
  )
})

describe("Exec.run across a restart of its exec-server", () => {
  it.live("ends the command Lost, its typed error SessionLost, keeping the output read before", () =>
    Effect.gen(function*() {
      const { executor, proxy, restart } = yield* restartable(ours)
      const received = yield* Deferred.make<void>()
      const layer = Layer.mergeAll(
        Environment.fromExecutor({ _tag: "Remote", url: proxy.url }).pipe(
          Layer.provide(Layer.succeed(Executor, executor))
        ),
        Layer.succeed(
          OutputSink.OutputSink,
          OutputSink.OutputSink.of({ emit: () => Deferred.succeed(received, undefined) })
        )
      )
      const run = yield* Exec.run({ command: ["sh", "-c", "printf early; exec sleep 60"], timeout: "2 minutes" })
        .pipe(Effect.provide(layer), Effect.forkChild)
      yield* Deferred.await(received)
      yield* restart

      const result = valueOf(yield* endOf(run, "Exec.run"))
      assert.strictEqual(result.termination._tag, "Lost")
      if (result.termination._tag !== "Lost") return
      assert.strictEqual(result.termination.error.reason._tag, "SessionLost")
      assert.deepStrictEqual(result.termination.error.reason, new SessionLost({ processId: result.processId }))
      assert.strictEqual(result.termination.reason, lostMessage(result.processId))
      assert.strictEqual(result.exitCode, -1)
      assert.strictEqual(result.stdout.text, "early")
    }))
})
