/**
 * `npm run bench`: throughput, latency, memory and scale of local and remote
 * execution, side by side in one run, printed as a table of ratios. Each
 * scenario runs in a fresh client process; remote scenarios get a fresh
 * server process, so each peak RSS belongs to one scenario.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { cpus, tmpdir, totalmem } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { ensureCodex } from "../test/support/codexServer.ts"
import { peakRssMiB, type Scenario } from "./scenario.ts"
import { measureStartup } from "./startup.ts"

const MiB = 1024 * 1024
const STREAM = 256 * MiB
const STARTUP_ROUNDS = 20
const root = fileURLToPath(new URL("..", import.meta.url))
const node = process.execPath

interface Server {
  readonly url: string
  readonly child: ChildProcess
  readonly stop: () => Promise<number>
}

/** Starts a server process that prints its ws:// address first; `stop` returns its peak RSS in MiB. */
const startServer = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  new Promise<Server>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env, cwd: tmpdir() })
    let stdout = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      const line = stdout.split("\n")[0]!
      if (stdout.includes("\n")) {
        resolve({
          url: line.trim(),
          child,
          stop: () =>
            new Promise((done) => {
              const rss = peakRssMiB(child.pid!)
              child.once("exit", () => done(rss))
              child.kill("SIGTERM")
            })
        })
      }
    })
    child.once("exit", (code) => reject(new Error(`${command} exited ${code} before listening`)))
  })

/** Our server as a user starts it: the executable, so its shebang's Node flags apply. */
const ours = () => startServer(join(root, "dist/effect-exec.cjs"), ["serve"])

/** Client scenarios run with the same Node flags as the CLI. */
const clientFlags = ["--max-semi-space-size=1"]

const codex = async (): Promise<(() => Promise<Server>) | undefined> => {
  try {
    const binary = await ensureCodex()
    return () => {
      const home = mkdtempSync(join(tmpdir(), "bench-codex-home-"))
      return startServer(binary, ["exec-server", "--listen", "ws://127.0.0.1:0"], { ...process.env, HOME: home }).then((
        server
      ) => ({
        ...server,
        stop: () => server.stop().finally(() => rmSync(home, { recursive: true, force: true }))
      }))
    }
  } catch (error) {
    console.error(`(Codex exec-server not available: ${(error as Error).message.split("\n")[0]})`)
    return undefined
  }
}

/** Runs one scenario in a fresh client process. */
const measure = (scenario: Scenario): Record<string, number> => {
  const out = execFileSync(node, [...clientFlags, join(root, "bench/scenario.ts"), JSON.stringify(scenario)], {
    encoding: "utf8",
    maxBuffer: 16 * MiB,
    stdio: ["ignore", "pipe", "inherit"]
  })
  return JSON.parse(out.trim().split("\n").pop()!)
}

/** Runs a scenario against a fresh server; adds the server's peak RSS. */
const measureRemote = async (
  start: () => Promise<Server>,
  scenario: (url: string) => Scenario
): Promise<Record<string, number>> => {
  const server = await start()
  try {
    const result = measure(scenario(server.url))
    return { ...result, serverPeakRssMiB: await server.stop() }
  } catch (error) {
    await server.stop()
    throw error
  }
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? "—" : n.toFixed(digits))
const mibps = (r: Record<string, number>) => (r.bytes! / MiB) / (r.ms! / 1000)

const rows: Array<Array<string>> = []
const row = (...cells: Array<string>) => rows.push(cells)

const main = async () => {
  const codexServer = await codex()
  console.error("measuring… (about three minutes)")

  // ---- throughput ----------------------------------------------------------
  // three interleaved rounds (bare, local, remote): the best time of each, the highest peak RSS
  const rounds: Array<Array<Record<string, number>>> = [[], [], []]
  for (let round = 0; round < 3; round++) {
    rounds[0]!.push(measure({ kind: "bare", bytes: STREAM }))
    rounds[1]!.push(measure({ kind: "throughput", bytes: STREAM }))
    rounds[2]!.push(await measureRemote(ours, (url) => ({ kind: "throughput", url, bytes: STREAM })))
  }
  const best = (runs: Array<Record<string, number>>): Record<string, number> => ({
    ...runs.reduce((a, b) => (a.ms! <= b.ms! ? a : b)),
    clientPeakRssMiB: Math.max(...runs.map((r) => r.clientPeakRssMiB!)),
    serverPeakRssMiB: Math.max(...runs.map((r) => r.serverPeakRssMiB ?? NaN))
  })
  const [bare, local, remote] = rounds.map(best) as [
    Record<string, number>,
    Record<string, number>,
    Record<string, number>
  ]
  // Codex drops what its ring cannot hold, so one round says enough
  const viaCodex = codexServer &&
    await measureRemote(codexServer, (url) => ({ kind: "throughput", url, bytes: STREAM }))
  row(
    "**Throughput** 256 MiB `head -c … /dev/zero` (best of 3)",
    "MiB/s",
    "ratio to bare pipe",
    "client peak RSS MiB",
    "server peak RSS MiB",
    "note"
  )
  row("(a) bare Node pipe, read to nowhere", fmt(mibps(bare)), "1.00", fmt(bare.clientPeakRssMiB), "—", "")
  row(
    "(b) Exec.run, local executor",
    fmt(mibps(local)),
    fmt(mibps(local) / mibps(bare), 2),
    fmt(local.clientPeakRssMiB),
    "—",
    "shellTool capture"
  )
  row(
    "(c) Exec.run, remote, our exec-server",
    fmt(mibps(remote)),
    fmt(mibps(remote) / mibps(bare), 2),
    fmt(remote.clientPeakRssMiB),
    fmt(remote.serverPeakRssMiB),
    "lossless (backpressure)"
  )
  if (viaCodex) {
    row(
      "(d) Exec.run, remote, Codex exec-server 0.169.0",
      fmt(mibps(viaCodex)),
      fmt(mibps(viaCodex) / mibps(bare), 2),
      fmt(viaCodex.clientPeakRssMiB),
      fmt(viaCodex.serverPeakRssMiB),
      `received ${
        fmt((viaCodex.bytes! - viaCodex.droppedByExecutor!) / MiB, 1)
      } MiB of 256 (its 1 MiB ring dropped the rest)`
    )
  }
  row(
    "(c) / (d): ours vs Codex, same client loop",
    viaCodex ? fmt(mibps(remote) / mibps(viaCodex), 2) + "×" : "—",
    "",
    "",
    "",
    ""
  )

  // ---- latency ---------------------------------------------------------------
  const runs = 200
  const latencyLocal = measure({ kind: "latency", runs })
  const latencyRemote = await measureRemote(ours, (url) => ({ kind: "latency", url, runs }))
  const latencyCodex = codexServer && await measureRemote(codexServer, (url) => ({ kind: "latency", url, runs }))
  row("**Latency** `true`, start → closed, 200 runs", "p50 ms", "p99 ms", "p50 ratio to local", "", "")
  row("local", fmt(latencyLocal.p50, 2), fmt(latencyLocal.p99, 2), "1.00", "", "")
  row(
    "remote, our exec-server",
    fmt(latencyRemote.p50, 2),
    fmt(latencyRemote.p99, 2),
    fmt(latencyRemote.p50! / latencyLocal.p50!, 2),
    "",
    ""
  )
  if (latencyCodex) {
    row(
      "remote, Codex exec-server",
      fmt(latencyCodex.p50, 2),
      fmt(latencyCodex.p99, 2),
      fmt(latencyCodex.p50! / latencyLocal.p50!, 2),
      "",
      ""
    )
  }
  const deltaLocal = measure({ kind: "delta", lines: 100 })
  const deltaRemote = await measureRemote(ours, (url) => ({ kind: "delta", url, lines: 100 }))
  row("**Byte → OutputSink delta** (child stamps the wall clock)", "p50 ms", "p99 ms", "", "", "")
  row(
    "local",
    fmt(deltaLocal.p50Micros! / 1000, 2),
    fmt(deltaLocal.p99Micros! / 1000, 2),
    "",
    "",
    `${deltaLocal.samples} samples`
  )
  row(
    "remote, our exec-server",
    fmt(deltaRemote.p50Micros! / 1000, 2),
    fmt(deltaRemote.p99Micros! / 1000, 2),
    "",
    "",
    `${deltaRemote.samples} samples`
  )

  // ---- memory -------------------------------------------------------------------
  // the same stream at a quarter of the size: peak RSS must not follow the output
  const smallLocal = measure({ kind: "throughput", bytes: STREAM / 4 })
  const smallRemote = await measureRemote(ours, (url) => ({ kind: "throughput", url, bytes: STREAM / 4 }))
  row(
    "**Memory** peak RSS against output size (shellTool)",
    "64 MiB: client",
    "256 MiB: client",
    "64 MiB: server",
    "256 MiB: server",
    ""
  )
  row("local", fmt(smallLocal.clientPeakRssMiB), fmt(local.clientPeakRssMiB), "—", "—", "")
  row(
    "remote, our exec-server",
    fmt(smallRemote.clientPeakRssMiB),
    fmt(remote.clientPeakRssMiB),
    fmt(smallRemote.serverPeakRssMiB),
    fmt(remote.serverPeakRssMiB),
    ""
  )

  const floodLocal = measure({ kind: "flood", processes: 100, bytes: 10 * MiB })
  const floodRemote = await measureRemote(ours, (url) => ({ kind: "flood", url, processes: 100, bytes: 10 * MiB }))
  row("**Memory** 100 processes × 10 MiB nobody reads", "s", "", "client peak RSS MiB", "server peak RSS MiB", "")
  row("local", fmt(floodLocal.ms! / 1000, 1), "", fmt(floodLocal.clientPeakRssMiB), "—", "retention: 1 MiB per process")
  row(
    "remote, our exec-server",
    fmt(floodRemote.ms! / 1000, 1),
    "",
    fmt(floodRemote.clientPeakRssMiB),
    fmt(floodRemote.serverPeakRssMiB),
    ""
  )

  // ---- scale ---------------------------------------------------------------------
  const scaleLocal = measure({ kind: "scale", calls: 200 })
  const scaleRemote = await measureRemote(ours, (url) => ({ kind: "scale", url, calls: 200 }))
  row("**Scale** 200 concurrent `Exec.run` (`sh -c 'echo i'`)", "wall ms", "errors", "", "", "")
  row("local", fmt(scaleLocal.ms), String(scaleLocal.errors), "", "", "")
  row("remote, our exec-server", fmt(scaleRemote.ms), String(scaleRemote.errors), "", "", "")

  // ---- CLI start -----------------------------------------------------------
  const startup = measureStartup(STARTUP_ROUNDS)
  row(
    `**CLI start** (${STARTUP_ROUNDS} interleaved rounds, compile cache warm)`,
    "median ms",
    "min ms",
    "CPU ms",
    "peak RSS MiB",
    "CPU ratio to node -e 0"
  )
  row(
    "`node -e 0`",
    fmt(startup.node.medianMillis),
    fmt(startup.node.minMillis),
    fmt(startup.node.cpuMillis),
    fmt(startup.node.peakRssMiB),
    "1.00"
  )
  row(
    "`effect-exec run -- true` (dist/effect-exec.cjs)",
    fmt(startup.cli.medianMillis),
    fmt(startup.cli.minMillis),
    fmt(startup.cli.cpuMillis),
    fmt(startup.cli.peakRssMiB),
    fmt(startup.cli.cpuMillis / startup.node.cpuMillis, 2)
  )

  console.log(
    `\neffect-exec benchmark — ${new Date().toISOString()} — ${cpus().length} × ${cpus()[0]?.model.trim()}, ` +
      `${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`
  )
  // each section is a table of its own: its first row is its header
  const sections: Array<Array<Array<string>>> = []
  for (const r of rows) {
    if (r[0]!.startsWith("**")) sections.push([r])
    else sections[sections.length - 1]!.push(r)
  }
  for (const section of sections) {
    const width = Math.max(...section.map((r) => r.length))
    const cells = section.map((r) => Array.from({ length: width }, (_, i) => r[i] ?? ""))
    const used = cells[0]!.map((_, i) => cells.some((r) => r[i] !== "")).map((u, i) => u || i === 0)
    const kept = cells.map((r) => r.filter((_, i) => used[i]))
    const widths = kept[0]!.map((_, i) => Math.max(...kept.map((r) => r[i]!.length)))
    const line = (r: Array<string>) => "| " + r.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |"
    console.log("\n" + line(kept[0]!))
    console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|")
    for (const r of kept.slice(1)) console.log(line(r))
  }
}

await main()
