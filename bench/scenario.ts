/**
 * One benchmark scenario, run in a process of its own so that its peak RSS and
 * CPU time are its own. Usage: `node bench/scenario.ts '<json config>'`;
 * prints one JSON line with the measurements. It imports the library as a user
 * does (`effect-exec/…`: the built `dist/`), and `npm run bench` runs it
 * compiled, so that neither pays for Node's type stripping.
 */
import * as Environment from "effect-exec/Environment"
import * as Exec from "effect-exec/Exec"
import * as OutputSink from "effect-exec/OutputSink"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"

/** Where a scenario runs: here, or on the exec-server at `url` (binary output frames unless told not). */
export interface Where {
  readonly url?: string | undefined
  readonly binaryOutput?: boolean | undefined
}

export type Scenario =
  | { readonly kind: "bare"; readonly bytes: number }
  | { readonly kind: "throughput"; readonly bytes: number } & Where
  | { readonly kind: "parallel"; readonly bytes: number; readonly streams: number } & Where
  | { readonly kind: "pairedLatency"; readonly runs: number; readonly url: string }
  | { readonly kind: "delta"; readonly lines: number } & Where
  | { readonly kind: "scale"; readonly calls: number; readonly connections: number } & Where
  | { readonly kind: "flood"; readonly processes: number; readonly bytes: number } & Where

/** Peak resident set of a process, in MiB (VmHWM). */
export const peakRssMiB = (pid: number | "self" = "self"): number => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0)
  return kib / 1024
}

/** CPU time (user + system) of this process since `since`, in ms. */
const cpuMsSince = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1000
}

const environment = ({ binaryOutput, url }: Where) =>
  url === undefined
    ? Environment.layerLocal
    : Environment.layerRemote({ url, binaryOutput: binaryOutput ?? true, requestTimeout: "2 minutes" })

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

const command = (bytes: number) => ["head", "-c", String(bytes), "/dev/zero"]

/** Reads `bytes` from a child's pipe with plain Node, to nowhere. */
const bare = (bytes: number) =>
  new Promise<Record<string, number>>((resolve) => {
    const cpu = process.cpuUsage()
    const started = performance.now()
    const child = spawn(command(bytes)[0]!, command(bytes).slice(1), { stdio: ["ignore", "pipe", "ignore"] })
    let received = 0
    child.stdout.on("data", (chunk: Buffer) => (received += chunk.length))
    child.on("close", () => resolve({ ms: performance.now() - started, cpuMs: cpuMsSince(cpu), bytes: received }))
  })

/** One stream of `bytes` through `Exec.run`, every byte counted. */
const stream = (bytes: number) =>
  Effect.map(
    Exec.run({ command: command(bytes), cwd: "/tmp", timeout: "10 minutes" }),
    (result) => ({
      bytes: result.stdout.totalBytes,
      droppedByExecutor: result.droppedByExecutor,
      exitCode: result.exitCode ?? -1
    })
  )

const throughput = (where: Where, bytes: number) =>
  Effect.gen(function*() {
    yield* Exec.run({ command: ["true"], cwd: "/tmp" }) // connected, and the loop warm
    const cpu = process.cpuUsage()
    const started = performance.now()
    const result = yield* stream(bytes)
    return { ms: performance.now() - started, cpuMs: cpuMsSince(cpu), ...result }
  }).pipe(Effect.provide(Layer.mergeAll(environment(where), OutputSink.layerDiscard)))

/** `streams` streams of `bytes` each at once (on one connection when remote). */
const parallel = (where: Where, bytes: number, streams: number) =>
  Effect.gen(function*() {
    yield* Exec.run({ command: ["true"], cwd: "/tmp" })
    const cpu = process.cpuUsage()
    const started = performance.now()
    const results = yield* Effect.forEach(Array.from({ length: streams }), () => stream(bytes), {
      concurrency: "unbounded"
    })
    return {
      ms: performance.now() - started,
      cpuMs: cpuMsSince(cpu),
      bytes: results.reduce((total, r) => total + r.bytes, 0),
      droppedByExecutor: results.reduce((total, r) => total + r.droppedByExecutor, 0),
      streams
    }
  }).pipe(Effect.provide(Layer.mergeAll(environment(where), OutputSink.layerDiscard)))

/**
 * `true` start → closed on the local executor and on the server at `url`,
 * alternately in this one process, so that both see the same machine load:
 * the ratio of their medians is taken within the run.
 */
const pairedLatency = async (url: string, runs: number) => {
  const local = ManagedRuntime.make(Layer.mergeAll(environment({}), OutputSink.layerDiscard))
  const remote = ManagedRuntime.make(Layer.mergeAll(environment({ url }), OutputSink.layerDiscard))
  const once = async (runtime: typeof local) => {
    const started = performance.now()
    const result = await runtime.runPromise(Exec.run({ command: ["true"], cwd: "/tmp" }))
    if (result.exitCode !== 0) throw new Error(`true exited ${result.exitCode}`)
    return performance.now() - started
  }
  await once(local) // warm-up: connection, JIT
  await once(remote)
  const times = { local: [] as Array<number>, remote: [] as Array<number> }
  for (let i = 0; i < runs; i++) {
    times.local.push(await once(local))
    times.remote.push(await once(remote))
  }
  await Promise.all([local.dispose(), remote.dispose()])
  const sorted = (values: Array<number>) => values.sort((a, b) => a - b)
  const [l, r] = [sorted(times.local), sorted(times.remote)]
  return {
    localP50: percentile(l, 0.5),
    p50: percentile(r, 0.5),
    p99: percentile(r, 0.99)
  }
}

/** Time from a line the child writes (stamped with the wall clock) to its delta at the sink. */
const delta = (where: Where, lines: number) => {
  const delays: Array<number> = []
  let pending = ""
  const decoder = new TextDecoder()
  const sink = Layer.succeed(
    OutputSink.OutputSink,
    OutputSink.OutputSink.of({
      emit: (delta) =>
        Effect.sync(() => {
          const now = (performance.timeOrigin + performance.now()) * 1000 // µs
          pending += decoder.decode(delta.chunk)
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
    Effect.provide(Layer.mergeAll(environment(where), sink)),
    Effect.map(() => {
      delays.sort((a, b) => a - b)
      return { samples: delays.length, p50Micros: percentile(delays, 0.5), p99Micros: percentile(delays, 0.99) }
    })
  )
}

/**
 * `calls` concurrent `Exec.run` of `sh -c 'echo i'`, each output checked,
 * spread over `connections` environments (each its own connection when
 * remote).
 */
const scale = (where: Where, calls: number, connections: number) =>
  Effect.gen(function*() {
    const environments = yield* Effect.forEach(
      Array.from({ length: connections }),
      () => Layer.build(Layer.mergeAll(environment(where), OutputSink.layerDiscard))
    )
    const run = (i: number) =>
      Exec.run({ command: ["sh", "-c", `echo ${i}`], cwd: "/tmp", timeout: "2 minutes" }).pipe(
        Effect.provide(environments[i % connections]!)
      )
    // each connection warm before the clock starts
    yield* Effect.forEach(environments.keys(), (i) => run(i), { concurrency: "unbounded", discard: true })
    const started = performance.now()
    const results = yield* Effect.forEach(
      Array.from({ length: calls }, (_, i) => i),
      (i) => Effect.result(run(i)),
      { concurrency: "unbounded" }
    )
    const failures = results.flatMap((r, i) =>
      r._tag === "Failure"
        ? [r.failure.message]
        : r.success.exitCode !== 0 || r.success.stdout.text !== `${i}\n`
        ? [
          `call ${i}: ${r.success.termination._tag}` +
          (r.success.termination._tag === "Lost" ? ` (${r.success.termination.error.message})` : "") +
          `, exit ${r.success.exitCode}, ${r.success.stdout.text.length} bytes, dropped ${r.success.droppedByExecutor}`
        ]
        : []
    )
    return { ms: performance.now() - started, calls, connections, errors: failures.length, firstError: failures[0] }
  }).pipe(Effect.scoped)

/** Processes whose output nobody reads: memory must stay bounded by retention. */
const flood = (where: Where, processes: number, bytes: number) =>
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
  }).pipe(Effect.provide(environment(where)))

const run = async (scenario: Scenario): Promise<Record<string, unknown>> => {
  switch (scenario.kind) {
    case "bare":
      return bare(scenario.bytes)
    case "throughput":
      return Effect.runPromise(throughput(scenario, scenario.bytes))
    case "parallel":
      return Effect.runPromise(parallel(scenario, scenario.bytes, scenario.streams))
    case "pairedLatency":
      return pairedLatency(scenario.url, scenario.runs)
    case "delta":
      return Effect.runPromise(delta(scenario, scenario.lines))
    case "scale":
      return Effect.runPromise(scale(scenario, scenario.calls, scenario.connections))
    case "flood":
      return Effect.runPromise(flood(scenario, scenario.processes, scenario.bytes))
  }
}

if (/scenario\.[jt]s$/.test(process.argv[1] ?? "")) {
  const scenario = JSON.parse(process.argv[2]!) as Scenario
  const measured = await run(scenario)
  console.log(JSON.stringify({ ...measured, clientPeakRssMiB: peakRssMiB() }))
  process.exit(0)
}
