/**
 * A slow reader between a client and a stdio exec-server, run as a program:
 * the `program` of an `environments.toml` entry, so the Codex CLI talks to the
 * server through it.
 *
 *   node slowStdioRelay.ts --stall-after BYTES --stall-ms MILLIS -- PROGRAM ARGS…
 *
 * It relays both directions unchanged, except that once BYTES have come from
 * the server it stops reading the server's stdout for MILLIS, once: the pipe
 * fills and the server's writes wait, as behind any slow consumer. Signals are
 * passed on to the server, and the relay exits with it.
 */
import { spawn } from "node:child_process"

const argv = process.argv.slice(2)
const separator = argv.indexOf("--")
const option = (name: string): number => {
  const index = argv.indexOf(name)
  const value = Number(index === -1 || index > separator ? NaN : argv[index + 1])
  if (!Number.isFinite(value)) throw new Error(`slowStdioRelay: ${name} N is required before --`)
  return value
}
const stallAfterBytes = option("--stall-after")
const stallMillis = option("--stall-ms")
const [command, ...args] = argv.slice(separator + 1)
if (separator === -1 || command === undefined) throw new Error("slowStdioRelay: -- PROGRAM ARGS… is required")

const server = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] })
server.on("error", (error) => {
  process.stderr.write(`slowStdioRelay: ${error.message}\n`)
  process.exit(127)
})
server.stdin.on("error", () => {})
process.stdin.pipe(server.stdin)

let relayed = 0
let stalled = false
let stalling = false
let waitingForDrain = false
const resumeWhenFree = () => {
  if (!stalling && !waitingForDrain) server.stdout.resume()
}
server.stdout.on("data", (chunk: Buffer) => {
  relayed += chunk.length
  if (!process.stdout.write(chunk)) {
    waitingForDrain = true
    server.stdout.pause()
    process.stdout.once("drain", () => {
      waitingForDrain = false
      resumeWhenFree()
    })
  }
  if (!stalled && relayed >= stallAfterBytes) {
    stalled = stalling = true
    server.stdout.pause()
    setTimeout(() => {
      stalling = false
      resumeWhenFree()
    }, stallMillis)
  }
})
server.stdout.on("end", () => process.stdout.end())
server.on("exit", (code, signal) => {
  process.exitCode = code ?? (signal === null ? 1 : 128)
})
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  process.on(signal, () => server.kill(signal))
}
