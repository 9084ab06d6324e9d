/**
 * Pushed output (what a Codex client reads: `process/output` notifications,
 * no extensions) never has a gap, however slowly the client reads: over stdio
 * and over WebSocket, against our server, and against Codex's over stdio as
 * the reference.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Executor, type ProcessEvent } from "../src/Executor.ts"
import { eventStream, ProcessLog } from "../src/internal/local/processLog.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { locateCodex } from "./support/codexServer.ts"
import { bin, listenLocal as server } from "./support/servers.ts"
import { spawnStdioServer, type StdioClient } from "./support/stdioClient.ts"
import { connect, fromBase64, handshake, startParams } from "./support/wireClient.ts"

const megabytes = 4
/** Prints `megabytes` MiB of "x", then END: what arrives is checked byte for byte. */
const loud = ["sh", "-c", `head -c ${megabytes * 1048576} /dev/zero | tr '\\0' x; echo END`]
const expected = "x".repeat(megabytes * 1048576) + "END\n"

/** Every output seq between 1 and the close but the exit's, and the bytes in seq order. */
const assertComplete = (outputs: ReadonlyArray<any>, exited: any, closed: any, expectedText: string) => {
  const seqs = new Set(outputs.map((o) => o.seq))
  const missing: Array<number> = []
  for (let seq = 1; seq < closed.seq; seq++) if (seq !== exited.seq && !seqs.has(seq)) missing.push(seq)
  assert.deepStrictEqual(missing, [], "no output seq is skipped")
  const text = [...outputs].sort((a, b) => a.seq - b.seq).map((o) => fromBase64(o.chunk)).join("")
  assert.strictEqual(text.length, expectedText.length, "every byte arrived")
  assert.isTrue(text === expectedText, "byte for byte")
}

/** Starts `loud`, stops reading for `pauseMillis` right after the answer, then collects every notification. */
const slowStdioRun = (client: StdioClient, pauseMillis: number) =>
  Effect.gen(function*() {
    client.send({ id: 1, method: "initialize", params: { clientName: "slow-reader" } })
    yield* client.waitFor("the initialize answer", (m) => m.id === 1)
    client.send({ method: "initialized", params: {} })
    client.send({
      id: 2,
      method: "process/start",
      params: {
        processId: "loud",
        argv: loud,
        cwd: "file:///tmp",
        env: { PATH: process.env.PATH },
        tty: false,
        arg0: null
      }
    })
    yield* client.waitFor("the start answer", (m) => m.id === 2)
    client.pause(pauseMillis)
    const closed = yield* client.waitFor("process/closed", (m) => m.method === "process/closed", 60_000)
    const exited = client.received.find((m) => m.method === "process/exited")
    const outputs = client.received.filter((m) => m.method === "process/output").map((m) => m.params)
    assertComplete(outputs, exited.params, closed.params, expected)
  })

describe("pushed output to a slow reader", () => {
  for (const pauseMillis of [0, 500, 2_000]) {
    it.live(`over stdio, paused ${pauseMillis} ms: every seq and every byte`, () =>
      Effect.gen(function*() {
        const client = yield* spawnStdioServer(process.execPath, [bin, "serve", "--listen", "stdio"])
        yield* slowStdioRun(client, pauseMillis)
      }), 60_000)
  }

  it.live("over stdio against Codex's server (the reference): every seq and every byte", () =>
    Effect.gen(function*() {
      const home = mkdtempSync(join(tmpdir(), "codex-home-"))
      const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, CODEX_HOME: home }
      const client = yield* spawnStdioServer(locateCodex(), ["exec-server", "--listen", "stdio"], env)
      yield* slowStdioRun(client, 2_000)
    }), 60_000)

  it.live(
    "over WebSocket, the socket paused 2 s on 32 MiB (more than the kernel buffers): every seq and byte",
    () =>
      Effect.gen(function*() {
        const { url } = yield* server()
        const client = yield* connect(url, { timeoutMs: 60_000 })
        yield* handshake(client)
        const size = 32 * 1048576
        yield* client.call(
          "process/start",
          startParams("loud", ["sh", "-c", `head -c ${size} /dev/zero | tr '\\0' x; echo END`], {
            env: { PATH: process.env.PATH }
          })
        )
        const tcp = (client.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket
        tcp.pause()
        yield* Effect.sleep("2 seconds")
        tcp.resume()
        const closed = yield* client.notification("process/closed", "loud", () => true, 60_000)
        const exited = client.notifications("process/exited", "loud")[0]
        assertComplete(client.notifications("process/output", "loud"), exited, closed, "x".repeat(size) + "END\n")
      }),
    90_000
  )
})

describe("a follower of a process log (what the notifier reads)", () => {
  const chunk = (bytes: number) => new Uint8Array(bytes)

  it.effect("keeps output the follower has not taken beyond the retention, and frees it once taken", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1000, false, { followerLagBytes: 10_000 })
      const follower = log.follow(0)
      for (let i = 0; i < 5; i++) log.appendOutput("stdout", chunk(1000))
      assert.strictEqual(log.retainedBytes, 5000, "nothing evicted while the follower lags within its bound")
      log.advance(follower, 5)
      assert.strictEqual(log.retainedBytes, 1000, "taken: back to the retention")
      // a reader without a follower would have lost them
      const unfollowed = new ProcessLog(1000, false, { followerLagBytes: 10_000 })
      for (let i = 0; i < 5; i++) unfollowed.appendOutput("stdout", chunk(1000))
      assert.strictEqual(unfollowed.retainedBytes, 1000)
    }))

  it.effect("past its bound, the follower gets a Dropped event, never a silent gap", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1000, false, { followerLagBytes: 2000 })
      const follower = log.follow(0)
      for (let i = 0; i < 5; i++) log.appendOutput("stdout", chunk(1000))
      const events = log.eventsAfter(follower.cursor)
      assert.deepStrictEqual(events[0], { _tag: "Dropped", seq: 2, bytes: 2000, chunks: 2 })
      assert.deepStrictEqual(events.slice(1).map((e) => e.seq), [3, 4, 5])
    }))

  it.live("the event stream follows the log: a slow consumer of the stream loses nothing", () =>
    Effect.gen(function*() {
      const log = new ProcessLog(1000, false, { followerLagBytes: 1_000_000 })
      const collected = yield* Effect.forkChild(
        eventStream(log, 0).pipe(
          Stream.tap(() => Effect.sleep("1 millis")),
          Stream.runCollect
        )
      )
      yield* Effect.sleep("20 millis") // the stream has started following
      for (let i = 0; i < 50; i++) log.appendOutput("stdout", chunk(1000))
      log.markExited(0, null)
      log.markClosed()
      const events = yield* Fiber.join(collected)
      const outputs = events.filter((e) => e._tag === "Output")
      assert.strictEqual(outputs.length, 50)
      assert.isFalse(events.some((e) => e._tag === "Dropped"))
      assert.strictEqual(log.retainedBytes, 1000, "the follower's hold ends with the stream")
    }))
})

describe("the notifier, when the executor reports lost output", () => {
  it.live("closes the client's connection (it resumes and reads) instead of leaving a silent gap", () =>
    Effect.gen(function*() {
      const events: ReadonlyArray<ProcessEvent> = [
        { _tag: "Output", seq: 1, stream: "stdout", chunk: new TextEncoder().encode("a") },
        { _tag: "Dropped", seq: 3, bytes: 10, chunks: 2 },
        { _tag: "Output", seq: 4, stream: "stdout", chunk: new TextEncoder().encode("d") }
      ]
      const executor = Executor.of({
        start: (request) => Effect.succeed({ processId: request.processId, sandboxType: "none" }),
        read: () => Effect.never,
        write: () => Effect.succeed("accepted" as const),
        terminate: () => Effect.succeed({ running: false }),
        signal: () => Effect.void,
        resize: () => Effect.void,
        closeStdin: () => Effect.succeed("accepted" as const),
        events: () => Stream.concat(Stream.fromIterable(events), Stream.never),
        defaultCwd: Effect.succeed("/tmp"),
        sandboxSupport: Effect.succeed({ available: false as const, reason: "a stub runs nothing" })
      })
      const { url } = yield* Effect.provideService(WebSocketListener.listen({}), Executor, executor)
      const client = yield* connect(url)
      yield* handshake(client)
      // the connection may close before the start is answered: do not wait for the answer
      yield* client.send("process/start", startParams("gappy", ["true"]))
      const { code } = yield* client.closedWithin(5_000)
      assert.isNumber(code)
      const outputs = client.notifications("process/output", "gappy")
      assert.deepStrictEqual(outputs.map((o) => o.seq), [1], "nothing after the gap was pushed as if contiguous")
    }))
})
