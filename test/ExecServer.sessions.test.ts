/**
 * The server's session registry and router on their own, in virtual time:
 * which client gets a session, which is refused (and with which answer), when
 * a detached session ends and what that kills, the process slots every start
 * takes; and how a request is decoded, answered and refused by the method
 * table. The wire tests drive the same code through sockets.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import { TestClock } from "effect/testing"
import * as Tracer from "effect/Tracer"
import { Executor, failWith, SessionLost, UnknownProcess } from "../src/Executor.ts"
import { processHandlers } from "../src/internal/server/processHandlers.ts"
import { RawJson, Reply } from "../src/internal/server/reply.ts"
import { decodeParams, routeNotification, routeRequest } from "../src/internal/server/router.ts"
import { type Connection, type Limits, SessionRegistry } from "../src/internal/server/sessions.ts"
import { ErrorCode } from "../src/JsonRpc.ts"
import * as Protocol from "../src/Protocol.ts"
import * as Script from "./support/ScriptedExecutor.ts"

const limits: Limits = {
  processes: 3,
  processesPerSession: 2,
  concurrentRequests: 4,
  queuedRequests: 8,
  pendingRequestBytes: 1024,
  startsPerSession: 2,
  sessions: 2,
  sessionsPerAddress: 2
}

/** A connection that takes everything and goes nowhere: the registry only keeps it and compares it. */
const connection = (address?: string): Connection => ({
  send: () => Effect.void,
  sendJson: () => Effect.void,
  postJson: () => Effect.void,
  postOutput: () => Effect.void,
  postOutputNow: () => true,
  close: () => Effect.void,
  ...(address === undefined ? {} : { address })
})

/**
 * A registry over a scripted executor whose processes run for an hour (or follow `steps`), as `wrap` changes it (an
 * executor of another make).
 */
const registry = (
  overrides: Partial<Limits> = {},
  steps: ReadonlyArray<Script.Step> = [Script.wait("1 hour"), Script.exit(0), Script.close],
  wrap: (executor: Executor["Service"]) => Executor["Service"] = (executor) => executor
) =>
  Effect.gen(function*() {
    const scripted = Script.make(() => steps)
    const executor = Context.get(yield* Layer.build(scripted.layer), Executor)
    const fibers = yield* FiberSet.make<unknown, unknown>()
    const sessions = new SessionRegistry({
      executor: wrap(executor),
      fibers,
      sessionTtl: Duration.seconds(10),
      limits: { ...limits, ...overrides }
    })
    return { sessions, executor, terminated: scripted.terminated }
  })

/** The JSON-RPC error an effect failed with. */
const refusal = <A>(effect: Effect.Effect<A, Reply>) =>
  Effect.map(Effect.flip(effect), (reply) => ({ code: reply.code, message: reply.message }))

describe("SessionRegistry", () => {
  it.effect("ends a detached session at its TTL, not before, terminating its processes", () =>
    Effect.gen(function*() {
      const { executor, sessions, terminated } = yield* registry()
      const link = connection()
      const session = yield* sessions.create(link)
      assert.strictEqual(session.attached, link)
      const internalId = session.internalIdOf("p")
      assert.strictEqual(internalId, `${session.id}/p`)
      yield* executor.start({ processId: internalId, argv: ["cmd"], cwd: "/", env: {}, tty: false })
      session.processes.set("p", { internalId, closed: false })

      yield* sessions.detach(session, link)
      assert.isUndefined(session.attached)
      yield* TestClock.adjust("9999 millis")
      assert.isFalse(session.ended)
      assert.deepStrictEqual(terminated, [])
      assert.isTrue(sessions.sessions.has(session.id))
      yield* TestClock.adjust("1 millis")
      assert.isTrue(session.ended)
      assert.deepStrictEqual(terminated, [internalId])
      assert.isFalse(sessions.sessions.has(session.id))
      assert.deepStrictEqual(yield* refusal(sessions.resume(session.id, connection())), {
        code: ErrorCode.invalidRequest,
        message: `unknown session id ${session.id}`
      })
    }))

  it.effect("keeps a session resumed before its TTL, and refuses a second connection while it is attached", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry()
      const first = connection()
      const session = yield* sessions.create(first)
      assert.deepStrictEqual(yield* refusal(sessions.resume(session.id, connection())), {
        code: ErrorCode.sessionAlreadyAttached,
        message: `session ${session.id} is already attached to another connection`
      })
      yield* sessions.detach(session, connection())
      assert.strictEqual(session.attached, first, "a connection it is not attached to does not detach it")
      yield* sessions.detach(session, first)
      yield* TestClock.adjust("5 seconds")
      const second = connection()
      assert.strictEqual(yield* sessions.resume(session.id, second), session)
      assert.strictEqual(session.attached, second)
      assert.isUndefined(session.expiry)
      yield* TestClock.adjust("1 hour")
      assert.isFalse(session.ended, "the TTL stopped at the resume")
    }))

  it.effect("makes room for a new client by ending the oldest detached session, and refuses when none is", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry()
      const [a, b] = [connection(), connection()]
      const first = yield* sessions.create(a)
      const second = yield* sessions.create(b)
      assert.deepStrictEqual(yield* refusal(sessions.create(connection())), {
        code: ErrorCode.limitExceeded,
        message: "too many sessions: this server keeps 2 attached (the limit); try again later"
      })
      yield* sessions.detach(second, b)
      yield* sessions.detach(first, a)
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        logged.push(`${options.logLevel} ${JSON.stringify(options.message)}`)
      })
      const third = yield* sessions.create(connection()).pipe(Effect.provide(Logger.layer([collector])))
      assert.deepStrictEqual(logged, [
        `Warn ${
          JSON.stringify([
            `ending detached session ${second.id} before its TTL: all 2 session slots are taken and a new client ` +
            "needs one"
          ])
        }`
      ])
      assert.isTrue(second.ended, "the session detached first gave way")
      assert.isFalse(first.ended)
      assert.isUndefined(second.expiry)
      assert.deepStrictEqual([...sessions.sessions.keys()].sort(), [first.id, third.id].sort())
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(first.ended, "the other one still ends at its TTL")
    }))

  it.effect("lets one address attach only its share of sessions, and frees it at the detach", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 10, sessionsPerAddress: 2 })
      const a1 = connection("10.0.0.1")
      const first = yield* sessions.create(a1)
      yield* sessions.create(connection("10.0.0.1"))
      assert.deepStrictEqual(yield* refusal(sessions.create(connection("10.0.0.1"))), {
        code: ErrorCode.limitExceeded,
        message: "too many sessions from 10.0.0.1: 2 attached (the limit per address); close some first"
      })
      yield* sessions.create(connection("10.0.0.2"))
      yield* sessions.create(connection())
      yield* sessions.create(connection())
      yield* sessions.create(connection())
      yield* sessions.detach(first, a1)
      yield* sessions.create(connection("10.0.0.1"))
      assert.deepStrictEqual(
        (yield* refusal(sessions.resume(first.id, connection("10.0.0.1")))).code,
        ErrorCode.limitExceeded,
        "a resume counts against the address too"
      )
      yield* sessions.resume(first.id, connection("10.0.0.3"))
    }))

  it.effect("frees an address's share when its session ends, and counts each attach once", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 10, sessionsPerAddress: 1 })
      const link = connection("10.0.0.1")
      const session = yield* sessions.create(link)
      yield* sessions.end(session)
      assert.isTrue(session.ended)
      assert.isUndefined(session.attached)
      const again = yield* sessions.create(connection("10.0.0.1"))
      yield* sessions.endAll()
      assert.isTrue(again.ended)
      assert.strictEqual(sessions.sessions.size, 0)
      yield* sessions.create(connection("10.0.0.1"))
    }))

  it.effect("gives every process start a slot in its session and in the server, and takes it back once", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 10 })
      const one = yield* sessions.create(connection())
      const two = yield* sessions.create(connection())
      const releaseA = yield* sessions.reserveProcess(one)
      yield* sessions.reserveProcess(one)
      assert.deepStrictEqual([one.live, sessions.live], [2, 2])
      assert.deepStrictEqual(yield* refusal(sessions.reserveProcess(one)), {
        code: ErrorCode.limitExceeded,
        message: "too many processes: this session already runs 2 (the limit); wait for some to close"
      })
      yield* sessions.reserveProcess(two)
      assert.deepStrictEqual(yield* refusal(sessions.reserveProcess(two)), {
        code: ErrorCode.limitExceeded,
        message: "too many processes: this server already runs 3 (the limit); wait for some to close"
      })
      yield* releaseA
      yield* releaseA
      assert.deepStrictEqual([one.live, two.live, sessions.live], [1, 1, 2], "released once, however often called")
      yield* sessions.reserveProcess(two)
      assert.deepStrictEqual([two.live, sessions.live], [2, 3])
    }))
})

describe("SessionRegistry, what it forgets", () => {
  it.effect("never ends an attached session to make room: a resumed session is no longer among the detached", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 1 })
      const first = connection()
      const session = yield* sessions.create(first)
      yield* sessions.detach(session, first)
      yield* sessions.resume(session.id, connection())
      assert.deepStrictEqual(yield* refusal(sessions.create(connection())), {
        code: ErrorCode.limitExceeded,
        message: "too many sessions: this server keeps 1 attached (the limit); try again later"
      })
      assert.isFalse(session.ended)
    }))

  it.effect("forgets a session ended at its TTL among the detached: it cannot make room a second time", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 1 })
      const first = connection()
      const expired = yield* sessions.create(first)
      yield* sessions.detach(expired, first)
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(expired.ended)
      const attached = yield* sessions.create(connection())
      assert.deepStrictEqual(
        (yield* refusal(sessions.create(connection()))).code,
        ErrorCode.limitExceeded,
        "the one slot is the attached session's"
      )
      assert.isFalse(attached.ended)
    }))

  it.effect("wakes the notifier of a process whose detached session ends, so the process's slot comes back", () =>
    Effect.gen(function*() {
      // an exit while detached makes the notifier wait for a connection; the session's end must wake it
      const steps = [Script.wait("5 seconds"), Script.exit(0), Script.close]
      const { sessions } = yield* registry({ processes: 1, sessions: 10 }, steps)
      const link = connection()
      const session = yield* sessions.create(link)
      const { requests } = processHandlers(sessions, session)
      yield* requests["process/start"]({ processId: "p", argv: ["cmd"], cwd: "/", env: {}, tty: false })
      assert.strictEqual(sessions.live, 1)
      yield* sessions.detach(session, link)
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(sessions.live, 1, "the close waits for the client to come back")
      yield* TestClock.adjust("5 seconds")
      assert.isTrue(session.ended)
      assert.strictEqual(sessions.live, 0, "the notifier saw the close and gave the slot back")
      yield* sessions.reserveProcess(yield* sessions.create(connection()))
    }))
})

describe("processHandlers", () => {
  const start = { processId: "p", argv: ["cmd"], cwd: "/", env: {}, tty: false } as const

  it.effect("terminates at once a process whose session ended while the executor was starting it", () =>
    Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const { sessions, terminated } = yield* registry({ sessions: 10 }, undefined, (executor) => ({
        ...executor,
        start: (request) =>
          Deferred.succeed(entered, undefined).pipe(
            Effect.andThen(Deferred.await(gate)),
            Effect.andThen(executor.start(request))
          )
      }))
      const session = yield* sessions.create(connection())
      const { requests } = processHandlers(sessions, session)
      const starting = yield* Effect.forkChild(requests["process/start"](start))
      yield* Deferred.await(entered)
      yield* sessions.end(session)
      assert.deepStrictEqual(terminated, [], "the session knew no process to end yet")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(starting)
      assert.deepStrictEqual(terminated, [session.internalIdOf("p")], "nothing runs that no session knows of")
    }))

  it.effect("holds a request for a process behind every start of its id received before it, then forgets the starts", () =>
    Effect.gen(function*() {
      const gates = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      let calls = 0
      const { sessions } = yield* registry({ sessions: 10 }, [Script.exit(0), Script.close], (executor) => ({
        ...executor,
        start: (request) => Effect.andThen(Deferred.await(gates[calls++]!), executor.start(request))
      }))
      const session = yield* sessions.create(connection())
      const { requests } = processHandlers(sessions, session)
      const first = yield* Effect.forkChild(requests["process/start"](start))
      const second = yield* Effect.forkChild(Effect.exit(requests["process/start"](start)))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(calls, 2, "both starts are in the executor")
      yield* Deferred.succeed(gates[0]!, undefined)
      yield* Fiber.join(first)
      const read = yield* Effect.forkChild(requests["process/read"]({ processId: "p" }))
      yield* TestClock.adjust("1 millis")
      assert.isUndefined(read.pollUnsafe(), "the first start was answered, the second not yet: the read waits for it")
      yield* Deferred.succeed(gates[1]!, undefined)
      assert.isTrue(Exit.isFailure(yield* Fiber.join(second)), "p runs: the second start is refused")
      yield* Fiber.join(read)
      assert.isFalse(session.startsUnderWay.has("p"), "every start of p was answered: nothing is left to wait for")
    }))

  it.effect("names the client's process id in a reason that names one: a relayed SessionLost, an UnknownProcess", () =>
    Effect.gen(function*() {
      // an executor that is itself a client of a server further away, whose session there is gone
      const { sessions } = yield* registry({ sessions: 10 }, undefined, (executor) => ({
        ...executor,
        read: (request) => failWith(new SessionLost({ processId: request.processId })),
        terminate: (processId) => failWith(new UnknownProcess({ processId }))
      }))
      const session = yield* sessions.create(connection())
      const { requests } = processHandlers(sessions, session)
      const read = yield* Effect.flip(requests["process/read"]({ processId: "p" }))
      assert.deepStrictEqual(Protocol.errorFromWire(read.wire), new SessionLost({ processId: "p" }))
      assert.strictEqual(read.code, ErrorCode.internalError)
      const terminate = yield* Effect.flip(requests["process/terminate"]({ processId: "p" }))
      assert.deepStrictEqual(Protocol.errorFromWire(terminate.wire), new UnknownProcess({ processId: "p" }))
    }))

  it.effect("passes the executor's window on in the start's answer, and says none when it has none", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 10 }, undefined, (executor) => ({
        ...executor,
        start: (request) =>
          Effect.map(
            executor.start(request),
            (started) => request.processId.endsWith("/pushed") ? { ...started, windowBytes: 4096 } : started
          )
      }))
      const { requests } = processHandlers(sessions, yield* sessions.create(connection()))
      assert.deepStrictEqual(yield* requests["process/start"]({ ...start, processId: "pushed" }), {
        processId: "pushed",
        sandboxType: "none",
        windowBytes: 4096
      })
      assert.deepStrictEqual(yield* requests["process/start"](start), { processId: "p", sandboxType: "none" })
    }))

  it.effect("answers sandboxType none and sandboxDenied false for an executor that does not say them", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 10 }, [Script.exit(0), Script.close], (executor) => ({
        ...executor,
        start: (request) => Effect.map(executor.start(request), ({ sandboxType: _, ...started }) => started),
        read: (request) => Effect.map(executor.read(request), ({ sandboxDenied: _, ...result }) => result)
      }))
      const { requests } = processHandlers(sessions, yield* sessions.create(connection()))
      assert.deepStrictEqual(yield* requests["process/start"](start), { processId: "p", sandboxType: "none" })
      const read = yield* requests["process/read"]({ processId: "p", afterSeq: 0, waitMs: 1000 })
      assert.instanceOf(read, RawJson)
      const answer = JSON.parse((read as RawJson).frame("", "").toString("utf8"))
      assert.deepStrictEqual([answer.exited, answer.sandboxDenied], [true, false])
    }))

  it.effect("traces each process method in a span named after it", () =>
    Effect.gen(function*() {
      const { sessions } = yield* registry({ sessions: 10 })
      const session = yield* sessions.create(connection())
      const { requests } = processHandlers(sessions, session)
      const base = yield* Effect.tracer
      const names: Array<string> = []
      const recording = Tracer.make({
        span: (options) => {
          names.push(options.name)
          return base.span(options)
        }
      })
      yield* Effect.withTracer(
        Effect.gen(function*() {
          yield* requests["process/start"]({ processId: "p", argv: ["cmd"], cwd: "/", env: {}, tty: true })
          yield* requests["process/read"]({ processId: "p" })
          yield* requests["process/write"]({ processId: "p", chunk: new Uint8Array([10]) })
          yield* requests["process/signal"]({ processId: "p", signal: "interrupt" })
          yield* requests["process/resize"]({ processId: "p", size: { rows: 24, cols: 80 } })
          yield* requests["process/closeStdin"]({ processId: "p" })
          yield* requests["process/terminate"]({ processId: "p" })
        }),
        recording
      )
      assert.deepStrictEqual(
        names.filter((name) => name.startsWith("ExecServer.")),
        ["start", "read", "write", "signal", "resize", "closeStdin", "terminate"].map((m) => `ExecServer.process/${m}`)
      )
    }))
})

describe("router", () => {
  const handler = (result: unknown) => () => Effect.succeed(result)

  it.effect("refuses an unknown method with -32601 before looking for a handler", () =>
    Effect.gen(function*() {
      let resolved = 0
      const refused = yield* refusal(routeRequest("process/explode", {}, () => {
        resolved++
        return Effect.succeed(handler({}))
      }))
      assert.deepStrictEqual(refused, { code: ErrorCode.methodNotFound, message: "method not found: process/explode" })
      assert.strictEqual(resolved, 0)
      assert.deepStrictEqual(
        yield* refusal(routeRequest("toString", {}, () => Effect.succeed(handler({})))),
        { code: ErrorCode.methodNotFound, message: "method not found: toString" },
        "a name of Object.prototype is no method"
      )
    }))

  it.effect("decodes the params by the method's schema, naming the field that does not decode", () =>
    Effect.gen(function*() {
      const seen: Array<unknown> = []
      const resolve = () =>
        Effect.succeed((params: unknown) => {
          seen.push(params)
          return Effect.succeed({ running: true })
        })
      assert.deepStrictEqual(yield* routeRequest("process/terminate", { processId: "p" }, resolve), { running: true })
      assert.deepStrictEqual(seen, [{ processId: "p" }])
      const refused = yield* refusal(routeRequest("process/terminate", { processId: 5 }, resolve))
      assert.strictEqual(refused.code, ErrorCode.invalidParams)
      assert.match(refused.message, /^invalid params: .*processId/s)
      const missing = yield* refusal(routeRequest("process/terminate", undefined, resolve))
      assert.strictEqual(missing.code, ErrorCode.invalidParams, "absent params decode as {}")
      assert.match(missing.message, /processId/)
      assert.strictEqual(seen.length, 1, "the handler never saw params that do not decode")
    }))

  it.effect("refuses in the resolver's words, before the params are looked at", () =>
    Effect.gen(function*() {
      const refused = yield* refusal(
        routeRequest(
          "process/terminate",
          "not even an object",
          () => Effect.fail(new Reply({ code: ErrorCode.invalidRequest, message: "initialize first" }))
        )
      )
      assert.deepStrictEqual(refused, { code: ErrorCode.invalidRequest, message: "initialize first" })
    }))

  it.effect("encodes the result by the method's schema, passes RawJson through, and refuses an invalid answer", () =>
    Effect.gen(function*() {
      const read = { chunks: [], nextSeq: 1, exited: false, exitCode: null, closed: false, failure: null }
      const encoded = yield* routeRequest("process/read", { processId: "p" }, () => Effect.succeed(handler(read)))
      assert.deepStrictEqual(encoded, Schema.encodeSync(Protocol.requests["process/read"].result)(read as never))
      const raw = new RawJson(["{}"])
      assert.strictEqual(
        yield* routeRequest("process/read", { processId: "p" }, () => Effect.succeed(handler(raw))),
        raw
      )
      const invalid = yield* refusal(
        routeRequest("process/terminate", { processId: "p" }, () => Effect.succeed(handler({ running: "yes" })))
      )
      assert.strictEqual(invalid.code, ErrorCode.internalError)
      assert.match(invalid.message, /^the server built an invalid answer: /)
    }))

  it.effect("routes a client notification to its handler with decoded params", () =>
    Effect.gen(function*() {
      const acknowledged: Array<unknown> = []
      const handlers = {
        "process/acknowledge": (params: unknown) => Effect.sync(() => void acknowledged.push(params))
      }
      yield* routeNotification(handlers, "process/acknowledge", { processId: "p", afterSeq: 3 })
      assert.deepStrictEqual(acknowledged, [{ processId: "p", afterSeq: 3 }])
      const refused = yield* refusal(routeNotification(handlers, "process/acknowledge", { processId: "p" }))
      assert.strictEqual(refused.code, ErrorCode.invalidParams)
      assert.strictEqual(acknowledged.length, 1)
    }))

  it.effect("decodes each request on its own: a second decode by the same schema gives its own answer", () =>
    Effect.gen(function*() {
      const schema = Protocol.requests["process/terminate"].params
      const first = yield* Effect.exit(decodeParams(schema, { processId: "a" }))
      const second = yield* Effect.exit(decodeParams(schema, { processId: "b" }))
      assert.deepStrictEqual([first, second], [Exit.succeed({ processId: "a" }), Exit.succeed({ processId: "b" })])
    }))
})
