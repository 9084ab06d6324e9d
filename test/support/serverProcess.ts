/**
 * Our exec-server as a process of its own, for measuring its memory apart
 * from the tests that drive it: `node serverProcess.ts OPTIONS_JSON` prints
 * the bound `ws://IP:PORT` on its first line of stdout and serves until
 * SIGTERM. The options are `WebSocketListener.Options` as JSON, `token` as a
 * plain string.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import { Executor } from "../../src/Executor.ts"
import * as LocalExecutor from "../../src/LocalExecutor.ts"
import * as WebSocketListener from "../../src/WebSocketListener.ts"

const { token, ...options } = JSON.parse(process.argv[2] ?? "{}") as WebSocketListener.Options & {
  readonly token?: string
}

const fiber = Effect.runFork(
  Effect.scoped(Effect.gen(function*() {
    const executor = yield* LocalExecutor.make()
    const { url } = yield* Effect.provideService(
      WebSocketListener.listen({ ...options, ...(token === undefined ? {} : { token: Redacted.make(token) }) }),
      Executor,
      executor
    )
    process.stdout.write(`${url}\n`)
    return yield* Effect.never
  }))
)

process.once("SIGTERM", () => {
  Effect.runFork(Fiber.interrupt(fiber)).addObserver(() => process.exit(0))
})
