/**
 * `npm run soak`: 50 clients × 20 processes each, streaming through one
 * exec-server (a separate process on 127.0.0.1) for 60 s. Every process
 * prints a known sequence; every byte is compared. Exits 1 on any error or
 * lost byte, or when the server's RSS keeps growing. Not part of CI's run.
 *
 * Options: `node bench/soak.ts [seconds=60] [clients=50] [processesPerClient=20]`.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"

const [seconds = 60, clients = 50, perClient = 20] = process.argv.slice(2).map(Number)
const lines = 20_000
const expected = Array.from({ length: lines }, (_, i) => `${i + 1}\n`).join("")

const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024

const bin = fileURLToPath(new URL("../dist/effect-exec.cjs", import.meta.url))
const server = spawn(bin, ["serve"], { stdio: ["ignore", "pipe", "inherit"] })
const url = await new Promise<string>((resolve) =>
  server.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()))
)
console.error(`soak: ${clients} clients × ${perClient} processes for ${seconds} s against ${url}`)

const deadline = Date.now() + seconds * 1000
const samples: Array<{ readonly at: number; readonly rss: number }> = []
const sampler = setInterval(
  () => samples.push({ at: (Date.now() - deadline) / 1000 + seconds, rss: rssMiB(server.pid!) }),
  1000
)

let runs = 0
let errors = 0
let lostOrWrong = 0
const failures: Array<string> = []

/** One client: its own connection, `perClient` processes at a time, until the deadline. */
const client = (index: number) =>
  Effect.forEach(
    Array.from({ length: perClient }, (_, i) => i),
    () =>
      Effect.gen(function*() {
        while (Date.now() < deadline) {
          const outcome = yield* Effect.result(
            Exec.run({ command: ["seq", "1", String(lines)], cwd: "/tmp", timeout: "60 seconds" })
          )
          runs++
          if (outcome._tag === "Failure") {
            errors++
            failures.push(`client ${index}: ${outcome.failure.message}`)
          } else if (outcome.success.exitCode !== 0 || outcome.success.stdout.text !== expected) {
            lostOrWrong++
            const { droppedByExecutor, exitCode, stdout, termination } = outcome.success
            failures.push(
              `client ${index}: ${termination._tag}, exit ${exitCode}, ${stdout.totalBytes} bytes of ${expected.length}` +
                ` (${droppedByExecutor} dropped by the executor)` +
                (termination._tag === "Lost" ? `: ${termination.reason}` : "")
            )
          }
        }
      }),
    { concurrency: "unbounded", discard: true }
  ).pipe(Effect.provide(Layer.mergeAll(Environment.layerRemote({ url }), OutputSink.layerDiscard)))

const started = Date.now()
await Effect.runPromise(
  Effect.forEach(Array.from({ length: clients }, (_, i) => i), client, { concurrency: "unbounded", discard: true })
)
clearInterval(sampler)
server.kill("SIGTERM")

const at = (fraction: number) => samples[Math.min(samples.length - 1, Math.floor(fraction * samples.length))]?.rss ?? 0
// the first part fills the windows and the closed-process retention; flat means the last third adds < 15 %
const early = at(2 / 3)
const late = at(0.99)
const flat = late <= early * 1.15 + 16
console.log(
  `runs ${runs} in ${((Date.now() - started) / 1000).toFixed(0)} s (${clients} clients × ${perClient} at a time)`
)
console.log(
  `errors ${errors}, lost or wrong outputs ${lostOrWrong}, bytes checked ${(runs - errors) * expected.length}`
)
console.log(
  `server RSS MiB every 10 s: ${samples.filter((_, i) => i % 10 === 9).map((s) => s.rss.toFixed(0)).join(" ")}`
)
console.log(
  `server RSS MiB at two thirds: ${early.toFixed(0)}, at the end: ${late.toFixed(0)}, peak: ${
    Math.max(...samples.map((s) => s.rss)).toFixed(0)
  } — ${flat ? "flat" : "GROWING"}`
)
for (const failure of failures.slice(0, 10)) console.log(`  ${failure}`)
process.exit(errors === 0 && lostOrWrong === 0 && flat ? 0 : 1)
