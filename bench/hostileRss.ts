/**
 * `npm run rss`: runs the hostile suite (`test/ExecServer.hostile.test.ts`)
 * with each test's exec-server in a process of its own, and reports every
 * server's peak RSS (`VmHWM`): the server must stay under 300 MiB whatever
 * one client does. Exits 1 when a test fails or a server went over. A
 * measurement, not a test: CI's run does not time or size anything.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const limitMiB = 300
const scratch = mkdtempSync(join(tmpdir(), "hostile-rss-"))
const report = join(scratch, "report.ndjson")
const vitest = spawnSync(
  process.execPath,
  ["node_modules/vitest/vitest.mjs", "run", "test/ExecServer.hostile.test.ts"],
  { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, EFFECT_EXEC_RSS_REPORT: report } }
)
const rows = readFileSync(report, "utf8").trim().split("\n").map((line) =>
  JSON.parse(line) as { readonly test: string; readonly peakKiB: number }
)
rmSync(scratch, { recursive: true, force: true })

const byTest = new Map<string, number>()
for (const { peakKiB, test } of rows) byTest.set(test, Math.max(byTest.get(test) ?? 0, peakKiB))
const sorted = [...byTest].sort((a, b) => b[1] - a[1])
const peakMiB = sorted.length === 0 ? 0 : sorted[0]![1] / 1024
console.log(`\nexec-server peak RSS (VmHWM) per hostile test, ${rows.length} servers, highest first:\n`)
console.log("| peak MiB | test |\n|---:|---|")
for (const [test, kib] of sorted) console.log(`| ${(kib / 1024).toFixed(0)} | ${test.replace(/\|/g, "\\|")} |`)
console.log(`\nhighest: ${peakMiB.toFixed(0)} MiB (limit ${limitMiB} MiB); vitest exit code ${vitest.status}`)
process.exitCode = vitest.status !== 0 || peakMiB > limitMiB ? 1 : 0
