/**
 * The `effect-exec` command line, run as a child process like a user would.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"

const bin = fileURLToPath(new URL("../bin/effect-exec.js", import.meta.url))

interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly stdoutBytes: number
}

/** Runs the CLI with `args`, counting stdout bytes (and keeping the first 64 KiB as text). */
const cli = (args: ReadonlyArray<string>) =>
  Effect.callback<CliRun>((resume) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let stdoutBytes = 0
    child.stdout.on("data", (chunk: Buffer) => {
      stdoutBytes += chunk.length
      if (stdout.length < 65536) stdout += chunk.toString("utf8")
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr, stdoutBytes })))
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

describe("effect-exec run", () => {
  it.live("streams stdout and stderr and exits with the command's code", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--", "sh", "-c", "echo hello; echo oops >&2; exit 3"])
      assert.strictEqual(result.stdout, "hello\n")
      assert.strictEqual(result.stderr, "oops\n")
      assert.strictEqual(result.code, 3)
    }))

  it.live("passes every byte of a large output through", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--", "head", "-c", "268435456", "/dev/zero"])
      assert.strictEqual(result.code, 0)
      assert.strictEqual(result.stdoutBytes, 268_435_456)
    }), 120_000)

  it.live("exits 124 on timeout with one line on stderr", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--timeout", "300ms", "--", "sh", "-c", "echo started; sleep 30"])
      assert.strictEqual(result.code, 124)
      assert.strictEqual(result.stdout, "started\n")
      assert.match(result.stderr, /^effect-exec: timed out after 300ms; killed its process group\n$/)
    }))

  it.live("runs in --cwd", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--cwd", "/tmp", "--", "pwd"])
      assert.strictEqual(result.stdout, "/tmp\n")
      assert.strictEqual(result.code, 0)
    }))

  it.live("exits 127 and names a command that does not exist", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--", "no-such-command-effect-exec"])
      assert.strictEqual(result.code, 127)
      assert.include(result.stderr, "command not found: no-such-command-effect-exec")
    }))

  it.live("exits 128 + n when the command dies of signal n", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--", "sh", "-c", "kill -TERM $$"])
      assert.strictEqual(result.code, 143)
      assert.include(result.stderr, "SIGTERM")
    }))

  it.live("explains every flag in --help", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--help"])
      assert.strictEqual(result.code, 0)
      for (const flag of ["--timeout", "--cwd", "--capture", "command..."]) assert.include(result.stdout, flag)
      assert.include(result.stdout, "124")
    }))

  it.live("rejects a timeout it cannot read", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--timeout", "soon", "--", "true"])
      assert.strictEqual(result.code, 2)
      assert.include(result.stderr, "invalid --timeout")
    }))
})
