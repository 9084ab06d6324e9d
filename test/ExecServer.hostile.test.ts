/**
 * The exec-server against hostile or careless clients, over the wire: frames
 * over the size limit, deeply nested JSON, floods of requests, too many
 * processes, binary garbage, stray responses, wrong types in every field, a
 * client that never reads, shell metacharacters in argv, and wrong tokens.
 * After the hostile part every test proves the server unharmed: a new,
 * well-behaved client completes a handshake and runs a command.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PassThrough } from "node:stream"
import * as ExecServer from "../src/ExecServer.ts"
import { Executor } from "../src/Executor.ts"
import * as Connection from "../src/internal/server/connection.ts"
import { fileSystemHandlers } from "../src/internal/server/fileSystemHandlers.ts"
import type { SessionMethods } from "../src/internal/server/handshake.ts"
import { processHandlers } from "../src/internal/server/processHandlers.ts"
import type { Session } from "../src/internal/server/sessions.ts"
import { ErrorCode, fromStreams } from "../src/JsonRpc.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { awaitDeath, isAlive } from "./support/processes.ts"
import { listenMeasured as server } from "./support/servers.ts"
import { messagesOf } from "./support/stdioClient.ts"
import {
  codexShape,
  connect,
  type ConnectOptions,
  type Frame,
  fromBase64,
  handshake,
  pollUntil,
  readAll,
  refusedStatus,
  startParams,
  type WireClient
} from "./support/wireClient.ts"

/** A connected client that has completed the handshake. */
const client = (url: string, options: ConnectOptions = {}) =>
  Effect.gen(function*() {
    const connected = yield* connect(url, options)
    const init = yield* handshake(connected)
    return { client: connected, sessionId: init.sessionId }
  })

let unharmedCount = 0
/**
 * Proves the server still serves: a new client completes the handshake and
 * runs `sh -c 'printf ok'` to completion (in its own scope, so it disconnects).
 */
const assertUnharmed = (url: string, options: ConnectOptions = {}) =>
  Effect.scoped(Effect.flatMap(client(url, options), ({ client: fresh }) => assertServes(fresh)))

/** Proves a client's session runs a command: `sh -c 'printf ok'` to completion. */
const assertServes = (fresh: WireClient) =>
  Effect.gen(function*() {
    const processId = `unharmed-${++unharmedCount}`
    const started = yield* fresh.call("process/start", startParams(processId, ["sh", "-c", "printf ok"]))
    assert.deepStrictEqual(started, { processId, sandboxType: "none" })
    const { last, text } = yield* readAll(fresh, processId)
    assert.strictEqual(text, "ok")
    assert.strictEqual(last.exitCode, 0)
  })

/** Proves one connection still works: an unknown method gets its -32601 answer, in order. */
const assertUsable = (client: WireClient) =>
  Effect.gen(function*() {
    assert.isUndefined(client.closeInfo(), "the connection is still open")
    const error = yield* client.callError("no/such-method", {})
    assert.strictEqual(error.code, -32601)
  })

/** Replies (frames with an id and no method) received so far. */
const replies = (client: WireClient): ReadonlyArray<Frame> =>
  client.received.filter((r) => r.frame.method === undefined && r.frame.id !== undefined).map((r) => r.frame)

/**
 * Waits until `count` replies have arrived; dies when none arrives for
 * `stallMs`: a server that stopped answering, not one a busy machine slows.
 */
const awaitReplies = (client: WireClient, count: number, stallMs = 10_000) =>
  Effect.gen(function*() {
    let seen = replies(client).length
    let progressAt = Date.now()
    while (seen < count) {
      if (Date.now() - progressAt > stallMs) {
        return yield* Effect.die(new Error(`${count} replies awaited: ${seen} came, then none for ${stallMs} ms`))
      }
      yield* Effect.sleep(10)
      const now = replies(client).length
      if (now > seen) [seen, progressAt] = [now, Date.now()]
    }
  })

/** A request frame's text. */
const request = (id: number | string, method: string, params?: unknown) =>
  JSON.stringify({ id, method, ...(params === undefined ? {} : { params }) })

/** A process that prints its pid on its first line, then sleeps in its place. */
const sleeper = (processId: string, seconds = 30) =>
  startParams(processId, ["sh", "-c", `echo $$; exec sleep ${seconds}`])

/** The pid a `sleeper` printed, from its `process/output` notification. */
const pidOf = (client: WireClient, processId: string) =>
  Effect.map(
    client.notification("process/output", processId, (params) => fromBase64(params.chunk).includes("\n")),
    (params) => {
      const pid = Number(fromBase64(params.chunk).split("\n")[0])
      assert.isAbove(pid, 1, `${processId} printed its pid`)
      return pid
    }
  )

/** Sends every `process/start` of `ids` at once; returns the replies by process id. */
const startAll = (client: WireClient, ids: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const before = replies(client).length
    const requestIds = ids.map((id) => `start:${id}`)
    yield* client.sendAll(ids.map((id, i) => request(requestIds[i]!, "process/start", sleeper(id))))
    yield* awaitReplies(client, before + ids.length)
    return new Map(ids.map((id, i) => [id, replies(client).find((frame) => frame.id === requestIds[i])!]))
  })

// =============================================================================
// 1. Frames over the size limit
// =============================================================================

describe("ExecServer against hostile clients: frame size", () => {
  /** Sends one text frame of `bytes` bytes (a JSON string) and waits for the connection to close. */
  const oversized = (client: WireClient, bytes: number) =>
    Effect.gen(function*() {
      // not awaited: the server may close before the client finishes writing
      client.socket.send(`"${"x".repeat(bytes - 2)}"`, () => {})
      // well under a second alone; the rest is room for a busy machine
      return yield* client.closedWithin(20_000)
    })

  it.live("closes a connection that sends a frame 1 MiB over the default limit with 1009", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const bystander = (yield* client(url)).client
      const closed = yield* oversized(hostile, ExecServer.defaults.maxFrameBytes + 1024 * 1024)
      assert.strictEqual(closed.code, 1009)
      assert.isFalse(hostile.received.some((r) => r.frame.id === -1), "no reply, only the close")
      yield* assertUsable(bystander)
      yield* assertUnharmed(url)
    }))

  it.live("closes a connection that sends a 2 MiB frame with 1009 (maxFrameBytes 1 MiB), accepts one just below", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxFrameBytes: 1024 * 1024 })
      const { client: near } = yield* client(url)
      // just below the limit: an ordinary (unknown-method) request padded to 1 MiB
      const frame = request("near", "no/such-method", { pad: "" })
      const padded = request("near", "no/such-method", { pad: "x".repeat(1024 * 1024 - frame.length) })
      assert.strictEqual(Buffer.byteLength(padded), 1024 * 1024)
      yield* near.sendRaw(padded)
      assert.strictEqual((yield* near.reply("near")).error?.code, -32601)
      const { client: hostile } = yield* client(url)
      const closed = yield* oversized(hostile, 2 * 1024 * 1024)
      assert.strictEqual(closed.code, 1009)
      yield* assertUsable(near)
      yield* assertUnharmed(url)
    }))
})

// =============================================================================
// 2. Deeply nested JSON
// =============================================================================

describe("ExecServer against hostile clients: deeply nested JSON", () => {
  const depth = 100_000

  it.live("answers 100 000 nested arrays with id -1 and -32600, and the connection stays usable", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      yield* hostile.sendRaw("[".repeat(depth) + "]".repeat(depth))
      const error = yield* hostile.waitFor("the -32600 answer", (frame) => frame.id === -1)
      assert.strictEqual(error.error?.code, -32600)
      // nested objects in the id: not a JSON-RPC message either
      yield* hostile.sendRaw(`{"id":${"{\"a\":".repeat(depth)}1${"}".repeat(depth)},"method":"process/read"}`)
      yield* pollUntil("a second -32600", () => hostile.received.filter((r) => r.frame.id === -1).length === 2)
      assert.strictEqual(hostile.received.filter((r) => r.frame.id === -1)[1]!.frame.error?.code, -32600)
      yield* assertUsable(hostile)
      yield* assertUnharmed(url)
    }))

  it.live("answers params nested 100 000 objects deep with -32602, wherever the nesting is", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const nested = `${"{\"a\":".repeat(depth)}1${"}".repeat(depth)}`
      const nestedArray = `${"[".repeat(depth)}${"]".repeat(depth)}`
      const base = JSON.stringify(startParams("deep", ["true"])).slice(1, -1)
      const cases: ReadonlyArray<readonly [string, string, string | undefined]> = [
        // the params object itself nests: processId (and the rest) are missing
        ["whole params", `{"id":"whole","method":"process/start","params":${nested}}`, "processId"],
        // the nesting sits in a field that is ignored: still missing fields
        ["extra field", `{"id":"extra","method":"process/read","params":{"extra":${nested}}}`, "processId"],
        // the nesting sits where a string is expected
        ["processId", `{"id":"pid","method":"process/start","params":{${base},"processId":${nested}}}`, "processId"],
        ["argv", `{"id":"argv","method":"process/start","params":{${base},"argv":${nestedArray}}}`, "argv"],
        ["env", `{"id":"env","method":"process/start","params":{${base},"env":{"X":${nested}}}}`, "env"],
        [
          "envPolicy.set",
          `{"id":"policy","method":"process/start","params":{${base},"envPolicy":{"inherit":"none","ignoreDefaultExcludes":false,"exclude":[],"includeOnly":[],"set":${nested}}}}`,
          "set"
        ],
        ["chunk", `{"id":"chunk","method":"process/write","params":{"processId":"deep","chunk":${nested}}}`, "chunk"]
      ]
      yield* hostile.sendAll(cases.map(([, frame]) => frame))
      for (const [label, frame, field] of cases) {
        const id = JSON.parse(frame.slice(0, frame.indexOf(",\"method\"")) + "}").id
        const answer = yield* hostile.reply(id)
        assert.strictEqual(answer.error?.code, -32602, `${label}: ${JSON.stringify(answer).slice(0, 300)}`)
        if (field !== undefined) assert.include(answer.error!.message, field, label)
        assert.isBelow(answer.error!.message.length, 10_000, `${label}: the message does not echo the whole value`)
      }
      // nothing was started
      assert.strictEqual((yield* hostile.callError("process/read", { processId: "deep" })).code, -32600)
      // a nested initialize, before the handshake: refused, and the handshake still works after it
      const fresh = yield* connect(url)
      yield* fresh.sendRaw(`{"id":"init","method":"initialize","params":{"clientName":${nested}}}`)
      const init = yield* fresh.reply("init")
      assert.strictEqual(init.error?.code, -32602)
      assert.include(init.error!.message, "clientName")
      yield* handshake(fresh)
      yield* assertUsable(fresh)
      yield* assertUsable(hostile)
      yield* assertUnharmed(url)
    }))
})

// =============================================================================
// 3. Floods of requests
// =============================================================================

describe("ExecServer against hostile clients: request floods", () => {
  const floodSize = 5_000

  /** The id of the flood's `i`th request: integers clear of the handshake's, and strings. */
  const idOf = (i: number) => (i % 6 === 5 ? `s${i}` : 100_000 + i)

  /** A mix of valid and invalid requests; the id tells which. */
  const mixedFlood = (count: number, processId: string) =>
    Array.from({ length: count }, (_, i) => {
      switch (i % 6) {
        case 0:
          return request(idOf(i), "process/read", { processId: `ghost-${i}` })
        case 1:
          return request(idOf(i), "process/read", { processId, afterSeq: 0, maxBytes: 16, waitMs: 0 })
        case 2:
          return request(idOf(i), "process/terminate", { processId: `ghost-${i}` })
        case 3:
          return request(idOf(i), "process/read", { processId: i })
        case 4:
          return request(idOf(i), "no/such-method", {})
        default:
          return request(idOf(i), "process/write", { processId: `ghost-${i}`, chunk: "aGk=" })
      }
    })

  /** Asserts each of the flood's ids got exactly one reply; returns the replies by id. */
  const assertOneReplyEach = (client: WireClient, count: number) => {
    const byId = new Map<string | number, Array<Frame>>()
    for (const frame of replies(client)) {
      const list = byId.get(frame.id!) ?? []
      list.push(frame)
      byId.set(frame.id!, list)
    }
    for (let i = 0; i < count; i++) {
      const got = byId.get(idOf(i))
      assert.strictEqual(got?.length, 1, `request ${idOf(i)} got ${got?.length ?? 0} replies`)
    }
    return byId
  }

  it.live("answers every one of 5 000 requests sent without waiting exactly once", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: flooder } = yield* client(url)
      yield* flooder.call("process/start", startParams("talker", ["sh", "-c", "echo hello; exec sleep 30"]))
      yield* flooder.notification("process/output", "talker")
      const before = replies(flooder).length
      yield* flooder.sendAll(mixedFlood(floodSize, "talker"))
      yield* awaitReplies(flooder, before + floodSize)
      const byId = assertOneReplyEach(flooder, floodSize)
      assert.strictEqual(replies(flooder).length, before + floodSize, "no reply to anything else")
      // with the default limits (64 + 1024 queued) a flood of quick requests may
      // still be refused in part: whatever is not a refusal is the right answer
      let refused = 0
      for (let i = 0; i < floodSize; i++) {
        const [frame] = byId.get(idOf(i))!
        if (frame!.error?.code === -32000) {
          refused++
          assert.match(frame!.error.message, /^too many requests in flight on this connection \(\d+\)/)
          continue
        }
        switch (i % 6) {
          case 0:
            assert.deepStrictEqual(codexShape(frame!.error), { code: -32600, message: `unknown process id ghost-${i}` })
            break
          case 1:
            assert.strictEqual(fromBase64(frame!.result.chunks[0].chunk), "hello\n")
            break
          case 2:
            assert.deepStrictEqual(frame!.result, { running: false })
            break
          case 3:
            assert.strictEqual(frame!.error?.code, -32602)
            break
          case 4:
            assert.strictEqual(frame!.error?.code, -32601)
            break
          default:
            assert.deepStrictEqual(frame!.result, { status: "unknownProcess" })
        }
      }
      assert.isBelow(refused, floodSize, "most requests are served")
      yield* assertUsable(flooder)
      const read = yield* flooder.call("process/read", { processId: "talker", afterSeq: 0, maxBytes: null, waitMs: 0 })
      assert.strictEqual(read.exited, false)
      yield* assertUnharmed(url)
    }))

  it.live("serves exactly maxConcurrentRequests requests of one connection at once; the rest wait their turn", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      // the executor the server calls, counting the reads inside it
      let inside = 0
      let most = 0
      const counting = Executor.of({
        ...local,
        read: (params) =>
          Effect.suspend(() => {
            inside++
            most = Math.max(most, inside)
            return local.read(params)
          }).pipe(Effect.ensuring(Effect.sync(() => void inside--)))
      })
      const { url } = yield* Effect.provideService(
        WebSocketListener.listen({ maxConcurrentRequests: 3, maxQueuedRequests: 7 }),
        Executor,
        counting
      )
      const { client: busy, sessionId } = yield* client(url)
      yield* busy.call("process/start", startParams("quiet", ["sleep", "60"]))
      const reads = Array.from(
        { length: 10 },
        (_, i) =>
          request(`r${i}`, "process/read", { processId: "quiet", afterSeq: 0, maxBytes: null, waitMs: 3_600_000 })
      )
      yield* busy.sendAll(reads)
      // the eleventh is refused: the server holds all ten, 3 running and 7 waiting
      const refused = yield* busy.request("process/read", { processId: "quiet" }, { id: "eleventh" })
      assert.strictEqual(refused.error?.code, ErrorCode.limitExceeded, JSON.stringify(refused))
      assert.match(refused.error!.message, /\(10\)/)
      yield* pollUntil("3 reads inside the executor", () => inside >= 3)
      assert.deepStrictEqual(replies(busy).filter((frame) => String(frame.id).startsWith("r")), [])
      // the exit answers the running reads, and each waiting one runs (and answers) in its turn
      const before = replies(busy).length
      yield* local.terminate(`${sessionId}/quiet`)
      yield* awaitReplies(busy, before + 10)
      const answered = replies(busy).filter((frame) => String(frame.id).startsWith("r"))
      assert.deepStrictEqual(answered.map((frame) => frame.result?.exited), Array.from({ length: 10 }, () => true))
      assert.strictEqual(most, 3, "never more than 3 at once")
    }))

  it.live(
    "refuses requests beyond maxConcurrentRequests + maxQueuedRequests with -32000, and answers each once",
    () =>
      Effect.gen(function*() {
        const { url } = yield* server({ maxConcurrentRequests: 8, maxQueuedRequests: 100 })
        const { client: flooder } = yield* client(url)
        yield* flooder.call("process/start", startParams("quiet", ["sleep", "30"]))
        // long polls that each hold a turn for 100 ms, interleaved with quick ones
        const frames = Array.from({ length: floodSize }, (_, i) =>
          i % 2 === 0
            ? request(idOf(i), "process/read", { processId: "quiet", afterSeq: 0, maxBytes: null, waitMs: 100 })
            : request(idOf(i), "process/read", { processId: `ghost-${i}` }))
        const before = replies(flooder).length
        yield* flooder.sendAll(frames)
        yield* awaitReplies(flooder, before + floodSize, 15_000)
        const byId = new Map<string | number, Array<Frame>>()
        for (const frame of replies(flooder)) byId.set(frame.id!, [...(byId.get(frame.id!) ?? []), frame])
        let refused = 0
        let served = 0
        for (let i = 0; i < floodSize; i++) {
          const got = byId.get(idOf(i))
          assert.strictEqual(got?.length, 1, `request ${idOf(i)} got ${got?.length ?? 0} replies`)
          const frame = got![0]!
          if (frame.error?.code === -32000) {
            refused++
            assert.match(
              frame.error.message,
              /^too many requests in flight on this connection \(108\); /,
              "refused at 8 running + 100 waiting"
            )
            assert.deepStrictEqual(frame.error.data, { limit: "requests" })
          } else {
            served++
            if (i % 2 === 0) assert.strictEqual(frame.result.exited, false)
            else {assert.deepStrictEqual(codexShape(frame.error), {
                code: -32600,
                message: `unknown process id ghost-${i}`
              })}
          }
        }
        assert.isAbove(refused, 0, "some requests were refused")
        assert.isAtLeast(served, 108, "the first 108 at least were served")
        // the queue drained: the same connection is served again
        yield* assertUsable(flooder)
        const read = yield* flooder.call("process/read", { processId: "quiet", afterSeq: 0, maxBytes: null, waitMs: 0 })
        assert.strictEqual(read.exited, false)
        yield* assertUnharmed(url)
      }),
    20_000
  )
})

// =============================================================================
// 4. Too many processes
// =============================================================================

describe("ExecServer against hostile clients: process limits", () => {
  const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

  const outcome = (results: Map<string, Frame>) => {
    const ok = [...results].filter(([, frame]) => frame.error === undefined).map(([id]) => id)
    const refused = [...results].filter(([, frame]) => frame.error !== undefined).map(([, frame]) => frame.error!)
    return { ok, refused }
  }

  it.live("refuses starts beyond maxProcessesPerSession with -32000, and accepts again once some close", () =>
    Effect.gen(function*() {
      const pids: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const { url } = yield* server({ maxProcessesPerSession: 50 })
        const { client: greedy } = yield* client(url)
        const { ok, refused } = outcome(yield* startAll(greedy, ids("p", 60)))
        assert.strictEqual(ok.length, 50)
        assert.strictEqual(refused.length, 10)
        for (const error of refused) {
          assert.strictEqual(error.code, -32000)
          assert.match(error.message, /^too many processes: this session already runs 50 \(the limit\)/)
          assert.deepStrictEqual(error.data, { limit: "processesPerSession" }, "which limit, for a client to ask again")
        }
        for (const id of [ok[0]!, ok[1]!, ok[2]!, ok[49]!]) pids.push(yield* pidOf(greedy, id))
        for (const pid of pids) assert.isTrue(isAlive(pid))
        // a refused start registered nothing
        const refusedId = ids("p", 60).find((id) => !ok.includes(id))!
        assert.strictEqual((yield* greedy.callError("process/read", { processId: refusedId })).code, -32600)
        // another session has its own budget
        yield* assertUnharmed(url)
        // terminate three: three starts succeed again, the fourth is refused
        for (const id of ok.slice(0, 3)) {
          assert.deepStrictEqual(yield* greedy.call("process/terminate", { processId: id }), { running: true })
          yield* greedy.notification("process/closed", id)
        }
        yield* awaitDeath(pids[0]!, 3_000)
        const again = outcome(yield* startAll(greedy, ids("q", 4)))
        assert.strictEqual(again.ok.length, 3, JSON.stringify(again.refused))
        assert.strictEqual(again.refused.length, 1)
        assert.match(again.refused[0]!.message, /^too many processes: this session already runs 50 \(the limit\)/)
        pids.push(yield* pidOf(greedy, again.ok[0]!))
        // processes that exit by themselves free their slot too
        yield* greedy.call("process/terminate", { processId: again.ok[0]! })
        yield* greedy.notification("process/closed", again.ok[0]!)
        yield* greedy.call("process/start", startParams("short", ["true"]))
        yield* greedy.notification("process/closed", "short")
        yield* greedy.call("process/start", startParams("short2", ["true"]))
        yield* greedy.notification("process/closed", "short2")
        yield* greedy.call("process/start", sleeper("last"))
        pids.push(yield* pidOf(greedy, "last"))
        yield* assertUnharmed(url)
      }))
      // closing the server's scope killed every process
      for (const pid of pids) yield* awaitDeath(pid, 3_000)
    }))

  it.live("does not keep the slot of a start that failed", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxProcessesPerSession: 2, maxProcesses: 3 })
      const { client: clumsy } = yield* client(url)
      yield* clumsy.call("process/start", sleeper("one"))
      const pid = yield* pidOf(clumsy, "one")
      for (let i = 0; i < 10; i++) {
        // the id is taken
        assert.strictEqual((yield* clumsy.callError("process/start", sleeper("one"))).code, -32600)
        // the program does not exist
        assert.strictEqual(
          (yield* clumsy.callError("process/start", startParams(`missing${i}`, ["/nonexistent/command"]))).code,
          -32603
        )
        // the params are wrong
        assert.strictEqual(
          (yield* clumsy.callError("process/start", startParams(`bad${i}`, ["true"], { tty: 1 }))).code,
          -32602
        )
      }
      // both slots of the session, and the server's, are still there
      yield* clumsy.call("process/start", sleeper("two"))
      const refused = yield* clumsy.callError("process/start", sleeper("three"))
      assert.match(refused.message, /^too many processes: this session already runs 2 \(the limit\)/)
      yield* assertUnharmed(url)
      assert.isTrue(isAlive(pid))
    }))

  it.live("refuses starts beyond maxProcesses over all sessions with -32000", () =>
    Effect.gen(function*() {
      const pids: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const { url } = yield* server({ maxProcesses: 70 })
        const { client: a } = yield* client(url)
        const { client: b } = yield* client(url)
        const fromA = outcome(yield* startAll(a, ids("a", 50)))
        assert.strictEqual(fromA.ok.length, 50)
        const fromB = outcome(yield* startAll(b, ids("b", 30)))
        assert.strictEqual(fromB.ok.length, 20)
        assert.strictEqual(fromB.refused.length, 10)
        for (const error of fromB.refused) {
          assert.strictEqual(error.code, -32000)
          assert.match(error.message, /^too many processes: this server already runs 70 \(the limit\)/)
          assert.deepStrictEqual(error.data, { limit: "processes" })
        }
        pids.push(
          yield* pidOf(a, "a0"),
          yield* pidOf(a, "a49"),
          yield* pidOf(b, fromB.ok[0]!),
          yield* pidOf(b, fromB.ok[19]!)
        )
        // the server is full: a new session is refused too
        const { client: c } = yield* client(url)
        const full = yield* c.callError("process/start", startParams("c0", ["true"]))
        assert.strictEqual(full.code, -32000)
        assert.match(full.message, /^too many processes: this server already runs 70/)
        // A frees two slots; B gets them
        for (const id of ["a1", "a2"]) {
          yield* a.call("process/terminate", { processId: id })
          yield* a.notification("process/closed", id)
        }
        const again = outcome(yield* startAll(b, ids("b-again", 3)))
        assert.strictEqual(again.ok.length, 2, JSON.stringify(again.refused))
        assert.match(again.refused[0]!.message, /^too many processes: this server already runs 70/)
        // a disconnect does not free slots while the session may resume
        yield* a.close
        const stillFull = yield* c.callError("process/start", startParams("c1", ["true"]))
        assert.strictEqual(stillFull.code, -32000)
        // make room for the unharmed check
        yield* b.call("process/terminate", { processId: fromB.ok[0]! })
        yield* b.notification("process/closed", fromB.ok[0]!)
        yield* assertUnharmed(url)
      }))
      for (const pid of pids) yield* awaitDeath(pid, 3_000)
    }))
})

// =============================================================================
// 5. and 6. Garbage and stray responses
// =============================================================================

describe("ExecServer against hostile clients: sessions", () => {
  it.live("refuses sessions beyond maxSessions with -32000 when all are attached", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxSessions: 2 })
      for (let i = 0; i < 2; i++) yield* handshake(yield* connect(url))
      const third = yield* connect(url)
      const refused = yield* third.callError("initialize", { clientName: "third" })
      assert.strictEqual(refused.code, -32000)
      assert.match(refused.message, /^too many sessions: this server keeps 2 attached \(the limit\)/)
    }))

  it.live("ends the oldest detached session, with its processes, when a new client needs its slot", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxSessions: 3, sessionTtl: "1 hour" })
      // two sessions with a process each go away (detached, resumable for an hour); a third stays attached
      const gone: Array<{ sessionId: string; pid: number }> = []
      for (const name of ["oldest", "younger"]) {
        const { client: leaving, sessionId } = yield* client(url)
        yield* leaving.call("process/start", sleeper(name))
        gone.push({ sessionId, pid: yield* pidOf(leaving, name) })
        yield* leaving.close
      }
      const { client: staying } = yield* client(url)
      yield* staying.call("process/start", sleeper("stays"))
      const stayingPid = yield* pidOf(staying, "stays")
      // a new client gets the oldest detached session's slot: that session ends as at its TTL
      yield* assertUnharmed(url)
      yield* awaitDeath(gone[0]!.pid, 3_000)
      assert.isTrue(isAlive(gone[1]!.pid), "the younger detached session keeps its process")
      assert.isTrue(isAlive(stayingPid), "an attached session is never ended for a newcomer")
      const expired = yield* connect(url)
      const unknown = yield* expired.callError("initialize", {
        clientName: "back",
        resumeSessionId: gone[0]!.sessionId
      })
      assert.strictEqual(unknown.message, `unknown session id ${gone[0]!.sessionId}`)
      // the younger one can still be resumed, and gives way next only when it is the oldest detached
      const back = yield* connect(url)
      const resumed = yield* back.call("initialize", { clientName: "back", resumeSessionId: gone[1]!.sessionId })
      assert.strictEqual(resumed.sessionId, gone[1]!.sessionId)
      yield* back.notify("initialized", {})
      assert.strictEqual(
        (yield* back.call("process/read", { processId: "younger", afterSeq: 0, waitMs: 0 })).exited,
        false
      )
    }))

  it.live("a client that reconnects in a loop cannot lock others out", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxSessions: 8, sessionTtl: "1 hour" })
      // each round takes a session and leaves it detached, far faster than any TTL
      for (let round = 0; round < 40; round++) {
        const churner = yield* connect(url)
        yield* handshake(churner)
        yield* churner.close
      }
      yield* assertUnharmed(url)
    }))

  it.live("limits the sessions attached from one address; other addresses are served", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxSessionsPerAddress: 3 })
      const hog = { localAddress: "127.0.0.2" }
      const first = yield* connect(url, hog)
      yield* handshake(first)
      for (let i = 0; i < 2; i++) yield* handshake(yield* connect(url, hog))
      const fourth = yield* connect(url, hog)
      const refused = yield* fourth.callError("initialize", { clientName: "fourth" })
      assert.strictEqual(refused.code, -32000)
      assert.strictEqual(
        refused.message,
        "too many sessions from 127.0.0.2: 3 attached (the limit per address); close some first"
      )
      yield* assertUnharmed(url)
      // a closed connection frees its address's share: the refused initialize may be sent again
      yield* first.close
      let answer = yield* fourth.request("initialize", { clientName: "fourth" })
      for (let tries = 0; answer.error !== undefined && tries < 250; tries++) {
        yield* Effect.sleep(20)
        answer = yield* fourth.request("initialize", { clientName: "fourth" })
      }
      assert.isUndefined(answer.error, JSON.stringify(answer.error))
      yield* fourth.notify("initialized", {})
      yield* assertUsable(fourth)
    }))
})

describe("ExecServer against hostile clients: connections", () => {
  /** Opens `count` WebSocket connections from `addresses` in turn (a few at a time), each left idle. */
  const openIdle = (url: string, count: number, addresses: ReadonlyArray<string>, initialize: (i: number) => boolean) =>
    Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.gen(function*() {
          const idle = yield* connect(url, { localAddress: addresses[i % addresses.length]!, timeoutMs: 20_000 })
          if (initialize(i)) yield* handshake(idle)
          return idle
        }),
      { concurrency: 50 }
    )

  it.live("answers a newcomer while 2 000 idle connections sit open", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const addresses = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`)
      // 2 000 connections from 8 addresses (within the per-address default), a quarter of them with a session
      const idle = yield* openIdle(url, 2_000, addresses, (i) => i % 4 === 0)
      assert.strictEqual(idle.filter((connection) => connection.closeInfo() === undefined).length, 2_000)
      yield* assertUnharmed(url)
      // and the idle ones are still served when they wake up
      yield* assertUsable(idle[0]!)
      yield* assertUsable(idle[1_999]!)
    }), 60_000)

  it.live("answers 503 to connections past maxConnectionsPerAddress; other addresses are served", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxConnectionsPerAddress: 20 })
      const hog = "127.0.0.3"
      const open = yield* openIdle(url, 20, [hog], () => false)
      assert.strictEqual(yield* refusedStatus(url, { localAddress: hog }), 503)
      yield* assertUnharmed(url)
      // a closed connection frees its address's share
      yield* open[0]!.close
      let again = yield* Effect.exit(connect(url, { localAddress: hog }))
      // up to 10 s or so: the server sees the close when a busy machine lets it
      for (let tries = 0; again._tag === "Failure" && tries < 500; tries++) {
        yield* Effect.sleep(20)
        again = yield* Effect.exit(connect(url, { localAddress: hog }))
      }
      assert.strictEqual(again._tag, "Success")
      if (again._tag === "Success") yield* assertUsable(again.value)
    }))

  it.live("answers 503 to a raw TCP client past the limit before it sends anything", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxConnectionsPerAddress: 2 })
      const { hostname, port } = new URL(url)
      const silent = yield* Effect.acquireRelease(
        Effect.sync(() =>
          [0, 1].map(() => {
            const socket = Net.connect({ port: Number(port), host: hostname, localAddress: "127.0.0.4" })
            socket.on("error", () => {})
            return socket
          })
        ),
        (sockets) => Effect.sync(() => sockets.forEach((socket) => socket.destroy()))
      )
      yield* pollUntil("both silent sockets connected", () => silent.every((socket) => socket.readyState === "open"))
      const answer = yield* Effect.callback<string>((resume) => {
        const third = Net.connect({ port: Number(port), host: hostname, localAddress: "127.0.0.4" })
        let text = ""
        third.on("data", (chunk) => (text += chunk.toString("latin1")))
        third.on("error", () => {})
        third.on("close", () => resume(Effect.succeed(text)))
      })
      assert.match(answer, /^HTTP\/1\.1 503 /)
      yield* assertUnharmed(url)
    }))
})

describe("ExecServer against hostile clients: garbage", () => {
  it.live("answers binary garbage frames with id -1 and -32600, and keeps the connection open", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const frames = Array.from(
        { length: 20 },
        (_, i) => Buffer.concat([Buffer.from([0xff, i]), randomBytes(64 + i * 512)])
      )
      frames.push(Buffer.alloc(0), Buffer.from([0]), Buffer.from([0xc3, 0x28]), Buffer.from("\u0000{\"id\":1}"))
      const before = hostile.received.length
      yield* hostile.sendAll(frames, { binary: true })
      yield* pollUntil(
        `${frames.length} answers with id -1`,
        () => hostile.received.filter((r) => r.frame.id === -1).length === frames.length
      )
      for (const { frame } of hostile.received.slice(before)) {
        assert.strictEqual(frame.id, -1)
        assert.strictEqual(frame.error?.code, -32600)
        assert.match(frame.error!.message, /^failed to parse JSON-RPC message/)
      }
      // text garbage too, including a lone UTF-16 surrogate, and ids that are no string or integer
      const text = [
        "\ud800\udfff\ud800",
        "null",
        "{",
        "}{",
        "[]",
        "\"\"",
        "1e999999",
        "{\"id\":1.5,\"method\":\"process/read\"}",
        "{\"id\":true,\"method\":\"process/read\"}",
        "{\"id\":{},\"method\":\"process/read\"}",
        "{\"id\":1e400,\"method\":\"process/read\"}",
        "{\"id\":1,\"method\":5}",
        "{\"id\":1,\"method\":null}",
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"process/read\"}",
        "{\"id\":2}"
      ]
      yield* hostile.sendAll(text)
      yield* pollUntil(
        `${text.length} more answers`,
        () => hostile.received.filter((r) => r.frame.id === -1).length === frames.length + text.length
      )
      for (const { frame } of hostile.received.slice(before)) assert.strictEqual(frame.id, -1, JSON.stringify(frame))
      yield* assertUsable(hostile)
      yield* assertUnharmed(url)
    }))

  it.live("does not answer responses or errors sent by the client", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const before = hostile.received.length
      yield* hostile.sendAll([
        JSON.stringify({ id: 5, result: {} }),
        JSON.stringify({ id: 6, error: { code: 1, message: "x" } }),
        JSON.stringify({ jsonrpc: "2.0", id: "seven", result: 0 }),
        JSON.stringify({ id: 8, error: { code: -32600, message: "y", data: { nested: [1, 2, 3] } } })
      ])
      const answer = yield* hostile.request("no/such-method", {}, { id: "probe" })
      assert.strictEqual(answer.error?.code, -32601)
      yield* Effect.sleep(100)
      assert.deepStrictEqual(
        hostile.received.slice(before).map((r) => r.frame.id),
        ["probe"],
        "only the probe was answered"
      )
      yield* assertUsable(hostile)
      // a response with both result and error is no valid message
      yield* hostile.sendRaw(JSON.stringify({ id: 9, result: {}, error: { code: 1, message: "x" } }))
      const invalid = yield* hostile.waitFor("the -32600 answer", (frame) => frame.id === -1)
      assert.strictEqual(invalid.error?.code, -32600)
      yield* assertUnharmed(url)
    }))
})

// =============================================================================
// 7. Wrong types in every field
// =============================================================================

describe("ExecServer against hostile clients: wrong types", () => {
  it.live("answers a wrong type in every field with -32602 naming the field", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const policy = { inherit: "none", ignoreDefaultExcludes: false, exclude: [], set: {}, includeOnly: [] }
      const start = (extra: Record<string, unknown>) => startParams("typed", ["true"], extra)
      const cases: ReadonlyArray<readonly [string, string, unknown]> = [
        ["process/start", "processId", start({ processId: 5 })],
        ["process/start", "processId", start({ processId: null })],
        ["process/start", "processId", start({ processId: "" })],
        ["process/start", "argv", start({ argv: "true" })],
        ["process/start", "argv", start({ argv: [1, 2] })],
        ["process/start", "argv", start({ argv: null })],
        ["process/start", "cwd", start({ cwd: 7 })],
        ["process/start", "cwd", start({ cwd: ["/tmp"] })],
        ["process/start", "cwd", start({ cwd: "relative" })],
        ["process/start", "env", start({ env: ["PATH=/bin"] })],
        ["process/start", "env", start({ env: "PATH=/bin" })],
        ["process/start", "env", start({ env: { FOO: 1 } })],
        ["process/start", "env", start({ env: { FOO: null } })],
        ["process/start", "tty", start({ tty: "false" })],
        ["process/start", "tty", start({ tty: 0 })],
        ["process/start", "pipeStdin", start({ pipeStdin: "yes" })],
        ["process/start", "arg0", start({ arg0: 0 })],
        ["process/start", "arg0", start({ arg0: ["sh"] })],
        ["process/start", "envPolicy", start({ envPolicy: "all" })],
        ["process/start", "envPolicy", start({ envPolicy: [] })],
        ["process/start", "inherit", start({ envPolicy: { ...policy, inherit: "some" } })],
        ["process/start", "inherit", start({ envPolicy: { ...policy, inherit: 1 } })],
        ["process/start", "ignoreDefaultExcludes", start({ envPolicy: { ...policy, ignoreDefaultExcludes: "no" } })],
        ["process/start", "exclude", start({ envPolicy: { ...policy, exclude: "PATH" } })],
        ["process/start", "exclude", start({ envPolicy: { ...policy, exclude: [1] } })],
        ["process/start", "set", start({ envPolicy: { ...policy, set: [] } })],
        ["process/start", "set", start({ envPolicy: { ...policy, set: { A: 1 } } })],
        ["process/start", "includeOnly", start({ envPolicy: { ...policy, includeOnly: {} } })],
        ["process/start", "includeOnly", start({ envPolicy: { ...policy, includeOnly: [null] } })],
        ["process/start", "backpressure", start({ backpressure: "on" })],
        ["process/start", "outputNotifications", start({ outputNotifications: 0 })],
        ["process/read", "processId", { processId: 1 }],
        ["process/read", "processId", {}],
        ["process/read", "afterSeq", { processId: "typed", afterSeq: "0" }],
        ["process/read", "afterSeq", { processId: "typed", afterSeq: -1 }],
        ["process/read", "afterSeq", { processId: "typed", afterSeq: 1.5 }],
        ["process/read", "maxBytes", { processId: "typed", maxBytes: "all" }],
        ["process/read", "maxBytes", { processId: "typed", maxBytes: -1 }],
        ["process/read", "waitMs", { processId: "typed", waitMs: true }],
        ["process/read", "waitMs", { processId: "typed", waitMs: 0.5 }],
        ["process/write", "processId", { processId: [], chunk: "aGk=" }],
        ["process/write", "chunk", { processId: "typed", chunk: 5 }],
        ["process/write", "chunk", { processId: "typed", chunk: "not base64!" }],
        ["process/write", "chunk", { processId: "typed" }],
        ["process/write", "writeId", { processId: "typed", chunk: "aGk=", writeId: 3 }],
        ["process/terminate", "processId", { processId: 7 }],
        ["process/terminate", "processId", { processId: { id: "typed" } }],
        ["process/terminate", "processId", {}]
      ]
      for (const [method, field, params] of cases) {
        const label = `${method} ${field} = ${JSON.stringify(params)}`
        const error = yield* hostile.callError(method, params)
        assert.strictEqual(error.code, -32602, label)
        assert.include(error.message, field, `${label}: ${error.message}`)
      }
      // params that are no object at all
      for (const params of [null, 5, "x", [], true]) {
        for (const method of ["process/start", "process/read", "process/write", "process/terminate"]) {
          const error = yield* hostile.callError(method, params)
          assert.strictEqual(error.code, -32602, `${method} with params ${JSON.stringify(params)}`)
        }
      }
      // nothing was started by any of it
      assert.strictEqual((yield* hostile.callError("process/read", { processId: "typed" })).code, -32600)
      yield* assertUsable(hostile)
      yield* assertUnharmed(url)
    }))
})

// =============================================================================
// 8. A client that never reads
// =============================================================================

describe("ExecServer against hostile clients: a client that never reads", () => {
  /** The net.Socket under a `ws` WebSocket. */
  const tcp = (client: WireClient): Net.Socket => (client.socket as unknown as { _socket: Net.Socket })._socket

  /**
   * On a server that lets one address attach one session, waits (by asking,
   * not by time) until the server dropped this address's other connection: a
   * new client's `initialize` is refused while that session is attached.
   * Returns the new client, its handshake done.
   */
  const clientOnceDropped = (url: string) =>
    Effect.gen(function*() {
      for (let attempt = 0; attempt < 500; attempt++) {
        const probe = yield* connect(url)
        yield* probe.send("initialize", { clientName: "probe" }, { id: "init" })
        const answer = yield* probe.reply("init")
        if (answer.error === undefined) {
          yield* probe.notify("initialized", {})
          return probe
        }
        assert.strictEqual(answer.error.code, ErrorCode.limitExceeded, JSON.stringify(answer.error))
        yield* probe.close
        yield* Effect.sleep(20)
      }
      return assert.fail("the server never dropped the client that does not read")
    })

  it.live("drops a connection that leaves more than maxBufferedBytes unread", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxBufferedBytes: 4 * 1024 * 1024, maxSessionsPerAddress: 1 })
      const { client: sluggard } = yield* client(url, { timeoutMs: 10_000 })
      yield* sluggard.call("process/start", startParams("big", ["head", "-c", "2097152", "/dev/zero"]))
      yield* sluggard.notification("process/closed", "big", undefined, 10_000)
      tcp(sluggard).pause()
      const reads = 100
      yield* sluggard.sendAll(
        Array.from({ length: reads }, (_, i) =>
          request(`r${i}`, "process/read", { processId: "big", afterSeq: 0, maxBytes: null, waitMs: 0 }))
      )
      // the server answers into the void until it drops the connection; then read what got through
      const next = yield* clientOnceDropped(url)
      tcp(sluggard).resume()
      const closed = yield* sluggard.closedWithin(5_000)
      assert.strictEqual(closed.code, 1006, "terminated, without a close frame")
      const answered = replies(sluggard).filter((frame) =>
        String(frame.id).startsWith("r")
      ).length
      assert.isBelow(answered, reads, `the server stopped answering (${answered} answers got through)`)
      yield* assertServes(next)
    }))

  it.live("drops a paused client that asks one read at a time, each answer well under the limit", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxBufferedBytes: 4 * 1024 * 1024, maxSessionsPerAddress: 1 })
      const { client: sluggard } = yield* client(url, { timeoutMs: 10_000 })
      yield* sluggard.call(
        "process/start",
        startParams("big", ["head", "-c", "1048576", "/dev/zero"], { outputNotifications: false })
      )
      yield* sluggard.notification("process/closed", "big", undefined, 10_000)
      tcp(sluggard).pause()
      const reads = 40
      for (let i = 0; i < reads; i++) {
        // not awaited: once the server dropped the link, writes may fail
        sluggard.socket.send(
          request(`r${i}`, "process/read", { processId: "big", afterSeq: 0, maxBytes: null, waitMs: 0 }),
          () => {}
        )
        yield* Effect.sleep(20)
      }
      const next = yield* clientOnceDropped(url)
      tcp(sluggard).resume()
      const closed = yield* sluggard.closedWithin(5_000)
      assert.strictEqual(closed.code, 1006)
      const answered = replies(sluggard).filter((frame) => String(frame.id).startsWith("r")).length
      assert.isBelow(answered, reads, `the server stopped answering (${answered} answers got through)`)
      yield* assertServes(next)
    }))

  it.live("drops a client that takes nothing from its socket for the stall timeout, under the byte limit", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ stallTimeout: "500 millis", maxSessionsPerAddress: 1 })
      const { client: sluggard } = yield* client(url, { timeoutMs: 10_000 })
      yield* sluggard.call(
        "process/start",
        startParams("big", ["head", "-c", "4194304", "/dev/zero"], { outputNotifications: false })
      )
      yield* sluggard.notification("process/closed", "big", undefined, 10_000)
      tcp(sluggard).pause()
      yield* sluggard.sendAll(
        Array.from(
          { length: 8 },
          (_, i) => request(`s${i}`, "process/read", { processId: "big", afterSeq: 0, maxBytes: null, waitMs: 0 })
        )
      )
      // well under the default 128 MiB, but nothing is taken: the stall timeout ends it. Waited for by asking (the
      // answers take a loaded server a while to make before they stall), not for a while: resumed too early, the
      // client would take them and never stall
      const next = yield* clientOnceDropped(url)
      tcp(sluggard).resume()
      const closed = yield* sluggard.closedWithin(5_000)
      assert.strictEqual(closed.code, 1006)
      yield* assertServes(next)
    }))

  it.live("does not drop a client that reads as fast as it asks", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ maxBufferedBytes: 4 * 1024 * 1024 })
      const { client: reader } = yield* client(url, { timeoutMs: 10_000 })
      yield* reader.call("process/start", startParams("big", ["head", "-c", "2097152", "/dev/zero"]))
      yield* reader.notification("process/closed", "big", undefined, 10_000)
      for (let i = 0; i < 20; i++) {
        const result = yield* reader.call("process/read", { processId: "big", afterSeq: 0, maxBytes: null, waitMs: 0 })
        assert.isTrue(result.closed)
      }
      yield* assertUsable(reader)
      yield* assertUnharmed(url)
    }))

  // BUG (documented here, fails today): the server drops a client that reads
  // everything promptly. Replies are queued as soon as each request is handled
  // (the request's turn ends before its reply is written, src/ExecServer.ts:409),
  // and the transport drops the link the moment more than maxBufferedBytes is
  // queued (src/JsonRpc.ts:160), however fast the peer drains it. 64 reads (the
  // default maxConcurrentRequests) of 1 MiB retained output are ~90 MB of JSON,
  // more than the default 64 MiB: a burst any client may send, not a client that
  // "does not read". Reproduced with client and server in separate processes too.
  it.live(
    "does not drop a client that reads promptly but asks for 64 x 1 MiB at once (default limits)",
    () =>
      Effect.gen(function*() {
        const { url } = yield* server()
        const { client: eager } = yield* client(url, { timeoutMs: 60_000 })
        const processes = 64
        const ids = Array.from({ length: processes }, (_, i) => `big${i}`)
        yield* eager.sendAll(
          ids.map((id) =>
            request(
              `start:${id}`,
              "process/start",
              startParams(id, ["head", "-c", "1048576", "/dev/zero"], { outputNotifications: false })
            )
          )
        )
        for (const id of ids) assert.isUndefined((yield* eager.reply(`start:${id}`)).error)
        for (const id of ids) yield* eager.notification("process/closed", id, undefined, 60_000)
        const before = replies(eager).length
        yield* eager.sendAll(
          ids.map((id) =>
            request(`read:${id}`, "process/read", { processId: id, afterSeq: 0, maxBytes: null, waitMs: 0 })
          )
        )
        yield* pollUntil(
          "every read answered, or the connection dropped",
          () => replies(eager).length === before + processes || eager.closeInfo() !== undefined,
          // 88 MB of JSON: a second or two alone, much longer on a machine at load 16
          90_000
        )
        assert.isUndefined(
          eager.closeInfo(),
          `the server dropped the connection after ${replies(eager).length - before} of ${processes} answers`
        )
        for (const id of ids) {
          const read = (yield* eager.reply(`read:${id}`)).result
          assert.strictEqual(
            read.chunks.reduce((n: number, c: any) => n + Buffer.from(c.chunk, "base64").length, 0),
            1048576
          )
        }
        yield* assertUnharmed(url)
      }),
    150_000
  )
})

// =============================================================================
// 9. argv is never a shell string
// =============================================================================

describe("ExecServer against hostile clients: shell metacharacters", () => {
  const scratch = Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "hostile-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

  it.live("runs argv as given, never through a shell", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const marker1 = join(dir, "marker1")
      const marker2 = join(dir, "marker2")
      const marker3 = join(dir, "marker3")
      const literal = `$(touch ${marker1}); rm -rf nothing \`touch ${marker3}\` && touch ${marker3} | x > y`
      yield* hostile.call("process/start", startParams("printf", ["printf", "%s", literal]))
      const printed = yield* readAll(hostile, "printf")
      assert.strictEqual(printed.text, literal)
      assert.strictEqual(printed.last.exitCode, 0)
      const injection = `; touch ${marker2}`
      yield* hostile.call("process/start", startParams("positional", ["sh", "-c", "printf %s \"$1\"", "x", injection]))
      const positional = yield* readAll(hostile, "positional")
      assert.strictEqual(positional.text, injection)
      // metacharacters in cwd and env values are data too
      yield* hostile.call(
        "process/start",
        startParams("env", ["sh", "-c", "printf %s \"$EVIL\""], {
          env: { EVIL: `$(touch ${marker1})`, PATH: process.env.PATH }
        })
      )
      assert.strictEqual((yield* readAll(hostile, "env")).text, `$(touch ${marker1})`)
      assert.isFalse(existsSync(marker1), "no command substitution ran")
      assert.isFalse(existsSync(marker2), "no injected command ran")
      assert.isFalse(existsSync(marker3), "no backquotes ran")
      // a program name with metacharacters is a (missing) file name, not a command line
      const missing = yield* hostile.request("process/start", startParams("name", [`true; touch ${marker1}`]))
      if (missing.error === undefined) yield* readAll(hostile, "name")
      assert.isFalse(existsSync(marker1), "the program name was not split")
      yield* assertUnharmed(url)
    }))
})

// =============================================================================
// 10. Bounded work per request
// =============================================================================

describe("ExecServer against hostile clients: work per request", () => {
  const policy = { inherit: "none", ignoreDefaultExcludes: true, exclude: [], set: {}, includeOnly: [] }

  it.live("answers a start whose env globs would backtrack for hours, and serves a bystander meanwhile", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      // thirteen `*a` and a `*b`: a backtracking matcher takes seconds on 30 a's, hours on 40
      const pattern = "*a".repeat(13) + "*b"
      const set = Object.fromEntries(Array.from({ length: 32 }, (_, i) => ["a".repeat(30 + i), "x"]))
      const [started] = yield* Effect.all([
        hostile.call(
          "process/start",
          startParams("globs", ["sh", "-c", "env | grep -c '^aaa'"], {
            envPolicy: { ...policy, exclude: [pattern], set, includeOnly: [pattern, "A*", "PATH"] }
          })
        ),
        assertUnharmed(url)
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual(started, { processId: "globs", sandboxType: "none" })
      // every a… name matched A* (case-insensitively) and none the pattern (no b): all 32 are there
      assert.strictEqual((yield* readAll(hostile, "globs")).text, "32\n")
    }))

  it.live("refuses a start over exec's limits or the glob bounds with -32602, before anything runs", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const KiB = 1024
      const cases: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
        ["a long argument", { argv: ["echo", "x".repeat(200 * KiB)] }, "argv[1] is 204801 bytes: longer than exec"],
        [
          "a long variable",
          { env: { BIG: "x".repeat(200 * KiB) } },
          "env \"BIG\" is 204805 bytes: longer than exec accepts (131072)"
        ],
        [
          "an environment over ARG_MAX",
          { env: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`V${i}`, "x".repeat(120 * KiB)])) },
          "more than exec accepts (2097152, argument list too long)"
        ],
        [
          "set over ARG_MAX",
          {
            envPolicy: {
              ...policy,
              set: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`V${i}`, "x".repeat(120 * KiB)]))
            }
          },
          "argument list too long"
        ],
        [
          "65 patterns",
          { envPolicy: { ...policy, exclude: Array.from({ length: 65 }, (_, i) => `P${i}*`) } },
          "envPolicy.exclude has 65 patterns: at most 64"
        ],
        [
          "1025 characters of patterns",
          { envPolicy: { ...policy, includeOnly: ["*a".repeat(512) + "b"] } },
          "envPolicy.includeOnly has 1025 characters of patterns: at most 1024"
        ]
      ]
      for (const tty of [false, true]) {
        for (const [label, extra, message] of cases) {
          const processId = `${label}-${tty}`
          const error = yield* hostile.callError("process/start", startParams(processId, ["true"], { tty, ...extra }))
          assert.strictEqual(error.code, -32602, `${label}: ${error.message.slice(0, 200)}`)
          assert.include(error.message, message, label)
          assert.isBelow(error.message.length, 1_000, `${label}: the message does not echo the value`)
          assert.strictEqual((yield* hostile.callError("process/read", { processId })).code, -32600, "nothing started")
        }
      }
      yield* assertUnharmed(url)
    }))

  it.live("refuses a NUL byte in cwd, argv, env or arg0 with -32602, never a dead request", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const { client: hostile } = yield* client(url)
      const cases: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
        ["cwd", { cwd: "/tmp/a\u0000b" }, "cwd contains a NUL byte"],
        ["cwd as a URI", { cwd: "file:///tmp/a%00b" }, "cwd contains a NUL byte"],
        ["argv", { argv: ["echo", "a\u0000b"] }, "argv[1] contains a NUL byte"],
        ["program", { argv: ["ec\u0000ho"] }, "argv[0] contains a NUL byte"],
        ["env name", { env: { "A\u0000B": "x" } }, "contains a NUL byte"],
        ["env value", { env: { A: "x\u0000y" } }, "env \"A\" contains a NUL byte"],
        ["set value", { envPolicy: { ...policy, set: { A: "\u0000" } } }, "envPolicy.set \"A\" contains a NUL byte"],
        ["arg0", { arg0: "s\u0000h" }, "arg0 contains a NUL byte"]
      ]
      for (const tty of [false, true]) {
        for (const [label, extra, message] of cases) {
          const processId = `nul-${label}-${tty}`
          const answer = yield* hostile.request("process/start", startParams(processId, ["true"], { tty, ...extra }))
          assert.strictEqual(answer.error?.code, -32602, `${label} (tty ${tty}): ${JSON.stringify(answer)}`)
          assert.include(answer.error!.message, message, label)
        }
      }
      yield* assertUsable(hostile)
      yield* assertUnharmed(url)
    }))
})

// =============================================================================
// 11. Memory bounded in bytes
// =============================================================================

describe("ExecServer against hostile clients: bytes held", () => {
  const MiB = 1024 * 1024
  const scratch = Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "hostile-bytes-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

  /** The state letter of a process in /proc (`T` when stopped). */
  const stateOf = (pid: number) => {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
  }

  /** Collects this process's warnings (MaxListenersExceededWarning among them) while the scope is open. */
  const warnings = Effect.acquireRelease(
    Effect.sync(() => {
      const seen: Array<string> = []
      const listener = (warning: Error) => seen.push(`${warning.name}: ${warning.message}`)
      process.on("warning", listener)
      return { seen, listener }
    }),
    ({ listener }) => Effect.sync(() => process.off("warning", listener))
  ).pipe(Effect.map(({ seen }) => seen))

  /** Hands a frame to the socket without waiting for it to be written (the server may not be reading). */
  const push = (hostile: WireClient, frame: string) => hostile.socket.send(frame, () => {})

  /**
   * Sends frames that are no JSON: a server that reads them answers each at
   * once (id -1, no turn needed), so while none is answered the server is not
   * reading this connection.
   */
  const probe = (hostile: WireClient, count = 5) => {
    for (let i = 0; i < count; i++) push(hostile, `probe ${i}`)
  }
  const probesAnswered = (hostile: WireClient) => hostile.received.filter((r) => r.frame.id === -1).length

  const statuses = (hostile: WireClient, prefix: string) =>
    replies(hostile).filter((frame) => String(frame.id).startsWith(prefix)).map((frame) =>
      frame.result?.status ?? `error ${frame.error?.code}`
    )

  it.live(
    "stops reading while writes wait on a process that does not read; then every byte arrives, in order",
    () =>
      Effect.gen(function*() {
        const seen = yield* warnings
        const out = join(yield* scratch, "stdin")
        const { url } = yield* server({ maxPendingRequestBytes: 4 * MiB })
        const { client: writer } = yield* client(url, { timeoutMs: 30_000 })
        yield* writer.call(
          "process/start",
          startParams("stopped", ["sh", "-c", "echo $$; kill -STOP $$; exec cat > \"$0\"", out], { pipeStdin: true })
        )
        const pid = yield* pidOf(writer, "stopped")
        yield* pollUntil("the reader stopped itself", () => stateOf(pid) === "T")
        const writes = 48
        for (let i = 0; i < writes; i++) {
          push(
            writer,
            request(`w${i}`, "process/write", {
              processId: "stopped",
              writeId: `id${i}`,
              chunk: Buffer.alloc(MiB, i % 251).toString("base64")
            })
          )
        }
        probe(writer)
        yield* Effect.sleep(1_500)
        // the writes hold the 4 MiB budget: the server reads nothing more of this connection, the probes included
        assert.strictEqual(probesAnswered(writer), 0, "the server stopped reading")
        // nothing is accepted before the process took it: a 1 MiB write does not fit in a pipe
        assert.deepStrictEqual(statuses(writer, "w"), [])
        process.kill(pid, "SIGCONT")
        yield* awaitReplies(writer, replies(writer).length + writes, 30_000).pipe(Effect.ignore)
        yield* pollUntil(`${writes} writes answered`, () => statuses(writer, "w").length === writes, 30_000)
        assert.deepStrictEqual(statuses(writer, "w"), Array.from({ length: writes }, () => "accepted"))
        yield* pollUntil("the probes answered, once the server reads again", () => probesAnswered(writer) === 5)
        // answered in order, each once
        assert.deepStrictEqual(
          replies(writer).filter((frame) => String(frame.id).startsWith("w")).map((frame) => frame.id),
          Array.from({ length: writes }, (_, i) => `w${i}`)
        )
        yield* writer.call("process/terminate", { processId: "stopped" })
        yield* writer.notification("process/closed", "stopped", undefined, 10_000)
        const written = readFileSync(out)
        assert.strictEqual(written.length, writes * MiB)
        for (let i = 0; i < writes; i++) {
          assert.isTrue(written.subarray(i * MiB, (i + 1) * MiB).equals(Buffer.alloc(MiB, i % 251)), `block ${i}`)
        }
        assert.deepStrictEqual(seen, [], "no warning (no listener per write)")
        yield* assertUnharmed(url)
      }),
    60_000
  )

  it.live("pauses a stdio client's input while its requests in flight hold the budget, and resumes it after", () =>
    Effect.gen(function*() {
      const toServer = new PassThrough()
      const toClient = new PassThrough()
      const answers = messagesOf(toClient)
      const executor = yield* LocalExecutor.make()
      yield* ExecServer.serveStdio(toServer, toClient, { maxPendingRequestBytes: 2 * MiB }).pipe(
        Effect.provideService(Executor, executor),
        Effect.forkScoped
      )
      const send = (message: unknown) => toServer.write(JSON.stringify(message) + "\n")
      const answered = (id: string) => answers.some((answer) => answer.id === id)
      send({ id: "init", method: "initialize", params: { clientName: "stdio" } })
      yield* pollUntil("initialized", () => answered("init"))
      send({ method: "initialized", params: {} })
      send({ id: "start", method: "process/start", params: startParams("quiet", ["sleep", "30"]) })
      yield* pollUntil("started", () => answered("start"))
      // three long polls of 1 MiB each: past the 2 MiB budget
      for (let i = 0; i < 3; i++) {
        send({
          id: `poll${i}`,
          method: "process/read",
          params: { processId: "quiet", afterSeq: 0, waitMs: 1_500, pad: "x".repeat(MiB) }
        })
      }
      yield* pollUntil("the input paused", () => toServer.isPaused(), 5_000)
      send({ id: "behind", method: "no/such-method" })
      yield* Effect.sleep(500)
      assert.isFalse(answered("behind"), "what came after the budget is not read yet")
      yield* pollUntil("the input resumed, what was behind answered", () => answered("behind"), 10_000)
      const order = answers.map((answer) => answer.id)
      assert.isBelow(order.indexOf("poll0"), order.indexOf("behind"), "read only once the first polls freed room")
      yield* pollUntil("every poll answered", () => [0, 1, 2].every((i) => answered(`poll${i}`)), 10_000)
      assert.isFalse(toServer.isPaused())
      for (let i = 0; i < 3; i++) {
        const poll = answers.find((a) => a.id === `poll${i}`)
        assert.strictEqual(poll?.result?.exited, false, JSON.stringify(poll).slice(0, 300))
      }
      toServer.end()
    }))

  /** Our server on a pair of in-memory streams for the scope; `answers` collects what it writes. */
  const stdioServer = (options: ExecServer.Options) =>
    Effect.gen(function*() {
      const toServer = new PassThrough()
      const toClient = new PassThrough()
      const answers = messagesOf(toClient)
      const executor = yield* LocalExecutor.make()
      yield* ExecServer.serveStdio(toServer, toClient, options).pipe(
        Effect.provideService(Executor, executor),
        Effect.forkScoped
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => toServer.end()))
      const send = (message: unknown) => toServer.write(JSON.stringify(message) + "\n")
      const answered = (id: string) => answers.some((answer) => answer.id === id)
      return { toServer, answers, send, answered }
    })

  it.live("charges notifications waiting for a turn to the byte budget, as requests", () =>
    Effect.gen(function*() {
      const { answered, send, toServer } = yield* stdioServer({
        maxPendingRequestBytes: 2 * MiB,
        maxConcurrentRequests: 1
      })
      send({ id: "init", method: "initialize", params: { clientName: "stdio" } })
      yield* pollUntil("initialized", () => answered("init"))
      send({ method: "initialized", params: {} })
      send({ id: "start", method: "process/start", params: startParams("quiet", ["sleep", "30"]) })
      yield* pollUntil("started", () => answered("start"))
      // the only turn is a long poll's; three notifications of 1 MiB wait behind it: past the 2 MiB budget
      send({ id: "poll", method: "process/read", params: { processId: "quiet", afterSeq: 0, waitMs: 2_000 } })
      for (let i = 0; i < 3; i++) {
        send({ method: "process/acknowledge", params: { processId: "quiet", afterSeq: 0, pad: "x".repeat(MiB) } })
      }
      yield* pollUntil("the input paused", () => toServer.isPaused(), 5_000)
      yield* pollUntil("the poll answered", () => answered("poll"), 10_000)
      yield* pollUntil("the input resumed once the notifications ran", () => !toServer.isPaused(), 10_000)
    }))

  it.effect("answers a read with a waitMs past the longest wait after that wait, as one that saw nothing", () =>
    Effect.gen(function*() {
      const { answered, answers, send } = yield* stdioServer({})
      const live = (effect: Effect.Effect<void>) => TestClock.withLive(effect)
      send({ id: "init", method: "initialize", params: { clientName: "stdio" } })
      yield* live(pollUntil("initialized", () => answered("init")))
      send({ method: "initialized", params: {} })
      send({ id: "start", method: "process/start", params: startParams("quiet", ["sleep", "30"]) })
      yield* live(pollUntil("started", () => answered("start")))
      send({ id: "poll", method: "process/read", params: { processId: "quiet", afterSeq: 0, waitMs: 600_000 } })
      // a minute of the test's clock, a second at a time: the read is answered within it, whenever it began
      for (let second = 0; second < 60 && !answered("poll"); second++) {
        yield* TestClock.adjust("1 second")
        yield* live(Effect.sleep("10 millis"))
      }
      const poll = answers.find((answer) => answer.id === "poll")
      assert.deepStrictEqual(poll?.result?.chunks, [], JSON.stringify(poll))
      assert.isFalse(poll?.result?.exited)
    }))

  it.live("never answers accepted for bytes a process exits without taking, and adds no listener per write", () =>
    Effect.gen(function*() {
      const seen = yield* warnings
      const { url } = yield* server()
      const { client: writer } = yield* client(url, { timeoutMs: 10_000 })
      yield* writer.call("process/start", startParams("deaf", ["sleep", "30"], { pipeStdin: true }))
      const writes = 30
      for (let i = 0; i < writes; i++) {
        push(
          writer,
          request(`w${i}`, "process/write", {
            processId: "deaf",
            writeId: `id${i}`,
            chunk: Buffer.alloc(256 * 1024, 1).toString("base64")
          })
        )
      }
      yield* Effect.sleep(500)
      assert.deepStrictEqual(statuses(writer, "w"), [], "a process that reads nothing accepted nothing")
      assert.deepStrictEqual(yield* writer.call("process/terminate", { processId: "deaf" }), { running: true })
      yield* pollUntil(`${writes} writes answered`, () => statuses(writer, "w").length === writes)
      assert.deepStrictEqual(statuses(writer, "w"), Array.from({ length: writes }, () => "stdinClosed"))
      // after the exit, a write is refused at once
      const late = yield* writer.call("process/write", { processId: "deaf", writeId: "late", chunk: "aGk=" })
      assert.deepStrictEqual(late, { status: "stdinClosed" })
      assert.deepStrictEqual(seen, [], "no MaxListenersExceededWarning")
      yield* assertUnharmed(url)
    }))

  it.live(
    "reads no more of a connection than its byte budget while its requests wait for turns",
    () =>
      Effect.gen(function*() {
        const { url } = yield* server()
        const { client: hostile } = yield* client(url, { timeoutMs: 20_000 })
        yield* hostile.call("process/start", startParams("quiet", ["sleep", "30"]))
        // 64 long polls take every turn for a while, then 40 requests of 1 MiB each wait for one
        const polls = 64
        const large = 40
        for (let i = 0; i < polls; i++) {
          push(hostile, request(`poll${i}`, "process/read", { processId: "quiet", afterSeq: 0, waitMs: 4_000 }))
        }
        for (let i = 0; i < large; i++) {
          push(hostile, request(`big${i}`, "no/such-method", { pad: "x".repeat(MiB) }))
        }
        probe(hostile)
        yield* Effect.sleep(2_500)
        // the waiting requests hold the 16 MiB budget: what was sent after them stays in the socket
        assert.strictEqual(probesAnswered(hostile), 0, "the server stopped reading")
        assert.strictEqual(replies(hostile).filter((frame) => String(frame.id).startsWith("big")).length, 0)
        yield* pollUntil(
          "every request answered",
          () => replies(hostile).filter((frame) => /^(poll|big)/.test(String(frame.id))).length === polls + large,
          20_000
        )
        for (const frame of replies(hostile)) {
          if (String(frame.id).startsWith("big")) assert.strictEqual(frame.error?.code, -32601)
          if (String(frame.id).startsWith("poll")) assert.strictEqual(frame.result?.exited, false)
        }
        yield* pollUntil("the probes answered, once the server reads again", () => probesAnswered(hostile) === 5)
        yield* assertUnharmed(url)
      }),
    30_000
  )
})

// =============================================================================
// 12. Tokens
// =============================================================================

describe("ExecServer against hostile clients: tokens", () => {
  const secret = "s3cret-value"

  /**
   * Sends raw HTTP/1.1 text to the server; returns every byte it sent back
   * until it closed (or, with `headersOnly`, until the end of the headers).
   */
  const rawHttp = (url: string, text: string, headersOnly = false): Effect.Effect<string> =>
    Effect.callback<string>((resume) => {
      const { hostname, port } = new URL(url)
      const socket = Net.connect(Number(port), hostname)
      const chunks: Array<Buffer> = []
      const timer = setTimeout(() => {
        socket.destroy()
        resume(
          Effect.die(new Error(`no end of the HTTP answer within 5 s: ${Buffer.concat(chunks).toString("latin1")}`))
        )
      }, 5_000)
      socket.on("connect", () => socket.write(text))
      socket.on("data", (chunk) => {
        chunks.push(chunk)
        if (headersOnly && Buffer.concat(chunks).includes("\r\n\r\n")) socket.destroy()
      })
      socket.on("error", () => {})
      socket.on("close", () => {
        clearTimeout(timer)
        resume(Effect.succeed(Buffer.concat(chunks).toString("latin1")))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        socket.destroy()
      })
    })

  const upgrade = (url: string, authorization: string | undefined) => {
    const { host } = new URL(url)
    return [
      "GET / HTTP/1.1",
      `Host: ${host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
      "Sec-WebSocket-Version: 13",
      ...(authorization === undefined ? [] : [`Authorization: ${authorization}`]),
      "",
      ""
    ].join("\r\n")
  }

  const assertNoSecret = (label: string, text: string) => {
    assert.notInclude(text, secret, label)
    assert.notInclude(text, "s3cret", label)
    assert.notInclude(text, Buffer.from(secret).toString("base64"), label)
  }

  it.live("refuses a wrong token with 401 and never sends the token back", () =>
    Effect.gen(function*() {
      const { url } = yield* server({ token: Redacted.make(secret) })
      for (
        const authorization of [
          undefined,
          "Bearer wrong",
          "Bearer s3cret",
          `Bearer ${secret}x`,
          `Bearer ${secret} x`,
          `Bearer${secret}`,
          `Bearerx ${secret}`,
          `Bear ${secret}`,
          secret,
          `Basic ${Buffer.from(`user:${secret}`).toString("base64")}`
        ]
      ) {
        assert.strictEqual(
          yield* refusedStatus(url, authorization === undefined ? {} : { headers: { Authorization: authorization } }),
          401,
          `${authorization}`
        )
        const answer = yield* rawHttp(url, upgrade(url, authorization))
        assert.match(answer, /^HTTP\/1\.1 401 /, `${authorization}`)
        // the wrong token is not echoed either
        if (authorization !== undefined) assert.notInclude(answer, authorization)
        assertNoSecret(`the 401 answer to ${authorization}`, answer)
      }
      // RFC 9110 § 11.4: the scheme in any case, one or more spaces (or tabs) after it, whitespace around the value
      for (
        const authorization of [
          `bearer ${secret}`,
          `BEARER ${secret}`,
          `Bearer  ${secret}`,
          `Bearer \t ${secret}`,
          ` Bearer ${secret} `
        ]
      ) {
        const answer = yield* rawHttp(url, upgrade(url, authorization), true)
        assert.match(answer, /^HTTP\/1\.1 101 /, JSON.stringify(authorization))
      }
      // a plain HTTP request (no upgrade), with and without the token
      const { host } = new URL(url)
      for (const authorization of [undefined, `Bearer ${secret}`]) {
        const plain = yield* rawHttp(
          url,
          `GET / HTTP/1.1\r\nHost: ${host}\r\n${
            authorization === undefined ? "" : `Authorization: ${authorization}\r\n`
          }Connection: close\r\n\r\n`
        )
        assert.match(plain, /^HTTP\/1\.1 426 /)
        assertNoSecret("the answer to a plain HTTP request", plain)
      }
      // the right token works, and nothing the server says on the socket carries it
      const { client: good } = yield* client(url, { headers: { Authorization: `Bearer ${secret}` } })
      yield* good.sendRaw("not json")
      yield* good.waitFor("the -32600 answer", (frame) => frame.id === -1)
      yield* good.callError("process/read", { processId: secret })
      yield* good.callError("initialize", { clientName: secret })
      const accepted = yield* rawHttp(url, upgrade(url, `Bearer ${secret}`), true)
      assert.match(accepted, /^HTTP\/1\.1 101 /)
      assertNoSecret("the 101 answer", accepted)
      for (const { frame } of good.received) {
        const text = JSON.stringify(frame)
        // only the process id we sent ourselves is echoed (in the message, and in the typed reason)
        assertNoSecret(
          text,
          text.replaceAll(`unknown process id ${secret}`, "").replaceAll(`"processId":"${secret}"`, "")
        )
      }
      yield* assertUnharmed(url, { headers: { Authorization: `Bearer ${secret}` } })
    }))
})

// =============================================================================
// 13. A defect in a handler
// =============================================================================

describe("ExecServer against hostile clients: defects", () => {
  it.live("answers a request whose handler throws with -32603 and logs the cause; the connection goes on", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        logged.push(`${options.logLevel} ${Cause.pretty(options.cause)} ${JSON.stringify(options.message)}`)
      })
      const executor = yield* LocalExecutor.make()
      const registry = yield* Effect.provideService(ExecServer.makeRegistry(), Executor, executor)
      // the real methods, but three that fail as no handler should: a throw, a thrown effect, a die
      const methodsOf = (session: Session): SessionMethods => {
        const real = processHandlers(registry.sessions, session)
        return {
          requests: {
            ...real.requests,
            ...fileSystemHandlers(registry.files),
            "process/read": () => {
              throw new Error("read exploded")
            },
            "process/terminate": () => Effect.sync(() => JSON.parse("{")),
            "fs/getMetadata": () => Effect.die("metadata died")
          },
          notifications: {
            "process/acknowledge": () => {
              throw new Error("acknowledge exploded")
            }
          }
        }
      }
      const toServer = new PassThrough()
      const toClient = new PassThrough()
      const answers = messagesOf(toClient)
      yield* Connection.serveConnection(registry.sessions, fromStreams(toServer, toClient), methodsOf).pipe(
        Effect.provide(Logger.layer([collector])),
        Effect.forkScoped
      )
      const send = (message: unknown) => toServer.write(JSON.stringify(message) + "\n")
      const answerTo = (id: number) =>
        pollUntil(`the answer to ${id}`, () => answers.some((answer) => answer.id === id)).pipe(
          Effect.map(() => answers.find((answer) => answer.id === id))
        )
      send({ id: 1, method: "initialize", params: { clientName: "defects" } })
      yield* answerTo(1)
      send({ method: "initialized", params: {} })
      send({ method: "process/acknowledge", params: { processId: "x", afterSeq: 0 } })
      send({ id: 2, method: "process/read", params: { processId: "x" } })
      send({ id: 3, method: "process/terminate", params: { processId: "x" } })
      send({ id: 4, method: "fs/getMetadata", params: { path: "file:///tmp" } })
      send({ id: 5, method: "process/start", params: startParams("ok", ["true"]) })
      for (const [id, method] of [[2, "process/read"], [3, "process/terminate"], [4, "fs/getMetadata"]] as const) {
        const answer = yield* answerTo(id)
        assert.deepStrictEqual(answer, { id, error: { code: -32603, message: `internal error in ${method}` } })
      }
      assert.deepStrictEqual((yield* answerTo(5)).result, { processId: "ok", sandboxType: "none" })
      // each defect was logged once, with its cause
      yield* pollUntil("four log lines", () => logged.length >= 4)
      for (const cause of ["read exploded", "JSON", "metadata died", "acknowledge exploded"]) {
        assert.strictEqual(logged.filter((line) => line.includes(cause)).length, 1, `${cause}: ${logged.join("\n")}`)
      }
      // one answer per request, nothing for the notification
      assert.deepStrictEqual(
        answers.filter((answer) => answer.method === undefined).map((answer) => answer.id).sort(),
        [1, 2, 3, 4, 5]
      )
      toServer.end()
    }))
})
