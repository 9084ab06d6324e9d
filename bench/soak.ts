/**
 * `npm run soak`: 50 clients × 20 processes each, streaming through one
 * exec-server (a separate process on 127.0.0.1) for 60 s; beside them, one
 * client in five also runs a process on a pseudo-terminal in a loop (typed
 * input, its echo and output checked) and a file loop through the server's `fs/*` methods
 * (write, stat, list, read back, copy, remove; every byte compared). Every
 * process prints a known sequence; every byte is compared. Exits 1 on any
 * error or lost byte, or when the server's RSS keeps growing over the last
 * third. Not part of CI's run.
 *
 * Options: `node bench/soak.ts [seconds=60] [clients=50] [processesPerClient=20]`.
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import * as OutputSink from "../src/OutputSink.ts"

const [seconds = 60, clients = 50, perClient = 20] = process.argv.slice(2).map(Number)
/** What is mixed in beside the streaming processes (`SOAK_MIX`, default `tty,files`). */
const mix = (process.env.SOAK_MIX ?? "tty,files").split(",")
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
let ttyRuns = 0
let fileRounds = 0
let fileBytes = 0
const failures: Array<string> = []
const fail = (wrong: boolean, message: string) => {
  if (wrong) lostOrWrong++
  else errors++
  failures.push(message)
}

/** Where the file loops write: one directory per client, removed at the end. */
const scratch = mkdtempSync(join(tmpdir(), "soak-"))

/** One line typed into `sh`'s terminal, its echo, and the command's answer, as the terminal shows them. */
const ttyExpected = (round: number) => `line ${round}\r\ngot line ${round}\r\n`

/** A process on a pseudo-terminal, in a loop: what is typed comes back echoed, then answered. */
const terminalLoop = (index: number) =>
  Effect.gen(function*() {
    for (let round = 0; Date.now() < deadline; round++) {
      const outcome = yield* Effect.result(Exec.run({
        command: ["sh", "-c", "read line; printf 'got %s\\n' \"$line\""],
        cwd: "/tmp",
        timeout: "60 seconds",
        tty: { input: Stream.make(new TextEncoder().encode(`line ${round}\r`)) }
      }))
      ttyRuns++
      if (outcome._tag === "Failure") fail(false, `client ${index} tty: ${outcome.failure.message}`)
      else if (outcome.success.exitCode !== 0 || outcome.success.stdout.text !== ttyExpected(round)) {
        fail(
          true,
          `client ${index} tty: exit ${outcome.success.exitCode}, ${JSON.stringify(outcome.success.stdout.text)}`
        )
      }
    }
  })

/** Files through the server's `fs/*` methods, in a loop: sizes from empty to 1 MiB, every byte compared. */
const fileLoop = (index: number) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const directory = join(scratch, `client-${index}`)
    for (let round = 0; Date.now() < deadline; round++) {
      const size = [0, 1, 4096, 65_537, 1024 * 1024][round % 5]!
      const data = Uint8Array.from({ length: size }, (_, i) => (i * 7 + round + index) & 255)
      const file = join(directory, `f${round % 3}`)
      const outcome = yield* Effect.result(Effect.gen(function*() {
        yield* fs.makeDirectory(directory, { recursive: true })
        yield* fs.writeFile(file, data)
        const info = yield* fs.stat(file)
        const listed = yield* fs.readDirectory(directory)
        const back = yield* fs.readFile(file)
        yield* fs.copy(file, `${file}.copy`, { overwrite: true })
        const copied = yield* fs.readFile(`${file}.copy`)
        yield* fs.remove(`${file}.copy`)
        return { info, listed, back, copied }
      }))
      fileRounds++
      if (outcome._tag === "Failure") {
        fail(false, `client ${index} files: ${outcome.failure.message}`)
        continue
      }
      const { back, copied, info, listed } = outcome.success
      const same = (bytes: Uint8Array) => Buffer.from(bytes).equals(Buffer.from(data))
      if (Number(info.size) !== size || !listed.includes(`f${round % 3}`) || !same(back) || !same(copied)) {
        fail(true, `client ${index} files: round ${round}, ${size} bytes came back as ${back.length}`)
      } else fileBytes += 2 * size
    }
  })

/**
 * Every connection is opened (a few at a time) before any load starts: the
 * soak is about the long run, and one client process starting 1 000 streams
 * would starve its own later handshakes.
 */
const connecting = Effect.runSync(Semaphore.make(5))
const allConnected = Effect.runSync(Latch.make())
let connected = 0
const connectThenWait = connecting.withPermits(1)(Exec.run({ command: ["true"], cwd: "/tmp" })).pipe(
  Effect.ensuring(Effect.suspend(() => ++connected === connectionCount ? allConnected.open : Effect.void)),
  Effect.andThen(allConnected.await)
)
/** Every client's connection, and one more for each client that mixes in a terminal and files. */
const mixing = (index: number) => index % 5 === 0 && mix.some((kind) => kind === "tty" || kind === "files")
const connectionCount = clients + Array.from({ length: clients }, (_, i) => i).filter(mixing).length

const remote = () => Layer.mergeAll(Environment.layerRemote({ url }), OutputSink.layerDiscard)

/** One client: its own connection, `perClient` processes at a time printing a known sequence, until the deadline. */
const client = (index: number) =>
  Effect.all([
    Effect.andThen(connectThenWait, pipeLoops(index)).pipe(Effect.provide(remote())),
    // one client in five also keeps a terminal and a file loop going, on a connection of their own (a user at a
    // terminal beside a build): mixed in, not the bulk of the load
    mixing(index)
      ? Effect.andThen(
        connectThenWait,
        Effect.all([
          ...(mix.includes("tty") ? [terminalLoop(index)] : []),
          ...(mix.includes("files") ? [fileLoop(index)] : [])
        ], { concurrency: "unbounded", discard: true })
      ).pipe(Effect.provide(remote()))
      : Effect.void
  ], { concurrency: "unbounded", discard: true }).pipe(
    Effect.catch((error) => Effect.sync(() => fail(false, `client ${index}: ${error.message}`)))
  )

/** `perClient` processes at a time printing a known sequence, until the deadline. */
const pipeLoops = (index: number) =>
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
  )

const started = Date.now()
await Effect.runPromise(
  Effect.forEach(Array.from({ length: clients }, (_, i) => i), client, { concurrency: "unbounded", discard: true })
)
clearInterval(sampler)
server.kill("SIGTERM")
rmSync(scratch, { recursive: true, force: true })

const at = (fraction: number) => samples[Math.min(samples.length - 1, Math.floor(fraction * samples.length))]?.rss ?? 0
// the first part fills the windows and the closed-process retention; flat means the last third adds < 15 %
const early = at(2 / 3)
const late = at(0.99)
const flat = late <= early * 1.15 + 16
console.log(
  `runs ${runs} in ${((Date.now() - started) / 1000).toFixed(0)} s (${clients} clients × ${perClient} at a time)`
)
console.log(
  `terminal runs ${ttyRuns}, file rounds ${fileRounds} (${(fileBytes / 1024 / 1024).toFixed(0)} MiB read back)`
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
// a few of each kind: pipes, terminals, files
for (const kind of [/^client \d+: /, / tty: /, / files: /]) {
  for (const failure of failures.filter((failure) => kind.test(failure)).slice(0, 4)) console.log(`  ${failure}`)
}
process.exit(errors === 0 && lostOrWrong === 0 && flat ? 0 : 1)
