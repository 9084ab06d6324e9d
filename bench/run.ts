/**
 * `npm run bench`: throughput, latency, memory and scale of local and remote
 * execution against the kernel's own pipe, side by side in one run, printed
 * as tables. The machine is shared and noisy: every figure that is compared
 * is taken in interleaved rounds and reported as a median (with its range),
 * and every ratio is one measured in the same round. Each scenario runs in a
 * fresh client process (`bench/scenario.ts`, compiled, importing the built
 * library), each remote one against a fresh server process (the built CLI's
 * `serve`), so each peak RSS and CPU time belongs to one scenario. Last, the
 * fleet (`bench/fleet.ts`): four servers in network namespaces against one.
 *
 * `node bench/run.ts [rounds=3]`; `npm run bench` builds first (about five
 * minutes on a loaded 2-core machine).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir, totalmem } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { ensureCodex } from "../test/support/codexServer.ts"
import type { Scenario, Where } from "./scenario.ts"
import { measureStartup } from "./startup.ts"

const MiB = 1024 * 1024
const STREAM = 256 * MiB
const ROUNDS = Number(process.argv[2] ?? 3)
const root = fileURLToPath(new URL("..", import.meta.url))
const node = process.execPath
/** The built executable's shebang finds `node` on PATH: make it this Node. */
const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ""}`, EXEC_SERVER_URL: "" }
const cli = join(root, JSON.parse(readFileSync(join(root, "package.json"), "utf8")).bin["effect-exec"])
/** The CLI's own Node flags (its shebang's), which client scenarios run with unless a row says otherwise. */
const cliFlags = ["--max-semi-space-size=1"]
const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100

type Result = Record<string, number | string | undefined>

// =============================================================================
// Processes
// =============================================================================

/** CPU time (user + system) of a live process so far, in ms. */
const cpuMsOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond
}

const peakRssOf = (pid: number) =>
  Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024

interface Server {
  readonly url: string
  readonly child: ChildProcess
  readonly stop: () => Promise<void>
}

/** Starts a server process that prints its ws:// address first. */
const startServer = (command: string, args: ReadonlyArray<string>, serverEnv: NodeJS.ProcessEnv = env) =>
  new Promise<Server>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"], env: serverEnv, cwd: tmpdir() })
    let stdout = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      if (!stdout.includes("\n")) return
      resolve({
        url: stdout.split("\n")[0]!.trim(),
        child,
        stop: () =>
          new Promise((done) => {
            child.once("exit", () => done())
            child.kill("SIGTERM")
          })
      })
    })
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`${command} exited ${code} before listening`)))
  })

/** Our server as a user starts it: the built executable, its shebang's Node flags included. */
const ours = () => startServer(cli, ["serve"])

/** The released Codex exec-server, when it can be installed. */
const codexServer = async (): Promise<(() => Promise<Server>) | undefined> => {
  try {
    const binary = await ensureCodex()
    return async () => {
      const home = mkdtempSync(join(tmpdir(), "bench-codex-home-"))
      const server = await startServer(binary, ["exec-server", "--listen", "ws://127.0.0.1:0"], { ...env, HOME: home })
      return { ...server, stop: () => server.stop().finally(() => rmSync(home, { recursive: true, force: true })) }
    }
  } catch (error) {
    console.error(`(Codex exec-server not available: ${(error as Error).message.split("\n")[0]})`)
    return undefined
  }
}

/** Compiles the scenario to plain JavaScript next to the build: no type stripping in the measured process. */
const compileScenario = (): string => {
  const out = join(root, ".cache/bench")
  mkdirSync(out, { recursive: true })
  const config = join(out, "tsconfig.json")
  writeFileSync(
    config,
    JSON.stringify({
      extends: join(root, "tsconfig.json"),
      // `effect-exec/…` resolved as a user's code resolves it: to the built dist/, not to the sources
      compilerOptions: {
        rootDir: join(root, "bench"),
        outDir: out,
        noEmit: false,
        declaration: false,
        sourceMap: false,
        noEmitOnError: true,
        paths: {}
      },
      include: [join(root, "bench/scenario.ts")]
    })
  )
  execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", config], { stdio: "inherit" })
  if (!existsSync(join(root, "dist/index.js"))) throw new Error("dist/ is missing: run `npm run build` first")
  return join(out, "scenario.js")
}

let scenarioScript = ""

/** Runs one scenario in a fresh client process. */
const measure = (scenario: Scenario, flags: ReadonlyArray<string> = cliFlags): Result => {
  const out = execFileSync(node, [...flags, scenarioScript, JSON.stringify(scenario)], {
    encoding: "utf8",
    maxBuffer: 16 * MiB,
    stdio: ["ignore", "pipe", "inherit"],
    env
  })
  return JSON.parse(out.trim().split("\n").pop()!)
}

/** Runs a scenario against a fresh server; adds the server's CPU time over it and its peak RSS. */
const measureRemote = async (
  start: () => Promise<Server>,
  scenario: (url: string) => Scenario,
  flags: ReadonlyArray<string> = cliFlags
): Promise<Result> => {
  const server = await start()
  try {
    const cpu = cpuMsOf(server.child.pid!)
    const result = measure(scenario(server.url), flags)
    return { ...result, serverCpuMs: cpuMsOf(server.child.pid!) - cpu, serverPeakRssMiB: peakRssOf(server.child.pid!) }
  } finally {
    await server.stop()
  }
}

/** `head -c bytes /dev/zero | wc -c` as a shell runs it: the kernel pipe, the yardstick. */
const kernelPipe = (bytes: number): Result => {
  const started = performance.now()
  const counted = execFileSync("sh", ["-c", `head -c ${bytes} /dev/zero | wc -c`], { encoding: "utf8" })
  return { ms: performance.now() - started, bytes: Number(counted.trim()) }
}

/**
 * The CLI as a user pipes it: `effect-exec run [--remote URL] -- head -c … |
 * wc -c`, every byte counted by `wc`; its start-up (`run -- true`, measured
 * next to it) taken off the time.
 */
const viaCli = (bytes: number, url?: string): Result => {
  const remote = url === undefined ? "" : `--remote ${url} `
  const timed = (command: string) => {
    const started = performance.now()
    const out = execFileSync("sh", ["-c", command], { encoding: "utf8", env })
    return { ms: performance.now() - started, out: out.trim() }
  }
  const startup = timed(`${cli} run ${remote}-- true`).ms
  const run = timed(`${cli} run ${remote}-- head -c ${bytes} /dev/zero | wc -c`)
  return { ms: run.ms - startup, startupMs: startup, bytes: Number(run.out) }
}

// =============================================================================
// Figures
// =============================================================================

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? "—" : n.toFixed(digits))
const num = (r: Result, key: string) => {
  const value = r[key]
  return typeof value === "number" ? value : undefined
}
const mibps = (r: Result) => (num(r, "bytes")! / MiB) / (num(r, "ms")! / 1000)
const median = (values: ReadonlyArray<number>) => {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!
}
/** "median (min–max)". */
const spread = (values: ReadonlyArray<number>, digits = 0) => {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
  return sorted.length === 0
    ? "—"
    : `${fmt(median(sorted), digits)} (${fmt(sorted[0], digits)}–${fmt(sorted[sorted.length - 1], digits)})`
}
const maxOf = (runs: ReadonlyArray<Result>, key: string) => Math.max(...runs.map((r) => num(r, key) ?? NaN))

const rows: Array<Array<string>> = []
const row = (...cells: Array<string>) => rows.push(cells)

/** Prints every section as a table of its own: a section starts at a row whose first cell is bold. */
const printTables = () => {
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

// =============================================================================
// Sections
// =============================================================================

/** One throughput row: its runs, round by round. */
interface Row {
  readonly label: string
  readonly note: string
  readonly run: () => Result | Promise<Result>
  /** Measured in the first round only (a slow row whose figure says enough once). */
  readonly once?: boolean
  readonly runs: Array<Result>
}

/** Interleaved rounds of every row; each row's ratio to the kernel pipe is taken within its round. */
const throughput = async (codex: (() => Promise<Server>) | undefined) => {
  const where = (url: string, binaryOutput: boolean): Where => ({ url, binaryOutput })
  const stream = (w: Where): Scenario => ({ kind: "throughput", bytes: STREAM, ...w })
  const table: Array<Row> = [
    {
      label: "kernel pipe: `head -c 256MiB /dev/zero \\| wc -c`",
      note: "the yardstick",
      run: () => kernelPipe(STREAM)
    },
    { label: "bare Node pipe, read to nowhere", note: "", run: () => measure({ kind: "bare", bytes: STREAM }) },
    { label: "Exec.run, local", note: "shellTool capture", run: () => measure(stream({})) },
    {
      label: "Exec.run, remote, binary frames",
      note: "our client and server",
      run: () => measureRemote(ours, (url) => stream(where(url, true)))
    },
    {
      label: "Exec.run, remote, JSON",
      note: "what a Codex client gets",
      run: () => measureRemote(ours, (url) => stream(where(url, false)))
    },
    { label: "Exec.run, local, no Node flags", note: "the library as is", run: () => measure(stream({}), []) },
    {
      label: "Exec.run, remote binary, no Node flags",
      note: "the library as is",
      run: () => measureRemote(ours, (url) => stream(where(url, true)), [])
    },
    { label: "CLI `run … \\| wc -c`, local", note: "start-up taken off", run: () => viaCli(STREAM) },
    {
      label: "CLI `run --remote … \\| wc -c`",
      note: "start-up taken off",
      run: async () => {
        const server = await ours()
        try {
          return viaCli(STREAM, server.url)
        } finally {
          await server.stop()
        }
      }
    },
    ...(codex === undefined ? [] : [{
      label: "Exec.run, remote, Codex exec-server 0.169.0",
      note: "lossy; first round only",
      once: true,
      run: () => measureRemote(codex, (url) => stream(where(url, false)))
    }])
  ].map((r) => ({ ...r, runs: [] }))
  for (let round = 0; round < ROUNDS; round++) {
    console.error(`throughput round ${round + 1}/${ROUNDS}`)
    for (const r of table) if (round === 0 || r.once !== true) r.runs.push(await r.run())
  }
  const kernel = table[0]!.runs
  row(
    `**Throughput**, 256 MiB (${ROUNDS} interleaved rounds)`,
    "MiB/s median (range)",
    "× kernel pipe",
    "client CPU ms",
    "server CPU ms",
    "client peak RSS MiB",
    "server peak RSS MiB",
    "bytes",
    "note"
  )
  for (const r of table) {
    const received = r.runs.map((x) => num(x, "bytes")! - (num(x, "droppedByExecutor") ?? 0))
    row(
      r.label,
      spread(r.runs.map(mibps)),
      fmt(median(r.runs.map((x, i) => mibps(x) / mibps(kernel[i]!))), 2),
      fmt(median(r.runs.map((x) => num(x, "cpuMs") ?? NaN))),
      fmt(median(r.runs.map((x) => num(x, "serverCpuMs") ?? NaN))),
      fmt(maxOf(r.runs, "clientPeakRssMiB")),
      fmt(maxOf(r.runs, "serverPeakRssMiB")),
      received.every((b) => b === STREAM)
        ? "all"
        : `${fmt(Math.min(...received) / MiB, 1)}–${fmt(Math.max(...received) / MiB, 1)} MiB`,
      r.note
    )
  }
  return table
}

/** 4 streams at once against one, local and remote (one connection), rounds interleaved. */
const parallelStreams = async (single: { readonly local: Array<Result>; readonly remote: Array<Result> }) => {
  const rounds = Math.max(1, Math.ceil(ROUNDS / 2))
  const local: Array<Result> = []
  const remote: Array<Result> = []
  for (let round = 0; round < rounds; round++) {
    console.error(`parallel round ${round + 1}/${rounds}`)
    local.push(measure({ kind: "parallel", bytes: STREAM, streams: 4 }))
    remote.push(await measureRemote(ours, (url) => ({ kind: "parallel", bytes: STREAM, streams: 4, url })))
  }
  row(
    `**Parallel**, 4 × 256 MiB at once (${rounds} rounds)`,
    "total MiB/s median (range)",
    "× one stream",
    "client CPU ms",
    "client peak RSS MiB",
    "server peak RSS MiB",
    "bytes"
  )
  for (
    const [label, runs, one] of [["local", local, single.local], [
      "remote, one connection",
      remote,
      single.remote
    ]] as const
  ) {
    row(
      label,
      spread(runs.map(mibps)),
      fmt(median(runs.map(mibps)) / median(one.map(mibps)), 2),
      fmt(median(runs.map((x) => num(x, "cpuMs") ?? NaN))),
      fmt(maxOf(runs, "clientPeakRssMiB")),
      fmt(maxOf(runs, "serverPeakRssMiB")),
      runs.every((x) => num(x, "bytes") === 4 * STREAM) ? "all" : "LOST"
    )
  }
}

/** `true` start → closed, and the delay of a byte from the child to the sink. */
const latency = async (codex: (() => Promise<Server>) | undefined) => {
  const runs = 200
  // each server's runs alternate with local ones in one client process: the ratio is taken under one load
  const remote = await measureRemote(ours, (url) => ({ kind: "pairedLatency", url, runs }))
  const viaCodex = codex && await measureRemote(codex, (url) => ({ kind: "pairedLatency", url, runs }))
  row(
    `**Latency** \`true\`, start → closed, ${runs} runs each, alternating with local ones`,
    "p50 ms",
    "p99 ms",
    "local p50 ms (same process)",
    "p50 × local"
  )
  for (const [label, r] of [["remote, our exec-server", remote], ["remote, Codex exec-server", viaCodex]] as const) {
    if (r === undefined) continue
    row(
      label,
      fmt(num(r, "p50"), 2),
      fmt(num(r, "p99"), 2),
      fmt(num(r, "localP50"), 2),
      fmt(num(r, "p50")! / num(r, "localP50")!, 2)
    )
  }
  const deltaLocal = measure({ kind: "delta", lines: 100 })
  const deltaRemote = await measureRemote(ours, (url) => ({ kind: "delta", url, lines: 100 }))
  row("**Byte → OutputSink delta** (the child stamps the wall clock)", "p50 ms", "p99 ms", "samples")
  for (const [label, r] of [["local", deltaLocal], ["remote, our exec-server", deltaRemote]] as const) {
    row(label, fmt(num(r, "p50Micros")! / 1000, 2), fmt(num(r, "p99Micros")! / 1000, 2), String(r.samples))
  }
}

/** Peak RSS against output size, and 100 processes whose output nobody reads. */
const memory = async (full: { readonly local: Array<Result>; readonly remote: Array<Result> }) => {
  const smallLocal = measure({ kind: "throughput", bytes: STREAM / 4 })
  const smallRemote = await measureRemote(ours, (url) => ({ kind: "throughput", url, bytes: STREAM / 4 }))
  row(
    "**Memory**, peak RSS MiB against output size",
    "64 MiB: client",
    "256 MiB: client",
    "64 MiB: server",
    "256 MiB: server"
  )
  row("local", fmt(num(smallLocal, "clientPeakRssMiB")), fmt(maxOf(full.local, "clientPeakRssMiB")), "—", "—")
  row(
    "remote, binary frames",
    fmt(num(smallRemote, "clientPeakRssMiB")),
    fmt(maxOf(full.remote, "clientPeakRssMiB")),
    fmt(num(smallRemote, "serverPeakRssMiB")),
    fmt(maxOf(full.remote, "serverPeakRssMiB"))
  )
  const floodLocal = measure({ kind: "flood", processes: 100, bytes: 10 * MiB })
  const floodRemote = await measureRemote(ours, (url) => ({ kind: "flood", url, processes: 100, bytes: 10 * MiB }))
  row("**Memory**, 100 processes × 10 MiB nobody reads", "s", "client peak RSS MiB", "server peak RSS MiB")
  row("local", fmt(num(floodLocal, "ms")! / 1000, 1), fmt(num(floodLocal, "clientPeakRssMiB")), "—")
  row(
    "remote",
    fmt(num(floodRemote, "ms")! / 1000, 1),
    fmt(num(floodRemote, "clientPeakRssMiB")),
    fmt(num(floodRemote, "serverPeakRssMiB"))
  )
}

/** 2 000 concurrent `Exec.run`, locally, over one connection, over 20. */
const scale = async () => {
  const calls = 2000
  const local = measure({ kind: "scale", calls, connections: 1 })
  const one = await measureRemote(ours, (url) => ({ kind: "scale", calls, connections: 1, url }))
  const twenty = await measureRemote(ours, (url) => ({ kind: "scale", calls, connections: 20, url }))
  row(
    `**Scale**, ${calls} concurrent \`Exec.run\` (\`sh -c 'echo i'\`, each output checked)`,
    "wall s",
    "errors",
    "first error"
  )
  for (
    const [label, r] of [["local", local], ["remote, one connection", one], ["remote, 20 connections", twenty]] as const
  ) {
    row(label, fmt(num(r, "ms")! / 1000, 1), String(r.errors), String(r.firstError ?? ""))
  }
}

/** The CLI's start-up against `node -e 0` (`bench/startup.ts`). */
const startup = () => {
  const rounds = 20
  const { cli: ours, node: bare } = measureStartup(rounds)
  row(
    `**CLI start** (${rounds} interleaved rounds, compile cache warm)`,
    "median ms",
    "min ms",
    "CPU ms",
    "peak RSS MiB",
    "CPU × node -e 0"
  )
  row("`node -e 0`", fmt(bare.medianMillis), fmt(bare.minMillis), fmt(bare.cpuMillis), fmt(bare.peakRssMiB), "1.00")
  row(
    "`effect-exec run -- true`",
    fmt(ours.medianMillis),
    fmt(ours.minMillis),
    fmt(ours.cpuMillis),
    fmt(ours.peakRssMiB),
    fmt(ours.cpuMillis / bare.cpuMillis, 2)
  )
}

const main = async () => {
  scenarioScript = compileScenario()
  const codex = await codexServer()
  const load = loadavg()
  const began = new Date()
  console.error(`measuring… (${ROUNDS} rounds; about ${ROUNDS + 2} minutes on a loaded 2-core machine)`)
  const table = await throughput(codex)
  const byLabel = (label: string) => table.find((r) => r.label.startsWith(label))!.runs
  const single = { local: byLabel("Exec.run, local"), remote: byLabel("Exec.run, remote, binary") }
  await parallelStreams(single)
  await latency(codex)
  await memory(single)
  await scale()
  startup()
  console.log(
    `\neffect-exec benchmark — ${began.toISOString()} — ${cpus().length} × ${cpus()[0]?.model.trim()}, ` +
      `${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average ` +
      `${load.map((l) => l.toFixed(1)).join(" ")} at the start, ${
        loadavg().map((l) => l.toFixed(1)).join(" ")
      } at the end`
  )
  printTables()

  // ---- fleet -----------------------------------------------------------------
  // its own process: it makes network namespaces (root), and prints its own tables
  console.error("measuring the fleet… (about a minute)")
  process.stdout.write(
    execFileSync(node, [...cliFlags, join(root, "bench/fleet.ts")], {
      encoding: "utf8",
      maxBuffer: 16 * MiB,
      stdio: ["ignore", "pipe", "inherit"]
    })
  )
}

await main()
