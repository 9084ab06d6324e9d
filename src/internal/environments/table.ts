/**
 * The health of a registry's environments as rows, and those rows as a text
 * table for a terminal (what `effect-exec envs` prints).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type { RemoteSpec } from "./config.ts"
import type { Health } from "./health.ts"

/** One environment as a health table shows it. */
export interface HealthRow {
  readonly id: string
  readonly kind: "local" | "websocket" | "stdio"
  /** Where it is: the URL (without any user or password in it), the program and its arguments, or this machine. */
  readonly target: string
  /** Whether it serves runs that name no environment. */
  readonly isDefault: boolean
  readonly state: "healthy" | "unhealthy" | "unknown"
  /** The last probe's `initialize` round trip, when one was measured. */
  readonly latency: Duration.Duration | undefined
  /** Why it is unhealthy. */
  readonly reason: string | undefined
  /** Runs admitted to it now, and how many it admits at once. */
  readonly running: number
  readonly limit: number
}

/** One environment's row: what it is (`spec`; `undefined` for this machine), its health and its admissions. */
export const rowOf = (options: {
  readonly id: string
  readonly spec: RemoteSpec | undefined
  readonly health: Health
  readonly isDefault: boolean
  readonly running: number
  readonly limit: number
}): HealthRow => {
  const { health, spec } = options
  return {
    id: options.id,
    kind: spec === undefined ? "local" : spec._tag === "WebSocket" ? "websocket" : "stdio",
    target: spec === undefined
      ? "this machine"
      : spec._tag === "WebSocket"
      ? displayUrl(spec.url)
      : displayCommand(spec.program, spec.args ?? []),
    isDefault: options.isDefault,
    state: health._tag === "Healthy" ? "healthy" : health._tag === "Unhealthy" ? "unhealthy" : "unknown",
    latency: health._tag === "Healthy" ? health.latency : undefined,
    reason: health._tag === "Unhealthy" ? health.reason : undefined,
    running: options.running,
    limit: options.limit
  }
}

/** A URL as it may be shown: without a user or password in it. */
export const displayUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.username === "" && parsed.password === "") return url
    parsed.username = ""
    parsed.password = ""
    return parsed.toString()
  } catch {
    return url
  }
}

/** An argv as one line (arguments with spaces quoted). */
export const displayCommand = (program: string, args: ReadonlyArray<string>): string =>
  [program, ...args].map((word) => /^[\w@%+=:,./-]+$/.test(word) ? word : JSON.stringify(word)).join(" ")

const formatLatency = (latency: Duration.Duration | undefined): string => {
  if (latency === undefined) return "-"
  const millis = Duration.toMillis(latency)
  return millis < 10 ? `${millis.toFixed(2)} ms` : `${Math.round(millis)} ms`
}

/**
 * The rows as an aligned text table: ID (the default marked `*`), KIND,
 * TARGET, STATE, LATENCY, RUNS, and why an unhealthy one is.
 */
export const formatTable = (rows: ReadonlyArray<HealthRow>): string => {
  const header = ["ID", "KIND", "TARGET", "STATE", "LATENCY", "RUNS", "REASON"]
  const cells = rows.map((row) => [
    row.isDefault ? `${row.id} *` : row.id,
    row.kind,
    row.target,
    row.state,
    formatLatency(row.latency),
    `${row.running}/${row.limit}`,
    row.reason ?? ""
  ])
  const table = [header, ...cells]
  const widths = header.map((_, column) => Math.max(...table.map((line) => line[column]!.length)))
  return table
    .map((line) => line.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd())
    .join("\n") + "\n"
}
