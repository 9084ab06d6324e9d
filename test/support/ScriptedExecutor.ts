/**
 * A fake `Executor` whose processes follow a script in virtual time, for
 * testing the consume loop with `TestClock`. It keeps the same seq-numbered log
 * as the local executor, so reads behave as the protocol says.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Exec from "../../src/Executor.ts"
import { eventStream, longPollRead, ProcessLog } from "../../src/internal/local/processLog.ts"

export type Step =
  | { readonly _tag: "Wait"; readonly duration: Duration.Input }
  | { readonly _tag: "Output"; readonly stream: "stdout" | "stderr" | "pty"; readonly bytes: Uint8Array }
  | { readonly _tag: "Exit"; readonly exitCode: number; readonly signal?: string }
  | { readonly _tag: "Close" }
  | { readonly _tag: "FailReads"; readonly description: string }

const encoder = new TextEncoder()
export const wait = (duration: Duration.Input): Step => ({ _tag: "Wait", duration })
export const out = (text: string | Uint8Array): Step => ({
  _tag: "Output",
  stream: "stdout",
  bytes: typeof text === "string" ? encoder.encode(text) : text
})
export const err = (text: string | Uint8Array): Step => ({
  _tag: "Output",
  stream: "stderr",
  bytes: typeof text === "string" ? encoder.encode(text) : text
})
/** Output of a `tty` process (its terminal's). */
export const pty = (text: string | Uint8Array): Step => ({
  _tag: "Output",
  stream: "pty",
  bytes: typeof text === "string" ? encoder.encode(text) : text
})
export const exit = (exitCode: number, signal?: string): Step =>
  signal === undefined ? { _tag: "Exit", exitCode } : { _tag: "Exit", exitCode, signal }
export const close: Step = { _tag: "Close" }
/** Every later read fails as if the connection to a server were lost. */
export const failReads = (description: string): Step => ({ _tag: "FailReads", description })

export interface Scripted {
  readonly layer: Layer.Layer<Exec.Executor>
  /** Ids that `terminate` was called with while their process ran. */
  readonly terminated: Array<string>
  readonly started: Array<Exec.StartRequest>
  /** Every write accepted (to a `tty` or `pipeStdin` process), in order. */
  readonly written: Array<{ readonly processId: string; readonly chunk: Uint8Array }>
  /** Ids whose stdin `closeStdin` ended, in order (after the writes before it). */
  readonly stdinClosed: Array<string>
  /** Every `resize`, in order. */
  readonly resized: Array<
    { readonly processId: string; readonly size: { readonly rows: number; readonly cols: number } }
  >
}

/** A scripted executor; `script` gives the steps for each started request. */
export const make = (script: (request: Exec.StartRequest) => ReadonlyArray<Step>): Scripted => {
  const terminated: Array<string> = []
  const started: Array<Exec.StartRequest> = []
  const resized: Scripted["resized"] = []
  const written: Scripted["written"] = []
  const stdinClosed: Array<string> = []
  const layer = Layer.effect(
    Exec.Executor,
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const processes = new Map<
        string,
        { log: ProcessLog; fiber: Fiber.Fiber<void>; lost?: string; input: boolean }
      >()

      const runScript = (log: ProcessLog, steps: ReadonlyArray<Step>, entry: () => { lost?: string }) =>
        Effect.forEach(steps, (step) => {
          switch (step._tag) {
            case "Wait":
              return Effect.sleep(step.duration)
            case "Output":
              return Effect.sync(() => log.appendOutput(step.stream, step.bytes))
            case "Exit":
              return Effect.sync(() => log.markExited(step.exitCode, step.signal ?? null))
            case "Close":
              return Effect.sync(() => log.markClosed())
            case "FailReads":
              return Effect.sync(() => {
                entry().lost = step.description
              })
          }
        }, { discard: true })

      const lookup = (processId: string) =>
        Effect.suspend(() => {
          const entry = processes.get(processId)
          if (entry === undefined) return Exec.fail(new Exec.UnknownProcess({ processId }))
          if (entry.lost !== undefined) return Exec.fail(new Exec.ConnectionLost({ description: entry.lost }))
          return Effect.succeed(entry)
        })

      return Exec.Executor.of({
        start: (request) =>
          Effect.gen(function*() {
            if (request.argv.length === 0) {
              return yield* Exec.fail(new Exec.InvalidRequest({ description: "argv must not be empty" }))
            }
            if (processes.has(request.processId)) {
              return yield* Exec.fail(new Exec.ProcessIdInUse({ processId: request.processId }))
            }
            started.push(request)
            const log = new ProcessLog(1024 * 1024, request.backpressure === true)
            const entry: { log: ProcessLog; fiber: Fiber.Fiber<void>; lost?: string; input: boolean } = {
              log,
              fiber: undefined as never,
              input: request.tty || request.pipeStdin === true
            }
            processes.set(request.processId, entry)
            entry.fiber = yield* runScript(log, script(request), () => entry).pipe(Effect.forkIn(scope))
            return { processId: request.processId, sandboxType: "none" }
          }),
        read: (params) => Effect.flatMap(lookup(params.processId), (entry) => longPollRead(entry.log, params)),
        write: (params) =>
          Effect.sync(() => {
            const entry = processes.get(params.processId)
            if (entry === undefined) return "unknownProcess" as const
            if (!entry.input || entry.log.exited) return "stdinClosed" as const
            written.push({ processId: params.processId, chunk: params.chunk })
            return "accepted" as const
          }),
        terminate: (processId) =>
          Effect.gen(function*() {
            const entry = processes.get(processId)
            if (entry === undefined || entry.log.exited) return { running: false }
            terminated.push(processId)
            yield* Fiber.interrupt(entry.fiber)
            entry.log.markExited(-1, "SIGKILL")
            entry.log.markClosed()
            return { running: true }
          }),
        closeStdin: (processId) =>
          Effect.sync(() => {
            const entry = processes.get(processId)
            if (entry === undefined) return "unknownProcess" as const
            if (!entry.input || entry.log.exited) return "stdinClosed" as const
            entry.input = false
            stdinClosed.push(processId)
            return "accepted" as const
          }),
        signal: () => Effect.void,
        resize: (processId, size) =>
          Effect.map(lookup(processId), () => {
            resized.push({ processId, size })
          }),
        defaultCwd: Effect.succeed("/tmp"),
        sandboxSupport: Effect.succeed({ available: false as const, reason: "a scripted executor runs nothing" }),
        events: (processId, options) =>
          Stream.unwrap(Effect.map(lookup(processId), (entry) => eventStream(entry.log, options?.afterSeq ?? 0)))
      })
    })
  )
  return { layer, terminated, started, resized, written, stdinClosed }
}
