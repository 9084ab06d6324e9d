/**
 * `Exec.run` with executors users write, whose reads it asks to lend:
 * decorators written the usual way (a class, or a spread with `read` replaced).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as OutputSink from "../src/OutputSink.ts"

const runIn = (executor: Layer.Layer<Executor>) =>
  Exec.run({ command: ["echo", "password: hunter2"], cwd: "/tmp" }).pipe(
    Effect.map((result) => result.stdout.text.trim()),
    Effect.provide([Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(executor)), OutputSink.layerDiscard])
  )

/** A decorator's service made of a class's methods (they use `this`). */
class Delegating {
  readonly inner: Executor["Service"]
  constructor(inner: Executor["Service"]) {
    this.inner = inner
  }
  start(request: Parameters<Executor["Service"]["start"]>[0]) {
    return this.inner.start(request)
  }
  read(request: Parameters<Executor["Service"]["read"]>[0]) {
    return this.inner.read(request)
  }
  write(request: Parameters<Executor["Service"]["write"]>[0]) {
    return this.inner.write(request)
  }
  terminate(processId: string) {
    return this.inner.terminate(processId)
  }
  signal(...args: Parameters<Executor["Service"]["signal"]>) {
    return this.inner.signal(...args)
  }
  closeStdin(processId: string) {
    return this.inner.closeStdin(processId)
  }
  resize(...args: Parameters<Executor["Service"]["resize"]>) {
    return this.inner.resize(...args)
  }
  events(...args: Parameters<Executor["Service"]["events"]>) {
    return this.inner.events(...args)
  }
}

describe("Exec.run with an executor a user decorated", () => {
  it.live("a decorator that spreads an executor and replaces `read` (redaction) still sees every read", () =>
    Effect.gen(function*() {
      const redacting = Layer.effect(
        Executor,
        Effect.map(Effect.service(Executor), (inner) =>
          Executor.of({
            ...inner,
            read: (request) =>
              Effect.map(inner.read(request), (result) => ({
                ...result,
                chunks: result.chunks.map((entry) => ({
                  ...entry,
                  chunk: Buffer.from(Buffer.from(entry.chunk).toString().replaceAll("hunter2", "*******"))
                }))
              }))
          }))
      ).pipe(Layer.provide(LocalExecutor.layer()))
      assert.strictEqual(yield* runIn(redacting), "password: *******")
    }))

  it.live("a decorator whose methods are a class's runs as before (`read` called on its service)", () =>
    Effect.gen(function*() {
      const classBased = Layer.effect(
        Executor,
        Effect.map(Effect.service(Executor), (inner) => new Delegating(inner) as unknown as Executor["Service"])
      ).pipe(Layer.provide(LocalExecutor.layer()))
      assert.strictEqual(yield* runIn(classBased), "password: hunter2")
    }))
})
