/**
 * Helpers for tests that look at real processes and drive executors.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readdirSync, readFileSync } from "node:fs"
import * as Exec from "../../src/Executor.ts"
import * as Protocol from "../../src/Protocol.ts"

/**
 * A process is alive when /proc has it and it is not a zombie. PID 1 on these
 * machines may not reap orphans, so `kill(pid, 0)` would lie about zombies.
 */
export const isAlive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

/** The pids of live processes (see `isAlive`) whose command line is exactly `argv`. */
export const pidsOf = (argv: ReadonlyArray<string>): Array<number> =>
  readdirSync("/proc").filter((name) => /^\d+$/.test(name)).flatMap((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8") === `${argv.join("\0")}\0` && isAlive(Number(pid))
        ? [Number(pid)]
        : []
    } catch {
      return [] // gone since the listing
    }
  })

/** Polls (real time) until `pid` is gone, or fails after `timeoutMillis`. */
export const awaitDeath = (pid: number, timeoutMillis = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (isAlive(pid)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`process ${pid} still alive`))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
    }
  })

let counter = 0
/** A fresh process id for one test. */
export const freshId = (label: string): string => `${label}-${process.pid}-${++counter}`

/** What a reader saw of one process after reading it until `closed`. */
export interface Collected {
  readonly chunks: ReadonlyArray<Protocol.ProcessChunk>
  readonly last: Protocol.ReadResult
  readonly stdout: string
  readonly stderr: string
  /** What a `tty` process wrote to its terminal. */
  readonly pty: string
  readonly droppedBytes: number
}

const decoder = new TextDecoder()
const concat = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(chunks)

/**
 * Reads a process with the client loop (`afterSeq = nextSeq - 1`) until it is
 * closed and drained. A process that shows nothing new (no output, exit or
 * close) for `stallMillis` of real time (default 10 s) fails the test by
 * assertion, well before its timeout: output stuck behind a pipe that was
 * paused and never resumed, or a close that never comes.
 */
export const readUntilClosed = (
  processId: string,
  options: { readonly maxBytes?: number; readonly waitMs?: number; readonly stallMillis?: number } = {}
) =>
  Effect.gen(function*() {
    const executor = yield* Exec.Executor
    const chunks: Array<Protocol.ProcessChunk> = []
    let afterSeq = 0
    let droppedBytes = 0
    let seen = ""
    let changedAt = Date.now()
    while (true) {
      const result = yield* executor.read({
        processId,
        afterSeq,
        maxBytes: options.maxBytes ?? null,
        waitMs: options.waitMs ?? 1_000
      })
      const state = `${result.nextSeq}/${result.exited}/${result.closed}`
      if (state !== seen) {
        seen = state
        changedAt = Date.now()
      } else if (Date.now() - changedAt > (options.stallMillis ?? 10_000)) {
        assert.fail(`process ${processId} showed nothing new for ${options.stallMillis ?? 10_000} ms (${state})`)
      }
      chunks.push(...result.chunks)
      droppedBytes += result.dropped?.bytes ?? 0
      afterSeq = result.nextSeq - 1
      if (Protocol.isDrained(result)) {
        const text = (stream: Protocol.OutputStream) =>
          decoder.decode(concat(chunks.filter((c) => c.stream === stream).map((c) => c.chunk)))
        return {
          chunks,
          last: result,
          stdout: text("stdout"),
          stderr: text("stderr"),
          pty: text("pty"),
          droppedBytes
        } as Collected
      }
    }
  })

/** The start request of `argv` in /tmp with the given options. */
export const startRequest = (
  processId: string,
  argv: ReadonlyArray<string>,
  options: Partial<Exec.StartRequest> = {}
): Exec.StartRequest => ({
  processId,
  argv,
  cwd: "/tmp",
  env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  tty: false,
  ...options
})

/** Starts `argv` in /tmp with the given options. */
export const start = (processId: string, argv: ReadonlyArray<string>, options: Partial<Exec.StartRequest> = {}) =>
  Effect.gen(function*() {
    const executor = yield* Exec.Executor
    return yield* executor.start(startRequest(processId, argv, options))
  })

/** Runs `argv` to completion and returns what a reader saw. */
export const run = (argv: ReadonlyArray<string>, options: Partial<Exec.StartRequest> = {}) =>
  Effect.gen(function*() {
    const processId = freshId("run")
    yield* start(processId, argv, options)
    return yield* readUntilClosed(processId)
  })
