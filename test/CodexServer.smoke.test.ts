/**
 * Smoke test of the harness against the real Codex exec-server: handshake,
 * one process started and read until `closed`, and a clean shutdown.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync } from "node:fs"
import WebSocket from "ws"
import { startCodexServer } from "./support/codexServer.ts"

const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(url)
        ws.once("open", () => resolve(ws))
        ws.once("error", reject)
      })
    ),
    (ws) => Effect.sync(() => ws.terminate())
  )

/** Minimal JSON-RPC over `ws`: replies are matched by id, notifications ignored, error replies are defects. */
const client = (ws: WebSocket) => {
  let nextId = 1
  const pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>()
  ws.on("message", (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } }
    const waiter = message.id === undefined ? undefined : pending.get(message.id)
    if (message.error) waiter?.reject(new Error(`JSON-RPC error: ${message.error.message}`))
    else waiter?.resolve(message.result)
  })
  ws.on("close", () => pending.forEach((w) => w.reject(new Error("connection closed"))))
  return {
    call: <A>(method: string, params: unknown) =>
      Effect.promise(() =>
        new Promise<A>((resolve, reject) => {
          const id = nextId++
          pending.set(id, { resolve: resolve as (r: unknown) => void, reject })
          ws.send(JSON.stringify({ id, method, params }))
        })
      ),
    notify: (method: string) => Effect.sync(() => ws.send(JSON.stringify({ method })))
  }
}

interface ReadResult {
  readonly chunks: ReadonlyArray<{ readonly seq: number; readonly stream: string; readonly chunk: string }>
  readonly nextSeq: number
  readonly closed: boolean
}

describe("Codex exec-server (real binary)", () => {
  it.live("initializes, runs `printf hi` and reads it until closed", () =>
    Effect.gen(function*() {
      const server = yield* startCodexServer
      assert.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+$/)
      const rpc = client(yield* connect(server.url))
      const init = yield* rpc.call<{ sessionId: string }>("initialize", { clientName: "smoke" })
      assert.match(init.sessionId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
      yield* rpc.notify("initialized")
      yield* rpc.call("process/start", {
        processId: "p1",
        argv: ["sh", "-c", "printf hi"],
        cwd: "file:///tmp",
        env: { PATH: "/usr/bin:/bin" },
        tty: false
      })
      const stdout: Array<Buffer> = []
      let afterSeq = 0
      for (let attempt = 0; attempt < 20; attempt++) {
        const read = yield* rpc.call<ReadResult>("process/read", {
          processId: "p1",
          afterSeq,
          maxBytes: null,
          waitMs: 2000
        })
        for (const c of read.chunks) if (c.stream === "stdout") stdout.push(Buffer.from(c.chunk, "base64"))
        afterSeq = read.nextSeq - 1
        if (read.closed) break
      }
      assert.strictEqual(Buffer.concat(stdout).toString("utf8"), "hi")
    }))

  it.live("closing the scope stops the server and removes its scratch HOME", () =>
    Effect.gen(function*() {
      const { pid, home } = yield* Effect.scoped(Effect.map(startCodexServer, ({ pid }) => ({
        pid,
        home: /(?:^|\0)HOME=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, "utf8"))?.[1] ?? ""
      })))
      assert.isFalse(existsSync(`/proc/${pid}`), `codex ${pid} still exists`)
      assert.match(home, /codex-home-/)
      assert.isFalse(existsSync(home), `scratch HOME ${home} was not removed`)
    }))
})
