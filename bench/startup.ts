/**
 * The CLI's start-up, `effect-exec run -- true` as a user runs it (the built
 * executable through its shebang, Node's compile cache warm), against
 * `node -e 0` in the same run: the two take turns, round after round, so
 * both see the same load. Wall time is spawn to exit; CPU is the child's user
 * + system time (from this process's `cutime`/`cstime`); peak RSS is the
 * CLI's own `VmHWM` read by its command (a shell whose parent it is), and
 * Node's `maxRSS` for `node -e 0`.
 *
 * `node bench/startup.ts [rounds]` prints the figures alone; `npm run bench`
 * puts them in its table.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const executable = join(root, "dist/effect-exec.cjs")
/** The executable's shebang finds `node` on PATH: make it this Node. */
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`, EXEC_SERVER_URL: "" }
const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100

/** CPU time of this process's waited-for children so far, in ms. */
const childrenCpuMillis = (): number => {
  const stat = readFileSync("/proc/self/stat", "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // after the command name: state is field 3, cutime 16 and cstime 17 (1-based)
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / ticksPerSecond
}

interface Sample {
  readonly wallMillis: number
  readonly cpuMillis: number
}

const timed = (command: string, args: ReadonlyArray<string>): Sample => {
  const cpuBefore = childrenCpuMillis()
  const started = performance.now()
  const result = spawnSync(command, args, { env, stdio: "ignore" })
  const wallMillis = performance.now() - started
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} exited ${result.status}`)
  return { wallMillis, cpuMillis: childrenCpuMillis() - cpuBefore }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** The figures of one command over the rounds. */
export interface Startup {
  readonly medianMillis: number
  readonly minMillis: number
  /** Median CPU; the clock ticks every 10 ms, so single samples are coarse but the median is fair. */
  readonly cpuMillis: number
  readonly peakRssMiB: number
}

const summarize = (samples: ReadonlyArray<Sample>, peakRssMiB: number): Startup => ({
  medianMillis: median(samples.map((s) => s.wallMillis)),
  minMillis: Math.min(...samples.map((s) => s.wallMillis)),
  cpuMillis: median(samples.map((s) => s.cpuMillis)),
  peakRssMiB
})

/** Measures `node -e 0` and `effect-exec run -- true`, `rounds` turns each after one warm-up. */
export const measureStartup = (rounds = 20): { readonly node: Startup; readonly cli: Startup } => {
  const node = () => timed(process.execPath, ["-e", "0"])
  const cli = () => timed(executable, ["run", "--", "true"])
  // the first start of a Node version fills the compile cache: not what a user sees after
  node()
  cli()
  const nodeSamples: Array<Sample> = []
  const cliSamples: Array<Sample> = []
  for (let round = 0; round < rounds; round++) {
    nodeSamples.push(node())
    cliSamples.push(cli())
  }
  const nodeRssKiB = Number(
    execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.resourceUsage().maxRSS))"], { env })
  )
  const cliStatus = execFileSync(executable, ["run", "--", "sh", "-c", "cat /proc/$PPID/status"], {
    env,
    encoding: "utf8"
  })
  const cliRssKiB = Number(/VmHWM:\s+(\d+) kB/.exec(cliStatus)?.[1] ?? NaN)
  return { node: summarize(nodeSamples, nodeRssKiB / 1024), cli: summarize(cliSamples, cliRssKiB / 1024) }
}

if (import.meta.main) {
  const rounds = Number(process.argv[2] ?? 20)
  console.log(JSON.stringify(measureStartup(rounds), null, 2))
}
