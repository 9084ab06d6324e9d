/**
 * One benchmark scenario, run in a process of its own so that its peak RSS is
 * its own. Usage: `node bench/scenario.ts '<json config>'`; prints one JSON
 * line with the measurements.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"

export type Scenario =
  | { readonly kind: "bare"; readonly bytes: number }
  | { readonly kind: "throughput"; readonly url?: string; readonly bytes: number }
  | { readonly kind: "latency"; readonly url?: string; readonly runs: number }
  | { readonly kind: "delta"; readonly url?: string; readonly lines: number }
  | { readonly kind: "scale"; readonly url?: string; readonly calls: number }
  | { readonly kind: "flood"; readonly url?: string; readonly processes: number; readonly bytes: number }

/** Peak resident set of a process, in MiB (VmHWM). */
export const peakRssMiB = (pid: number | "self" = "self"): number => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0)
  return kib / 1024
}

const environment = (url: string | undefined) =>
  url === undefined ? Environment.layerLocal : Environment.layerRemote({ url })

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

/** Reads 256 MiB from a child's pipe with plain Node, to nowhere: the limit on this machine. */
const bare = (bytes: number) =>
  new Promise<Record<string, number>>((resolve) => {
    const started = performance.now()
    const child = spawn("head", ["-c", String(bytes), "/dev/zero"], { stdio: ["ignore", "pipe", "ignore"] })
    let received = 0
    child.stdout.on("data", (chunk: Buffer) => (received += chunk.length))
    child.on("close", () => resolve({ ms: performance.now() - started, bytes: received }))
  })

const throughput = (url: string | undefined, bytes: number) =>
  Effect.gen(function*() {
    const started = performance.now()
    const result = yield* Exec.run({
      command: ["head", "-c", String(bytes), "/dev/zero"],
      cwd: "/tmp",
      timeout: "10 minutes"
    })
    return {
      ms: performance.now() - started,
      bytes: result.stdout.totalBytes,
      droppedByExecutor: result.droppedByExecutor,
      exitCode: result.exitCode
    }
  }).pipe(Effect.provide(Layer.mergeAll(environment(url), OutputSink.layerDiscard)))

const latency = (url: string | undefined, runs: number) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    yield* Exec.run({ command: ["true"], cwd: "/tmp" }) // warm-up: connection, JIT
    for (let i = 0; i < runs; i++) {
      const started = performance.now()
      const result = yield* Exec.run({ command: ["true"], cwd: "/tmp" })
      times.push(performance.now() - started)
      if (result.exitCode !== 0) return yield* Effect.die(new Error(`true exited ${result.exitCode}`))
    }
    times.sort((a, b) => a - b)
    return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) }
  }).pipe(Effect.provide(Layer.mergeAll(environment(url), OutputSink.layerDiscard)))

/** Time from a line the child writes (stamped with the wall clock) to its delta at the sink. */
const delta = (url: string | undefined, lines: number) => {
  const delays: Array<number> = []
  let pending = ""
  const sink = Layer.succeed(
    OutputSink.OutputSink,
    OutputSink.OutputSink.of({
      emit: (delta) =>
        Effect.sync(() => {
          const now = (performance.timeOrigin + performance.now()) * 1000 // µs
          pending += new TextDecoder().decode(delta.chunk)
          let newline = pending.indexOf("\n")
          while (newline !== -1) {
            const written = Number(pending.slice(0, newline)) / 1000 // ns → µs
            delays.push(now - written)
            pending = pending.slice(newline + 1)
            newline = pending.indexOf("\n")
          }
        })
    })
  )
  return Exec.run({
    command: ["sh", "-c", `for i in $(seq ${lines}); do date +%s%N; sleep 0.01; done`],
    cwd: "/tmp",
    timeout: "1 minute"
  }).pipe(
    Effect.provide(Layer.mergeAll(environment(url), sink)),
    Effect.map(() => {
      delays.sort((a, b) => a - b)
      return { samples: delays.length, p50Micros: percentile(delays, 0.5), p99Micros: percentile(delays, 0.99) }
    })
  )
}

const scale = (url: string | undefined, calls: number) =>
  Effect.gen(function*() {
    yield* Exec.run({ command: ["true"], cwd: "/tmp" })
    const started = performance.now()
    const results = yield* Effect.forEach(
      Array.from({ length: calls }, (_, i) => i),
      (i) => Effect.result(Exec.run({ command: ["sh", "-c", `echo ${i}`], cwd: "/tmp", timeout: "1 minute" })),
      { concurrency: "unbounded" }
    )
    const errors = results.filter((r) =>
      r._tag === "Failure" || r.success.exitCode !== 0 || r.success.stdout.text !== `${results.indexOf(r)}\n`
    ).length
    return { ms: performance.now() - started, calls, errors }
  }).pipe(Effect.provide(Layer.mergeAll(environment(url), OutputSink.layerDiscard)))

/** Processes whose output nobody reads: memory must stay bounded by retention. */
const flood = (url: string | undefined, processes: number, bytes: number) =>
  Effect.gen(function*() {
    const { executor } = yield* Environment.Environment
    const started = performance.now()
    const ids = Array.from({ length: processes }, (_, i) => `flood-${i}`)
    yield* Effect.forEach(ids, (processId) =>
      executor.start({
        processId,
        argv: ["head", "-c", String(bytes), "/dev/urandom"],
        cwd: "/tmp",
        env: {},
        tty: false,
        // nobody reads: not even a pushed copy of the output
        outputNotifications: false
      }), { concurrency: 10, discard: true })
    // wait for every close without reading any output
    yield* Effect.forEach(ids, (processId) =>
      Effect.gen(function*() {
        let result = yield* executor.read({ processId, afterSeq: 1e12, maxBytes: 0, waitMs: 10_000 })
        while (!result.closed) result = yield* executor.read({ processId, afterSeq: 1e12, maxBytes: 0, waitMs: 10_000 })
      }), { concurrency: 20, discard: true })
    return { ms: performance.now() - started, processes, bytesEach: bytes }
  }).pipe(Effect.provide(environment(url)))

const run = async (scenario: Scenario): Promise<Record<string, unknown>> => {
  switch (scenario.kind) {
    case "bare":
      return bare(scenario.bytes)
    case "throughput":
      return Effect.runPromise(throughput(scenario.url, scenario.bytes))
    case "latency":
      return Effect.runPromise(latency(scenario.url, scenario.runs))
    case "delta":
      return Effect.runPromise(delta(scenario.url, scenario.lines))
    case "scale":
      return Effect.runPromise(scale(scenario.url, scenario.calls))
    case "flood":
      return Effect.runPromise(flood(scenario.url, scenario.processes, scenario.bytes))
  }
}

if (process.argv[1]?.endsWith("scenario.ts")) {
  const scenario = JSON.parse(process.argv[2]!) as Scenario
  const measured = await run(scenario)
  console.log(JSON.stringify({ ...measured, clientPeakRssMiB: peakRssMiB() }))
  process.exit(0)
}
