/**
 * The health endpoint beside the WebSocket (`GET /healthz`), as a load balancer
 * or a Kubernetes probe sees it: no token needed, nothing said but "ok", and
 * everything else still refused as before.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Http from "node:http"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { listenLocal, spawnServe } from "./support/servers.ts"

interface Answer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

const request = (url: string, path: string, method = "GET") =>
  Effect.callback<Answer>((resume) => {
    const { hostname, port } = new URL(url)
    const outgoing = Http.request({ hostname, port, path, method }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on(
        "end",
        () => resume(Effect.succeed({ status: response.statusCode!, headers: response.headers, body }))
      )
    })
    outgoing.on("error", (error) => resume(Effect.die(error)))
    outgoing.end()
  })

describe("WebSocketListener health endpoint", () => {
  it.live("GET /healthz answers 200 ok without the token, and says nothing else", () =>
    Effect.gen(function*() {
      const token = "health-secret-token"
      const { url } = yield* listenLocal({ token: Redacted.make(token) })
      const answer = yield* request(url, WebSocketListener.healthPath)
      assert.strictEqual(answer.status, 200)
      assert.strictEqual(answer.body, "ok\n")
      assert.strictEqual(answer.headers["cache-control"], "no-store")
      assert.notInclude(JSON.stringify(answer), token)
      assert.strictEqual((yield* request(url, "/healthz?probe=1")).status, 200)
      const head = yield* request(url, "/healthz", "HEAD")
      assert.deepStrictEqual([head.status, head.body], [200, ""])
    }))

  it.live("other paths and methods still get 426, and the WebSocket still needs the token", () =>
    Effect.gen(function*() {
      const { url } = yield* listenLocal({ token: Redacted.make("t") })
      for (const [path, method] of [["/", "GET"], ["/healthz/x", "GET"], ["/healthz", "POST"], ["/health", "GET"]]) {
        const answer = yield* request(url, path!, method)
        assert.strictEqual(answer.status, 426, `${method} ${path}`)
      }
    }))

  it.live("effect-exec serve offers it (what the Kubernetes probes call)", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe(["--token", "t"])
      const answer = yield* request(server.url, "/healthz")
      assert.deepStrictEqual([answer.status, answer.body], [200, "ok\n"])
    }))
})
