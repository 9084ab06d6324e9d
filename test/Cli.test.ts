/**
 * The `effect-exec` command line, run as a child process like a user would.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { bwrapPath } from "./support/bwrap.ts"
import { startCodexServer } from "./support/codexServer.ts"
import * as Fake from "./support/fakeServer.ts"
import { awaitDeath, pidsOf } from "./support/processes.ts"
import { readOnly, scratchDir } from "./support/sandbox.ts"
import { bin, spawnServe } from "./support/servers.ts"
import * as WebSocketProxy from "./support/webSocketProxy.ts"
import { base64, connect, handshake, pollUntil, refusedStatus, startParams } from "./support/wireClient.ts"

interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly stdoutBytes: number
  /** sha256 of everything written to stdout. */
  readonly stdoutSha256: string
}

interface CliOptions {
  /** Laid over this process's environment. */
  readonly env?: Record<string, string>
  /** The CLI's stdin: these bytes then its end, an open file descriptor, or a pipe that never ends. */
  readonly stdin?: string | Uint8Array | number | "never-ends"
}

/** Runs the CLI with `args`, counting and hashing stdout (and keeping the first 64 KiB as text). */
const cli = (args: ReadonlyArray<string>, options: CliOptions = {}) =>
  Effect.callback<CliRun>((resume) => {
    const stdin = options.stdin === undefined
      ? "ignore"
      : typeof options.stdin === "number"
      ? options.stdin
      : "pipe"
    const child = spawn(process.execPath, [bin, ...args], {
      stdio: [stdin, "pipe", "pipe"],
      env: { ...process.env, EXEC_SERVER_URL: "", EXEC_SERVER_TOKEN: "", ...options.env }
    })
    if (typeof options.stdin === "string" || options.stdin instanceof Uint8Array) child.stdin?.end(options.stdin)
    child.stdin?.on("error", () => {})
    let stdout = ""
    let stderr = ""
    let stdoutBytes = 0
    const hash = createHash("sha256")
    child.stdout!.on("data", (chunk: Buffer) => {
      stdoutBytes += chunk.length
      hash.update(chunk)
      if (stdout.length < 65536) stdout += chunk.toString("utf8")
    })
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("close", (code) => {
      child.stdin?.destroy()
      resume(Effect.succeed({ code, stdout, stderr, stdoutBytes, stdoutSha256: hash.digest("hex") }))
    })
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
      // the first line comes out before the timeout unless the machine is too busy to start the command within 2 s:
      // then the run is repeated (up to 4 runs), each one checked for its code and its line
      let result: CliRun | undefined
      for (let run = 0; run < 4 && result?.stdout !== "started\n"; run++) {
        result = yield* cli(["run", "--timeout", "2s", "--", "sh", "-c", "echo started; sleep 30"])
        assert.strictEqual(result.code, 124)
        assert.include(["", "started\n"], result.stdout, "what the command wrote before the timeout, nothing else")
        assert.match(result.stderr, /^effect-exec: timed out after 2s; killed its process group\n$/)
      }
      assert.strictEqual(result?.stdout, "started\n")
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
      for (const flag of ["--timeout", "--cwd", "--capture", "--stdin", "--json", "--sandbox", "command..."]) {
        assert.include(result.stdout, flag)
      }
      assert.include(result.stdout, "124")
    }))

  it.live("rejects a timeout it cannot read", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--timeout", "soon", "--", "true"])
      assert.strictEqual(result.code, 2)
      assert.include(result.stderr, "invalid --timeout")
    }))

  it.live("takes a zero timeout, however spelled, as none: the command is not killed at once", () =>
    Effect.gen(function*() {
      for (const zero of ["0", "0s", "0ms", "0 minutes"]) {
        const result = yield* cli(["run", "--timeout", zero, "--", "sh", "-c", "sleep 0.2; echo done"])
        assert.strictEqual(result.code, 0, `${zero}: ${result.stderr}`)
        assert.strictEqual(result.stdout, "done\n")
      }
    }))
})

/** A scratch file of `size` random bytes for the current scope. */
const randomFile = (size: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(join(tmpdir(), "cli-stdin-"))
      const path = join(dir, "input.bin")
      const bytes = randomBytes(size)
      writeFileSync(path, bytes)
      return { path, dir, sha256: createHash("sha256").update(bytes).digest("hex"), size }
    }),
    ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

/** Opens `path` for reading for the current scope (a file on the CLI's stdin, as `< file` gives it). */
const openForReading = (path: string) =>
  Effect.acquireRelease(Effect.sync(() => openSync(path, "r")), (fd) => Effect.sync(() => closeSync(fd)))

/**
 * Starts the CLI with `args` in the background; resolves once its command
 * printed `pids A B …` on stdout. `finished` waits for the CLI's exit.
 */
const cliRunningCommand = (args: ReadonlyArray<string>) =>
  Effect.callback<{
    readonly pids: ReadonlyArray<number>
    readonly kill: (signal: NodeJS.Signals) => void
    readonly finished: Effect.Effect<{ readonly code: number | null; readonly stderr: string }>
  }>((resume) => {
    const child = spawn(process.execPath, [bin, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, EXEC_SERVER_URL: "", EXEC_SERVER_TOKEN: "" }
    })
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const finished = Effect.callback<{ readonly code: number | null; readonly stderr: string }>((done) => {
      if (child.exitCode !== null) return done(Effect.succeed({ code: child.exitCode, stderr }))
      child.once("close", (code) => done(Effect.succeed({ code, stderr })))
    })
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      const match = /pids ([\d ]+)\n/.exec(stdout)
      if (match !== null) {
        resume(Effect.succeed({
          pids: match[1]!.trim().split(" ").map(Number),
          kill: (signal) => child.kill(signal),
          finished
        }))
      }
    })
    child.once("close", (code) => resume(Effect.die(new Error(`the CLI exited early (${code}): ${stderr}`))))
  })

/** A command that prints the pids of its shell and of a background child, then waits for both. */
const twoProcesses = ["sh", "-c", "sleep 1000 & echo \"pids $$ $!\"; wait"]

/** Runs a bash pipeline and returns its stdout and stderr. */
const pipeline = (script: string) =>
  Effect.callback<{ readonly stdout: string; readonly stderr: string }>((resume) => {
    const child = spawn("bash", ["-c", script], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NODE: process.execPath, CLI: bin, EXEC_SERVER_URL: "" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("close", () => resume(Effect.succeed({ stdout, stderr })))
  })

const noStackTrace = (stderr: string) => assert.notMatch(stderr, /\n\s+at /, `no stack trace: ${stderr}`)

describe("effect-exec run, as a Unix tool", () => {
  it.live("forwards stdin to the command, and its end", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--", "sh", "-c", "cat; echo '<eof>'"], { stdin: "hi\n" })
      assert.strictEqual(result.stdout, "hi\n<eof>\n")
      assert.strictEqual(result.code, 0)
    }))

  it.live("passes a file on stdin through cat byte for byte, here and on an exec-server", () =>
    Effect.gen(function*() {
      const file = yield* randomFile(3 * 1024 * 1024)
      const local = yield* cli(["run", "--", "cat"], { stdin: yield* openForReading(file.path) })
      assert.strictEqual(local.code, 0)
      assert.strictEqual(local.stdoutBytes, file.size)
      assert.strictEqual(local.stdoutSha256, file.sha256)
      const server = yield* spawnServe()
      const remote = yield* cli(["run", "--remote", server.url, "--", "cat"], {
        stdin: yield* openForReading(file.path)
      })
      assert.strictEqual(remote.code, 0)
      assert.strictEqual(remote.stdoutBytes, file.size)
      assert.strictEqual(remote.stdoutSha256, file.sha256)
    }), 60_000)

  it.live("with /dev/null on its stdin, runs a reader to its end on a Codex exec-server too (it cannot end a pipe)", () =>
    Effect.gen(function*() {
      const codex = yield* startCodexServer
      const result = yield* cli(["run", "--remote", codex.url, "--", "sh", "-c", "cat; echo '<eof>'"])
      assert.strictEqual(result.code, 0, result.stderr)
      assert.strictEqual(result.stdout, "<eof>\n")
    }))

  it.live("gives the command /dev/null with --no-stdin", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--no-stdin", "--", "wc", "-c"], { stdin: "not for the command" })
      assert.strictEqual(result.stdout.trim(), "0")
    }))

  it.live("exits when the command does, though its stdin never ends", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--", "sh", "-c", "exit 5"], { stdin: "never-ends" })
      assert.strictEqual(result.code, 5)
    }))

  it.live("has no timeout unless --timeout names one (past Codex's 10 s)", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--", "sh", "-c", "sleep 10.5; echo done"])
      assert.strictEqual(result.stdout, "done\n")
      assert.strictEqual(result.code, 0)
    }), 30_000)

  it.live("writes stdout and stderr in the order they came", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "cli-order-"))
      // each line is written once the one before it came out of the CLI (tee copies it to a file the command
      // watches), so the order they came in is the order written, however late a loaded CLI reads its pipes; a CLI
      // that holds a line back makes the command give up waiting after 10 s or so and write the next one anyway
      const after = (line: number) => `for i in $(seq 200); do grep -qsx ${line} "$0" && break; sleep 0.05; done`
      const { stdout } = yield* pipeline(
        `"$NODE" "$CLI" run -- sh -c 'echo 1; ${after(1)}; echo 2 >&2; ${after(2)}; echo 3' ${dir}/out 2>&1` +
          ` | tee ${dir}/out`
      )
      rmSync(dir, { recursive: true, force: true })
      assert.strictEqual(stdout, "1\n2\n3\n")
    }))

  it.live("writes the tail its reader had not taken yet before it exits", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "cli-tail-"))
      // 64 KiB fill the pipe to a reader that is not reading yet; the last 1 000 bytes wait in the CLI (below the
      // stream's high-water mark, so their write said done); the reader starts after the command ended, a while later
      const { stdout } = yield* pipeline(
        `"$NODE" "$CLI" run -- sh -c 'head -c 65536 /dev/zero; sleep 0.3; head -c 1000 /dev/zero; touch ${dir}/ended'` +
          ` | (while [ ! -e ${dir}/ended ]; do sleep 0.05; done; sleep 1; wc -c)`
      )
      rmSync(dir, { recursive: true, force: true })
      assert.strictEqual(stdout.trim(), "66536")
    }))

  it.live("ends quietly with 141 when its stdout closes (| head -1), killing the command", () =>
    Effect.gen(function*() {
      const seq = yield* pipeline(
        `"$NODE" "$CLI" run -- seq 1 1000000 | head -1; echo "status \${PIPESTATUS[0]}" >&2`
      )
      assert.strictEqual(seq.stdout, "1\n")
      assert.strictEqual(seq.stderr, "status 141\n", "nothing but the status: no EPIPE trace")
      const yes = yield* pipeline(
        `"$NODE" "$CLI" run -- sh -c 'echo "pid $$"; exec yes' | head -2; echo "status \${PIPESTATUS[0]}" >&2`
      )
      const [, pid] = /^pid (\d+)\ny\n$/.exec(yes.stdout) ?? []
      assert.strictEqual(yes.stderr, "status 141\n")
      yield* awaitDeath(Number(pid))
    }))

  it.live("ends with 141 on a closed stdout when run on an exec-server too", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const result = yield* pipeline(
        `"$NODE" "$CLI" run --remote ${server.url} -- sh -c 'echo "pid $$"; exec yes' | head -2; ` +
          `echo "status \${PIPESTATUS[0]}" >&2`
      )
      const [, pid] = /^pid (\d+)\ny\n$/.exec(result.stdout) ?? []
      assert.strictEqual(result.stderr, "status 141\n")
      yield* awaitDeath(Number(pid))
    }))

  it.live.each([["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129], ["SIGQUIT", 131]] as const)(
    "on %s kills the command's group and exits %i",
    ([signal, code]) =>
      Effect.gen(function*() {
        const running = yield* cliRunningCommand(["run", "--", ...twoProcesses])
        running.kill(signal)
        const finished = yield* running.finished
        assert.strictEqual(finished.code, code)
        noStackTrace(finished.stderr)
        for (const pid of running.pids) yield* awaitDeath(pid)
      })
  )

  it.live("takes its command along when it is SIGKILLed", () =>
    Effect.gen(function*() {
      const running = yield* cliRunningCommand(["run", "--", ...twoProcesses])
      for (const pid of running.pids) assert.isTrue(alive(pid))
      running.kill("SIGKILL")
      for (const pid of running.pids) yield* awaitDeath(pid)
    }))

  it.live("on SIGTERM kills the command on the exec-server too", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const running = yield* cliRunningCommand(["run", "--remote", server.url, "--", ...twoProcesses])
      running.kill("SIGTERM")
      assert.strictEqual((yield* running.finished).code, 143)
      for (const pid of running.pids) yield* awaitDeath(pid)
    }))

  it.live.each(
    [
      [["run", "sh", "-c", "true"], "put -- before the command"],
      [["run", "--bogus", "--", "true"], "unknown flag --bogus"],
      [["run"], "missing the command to run"],
      [["run", "--timeout", "soon", "--", "true"], "invalid --timeout"],
      [["run", "--remote", "127.0.0.1:4000", "--", "true"], "must be a ws:// or wss:// URL"],
      [["run", "--capture", "all", "--", "true"], "--capture"],
      [["frob"], "frob"],
      [[], "missing subcommand (effect-exec run|serve|envs …)"],
      [["serve", "--session-ttl", "soon"], "invalid --session-ttl"]
    ] as const
  )("says what is wrong with %j in one line on stderr and exits 2", ([args, says]) =>
    Effect.gen(function*() {
      const result = yield* cli(args)
      assert.strictEqual(result.code, 2)
      assert.strictEqual(result.stdout, "", "no help page on stdout")
      assert.match(result.stderr, /^effect-exec[^\n]*\n$/, "one line")
      assert.include(result.stderr, says)
    }))

  it.live("serve's usage error is its only line, even where the sandbox is unavailable", () =>
    Effect.gen(function*() {
      const result = yield* cli(["serve", "--listen", "127.0.0.1:4000"], {
        env: { EXEC_SANDBOX_BWRAP: "/nonexistent/bwrap" }
      })
      assert.strictEqual(result.code, 2)
      assert.match(result.stderr, /^effect-exec: --listen must look like ws:\/\/IP:PORT[^\n]*\n$/)
    }))

  it.live("exits 255 with one line when the exec-server cannot be reached", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--remote", "ws://127.0.0.1:1", "--", "true"])
      assert.strictEqual(result.code, 255)
      assert.match(result.stderr, /^effect-exec: [^\n]*ECONNREFUSED[^\n]*\n$/)
    }))

  it.live("--json prints one record on stdout, the command's output on stderr", () =>
    Effect.gen(function*() {
      const result = yield* cli(["run", "--json", "--", "sh", "-c", "echo out; echo err >&2; exit 5"])
      assert.strictEqual(result.code, 5)
      assert.strictEqual(result.stderr, "out\nerr\n")
      const lines = result.stdout.split("\n")
      assert.strictEqual(lines.length, 2, "one line and its newline")
      const record = JSON.parse(lines[0]!)
      assert.deepStrictEqual(
        { ...record, durationMs: typeof record.durationMs },
        {
          exitCode: 5,
          termination: { _tag: "Exited", exitCode: 5 },
          signal: null,
          durationMs: "number",
          stdout: { bytes: 4, droppedBytes: 0 },
          stderr: { bytes: 4, droppedBytes: 0 },
          droppedByExecutor: 0,
          pipesHeldOpen: false
        }
      )
      const timedOut = JSON.parse((yield* cli(["run", "--json", "--timeout", "200ms", "--", "sleep", "5"])).stdout)
      assert.deepStrictEqual(timedOut.termination, { _tag: "TimedOut", timeoutMs: 200 })
      assert.strictEqual(timedOut.exitCode, 124)
      const missing = yield* cli(["run", "--json", "--", "no-such-command-effect-exec"])
      assert.strictEqual(missing.code, 127)
      assert.deepStrictEqual(JSON.parse(missing.stdout).error._tag, "SpawnFailed")
    }))
})

/** Whether the process with this pid is alive (not a zombie). */
/** Whether `pid` still lives after up to 5 s of waiting for it to die. */
const aliveAfter = (pid: number) =>
  Effect.gen(function*() {
    for (let waited = 0; alive(pid) && waited < 5_000; waited += 20) yield* Effect.sleep("20 millis")
    return alive(pid)
  })

const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return !["Z", "X"].includes(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3))
  } catch {
    return false
  }
}

describe("effect-exec serve and run --remote", () => {
  it.live("prints its address first and serves run --remote like the local run", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      assert.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+$/)
      const script = ["sh", "-c", "echo hello; echo oops >&2; exit 3"]
      const local = yield* cli(["run", "--", ...script])
      const remote = yield* cli(["run", "--remote", server.url, "--", ...script])
      assert.deepStrictEqual(
        { code: remote.code, stdout: remote.stdout, stderr: remote.stderr },
        { code: local.code, stdout: local.stdout, stderr: local.stderr }
      )
      assert.strictEqual(remote.code, 3)
      const viaEnvironment = yield* cli(["run", "--", ...script], { env: { EXEC_SERVER_URL: server.url } })
      assert.strictEqual(viaEnvironment.code, 3)
      assert.strictEqual(viaEnvironment.stdout, "hello\n")
    }))

  it.live("streams all 256 MiB through run --remote", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const result = yield* cli([
        "run",
        "--timeout",
        "none",
        "--remote",
        server.url,
        "--",
        "head",
        "-c",
        "268435456",
        "/dev/zero"
      ])
      assert.strictEqual(result.code, 0)
      assert.strictEqual(result.stdoutBytes, 268_435_456)
    }), 120_000)

  it.live("exits 124 on a remote timeout", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const result = yield* cli(["run", "--remote", server.url, "--timeout", "300ms", "--", "sleep", "30"])
      assert.strictEqual(result.code, 124)
      assert.include(result.stderr, "timed out after 300ms")
    }))

  it.live("requires the token when one is set, and accepts it from the environment", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe(["--token", "s3cret"])
      const without = yield* cli(["run", "--remote", server.url, "--", "true"])
      assert.strictEqual(without.code, 255)
      assert.include(without.stderr, "401")
      const wrong = yield* cli(["run", "--remote", server.url, "--token", "nope", "--", "true"])
      assert.strictEqual(wrong.code, 255)
      const right = yield* cli(["run", "--remote", server.url, "--token", "s3cret", "--", "sh", "-c", "exit 4"])
      assert.strictEqual(right.code, 4)
      const fromEnvironment = yield* cli(["run", "--remote", server.url, "--", "true"], {
        env: { EXEC_SERVER_TOKEN: "s3cret" }
      })
      assert.strictEqual(fromEnvironment.code, 0)
      const dir = mkdtempSync(join(tmpdir(), "cli-token-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      writeFileSync(join(dir, "token"), "s3cret\nthe first line only\n")
      const fromFile = yield* cli(["run", "--remote", server.url, "--token-file", join(dir, "token"), "--", "true"])
      assert.strictEqual(fromFile.code, 0, fromFile.stderr)
      assert.notInclude(server.stderr(), "s3cret", "the token never reaches the logs")
    }))

  it.live("says in one line that it cannot read the token file, and exits 2", () =>
    Effect.gen(function*() {
      // a file whose first byte cannot be read (EIO), even by root
      const unreadable = "/proc/self/mem"
      for (
        const args of [
          ["run", "--remote", "ws://127.0.0.1:9", "--token-file", unreadable, "--", "true"],
          ["serve", "--listen", "ws://127.0.0.1:0", "--token-file", unreadable]
        ]
      ) {
        const result = yield* cli(args)
        assert.strictEqual(result.code, 2, result.stderr)
        assert.include(result.stderr, `effect-exec: cannot read --token-file ${unreadable}: EIO`)
        assert.notInclude(result.stderr, "internal error")
      }
    }))

  it.live("refuses an empty token, from a file or a flag, and exits 2", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "cli-token-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const empty = join(dir, "empty")
      writeFileSync(empty, "\n")
      for (
        const [args, said] of [
          [["serve", "--listen", "ws://0.0.0.0:0", "--token-file", empty], `--token-file ${empty} is empty`],
          [["run", "--remote", "ws://127.0.0.1:9", "--token-file", empty, "--", "true"], "is empty"],
          [["serve", "--token", ""], "--token is empty"]
        ] as const
      ) {
        const result = yield* cli(args)
        assert.strictEqual(result.code, 2, result.stderr)
        assert.include(result.stderr, said)
      }
    }))

  it.live("refuses a serve limit that would serve nothing, naming the flag, and exits 2", () =>
    Effect.gen(function*() {
      for (
        const flag of [
          "--concurrent-requests",
          "--max-processes",
          "--max-processes-per-session",
          "--max-sessions-per-address",
          "--max-connections-per-address"
        ]
      ) {
        const result = yield* cli(["serve", flag, "0"])
        assert.strictEqual(result.code, 2, result.stderr)
        assert.include(result.stderr, `${flag} must be at least 1, got 0`)
      }
      const negative = yield* cli(["serve", "--max-file-bytes", "-5"])
      assert.strictEqual(negative.code, 2, negative.stderr)
      assert.include(negative.stderr, "--max-file-bytes must be at least 0, got -5")
    }))

  it.live("refuses a relative --cwd for a remote run: the server cannot tell what it is relative to", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe([])
      const result = yield* cli(["run", "--remote", server.url, "--cwd", "tmp", "--", "pwd"])
      assert.strictEqual(result.code, 255, result.stderr)
      assert.include(result.stderr, "cwd must be an absolute path")
      assert.strictEqual(result.stdout, "")
    }))

  it.live("refuses to listen off loopback without a token", () =>
    Effect.gen(function*() {
      const result = yield* cli(["serve", "--listen", "ws://0.0.0.0:0"])
      assert.strictEqual(result.code, 2)
      // the library's error, its option named as the CLI's flags
      assert.match(
        result.stderr,
        /^effect-exec: --token \(or --token-file, or EXEC_SERVER_TOKEN\) is required to listen on 0\.0\.0\.0: without a token/
      )
      const named = yield* cli(["serve", "--listen", "ws://localhost:0"])
      assert.strictEqual(named.code, 2)
      assert.include(named.stderr, "effect-exec: --listen needs an IP address, not the host name localhost")
    }))

  it.live("stops on SIGTERM and kills the processes it runs", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const marker = `55.${process.pid}${Date.now() % 1000}`
      const running = yield* Effect.forkChild(
        cli(["run", "--remote", server.url, "--timeout", "none", "--", "sh", "-c", `echo $$; exec sleep ${marker}`])
      )
      let pid = 0
      while (pid === 0) {
        yield* Effect.sleep("20 millis")
        for (const entry of readdirSync("/proc")) {
          if (!/^\d+$/.test(entry)) continue
          try {
            // the sleep itself, not the client whose own argv holds the script
            if (readFileSync(`/proc/${entry}/cmdline`, "utf8").startsWith(`sleep\0${marker}`)) pid = Number(entry)
          } catch {}
        }
      }
      server.child.kill("SIGTERM")
      yield* Effect.callback<void>((resume) => {
        if (server.child.exitCode !== null) return resume(Effect.void)
        server.child.once("exit", () => resume(Effect.void))
      })
      assert.strictEqual(server.child.exitCode ?? 0, 0, "a clean stop")
      // SIGKILLed by the server as it stopped; a loaded machine may take a moment to reap it
      assert.isFalse(yield* aliveAfter(pid), "the remote command died with the server")
      const client = yield* Fiber.join(running)
      assert.notStrictEqual(client.code, 0, "the client learns it lost the command")
    }))

  it.live("takes its processes along when it is SIGKILLed; the client exits 255", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const running = yield* cliRunningCommand(["run", "--remote", server.url, "--", ...twoProcesses])
      server.child.kill("SIGKILL")
      for (const pid of running.pids) yield* awaitDeath(pid)
      const finished = yield* running.finished
      assert.strictEqual(finished.code, 255, finished.stderr)
      assert.match(finished.stderr, /^effect-exec: lost the command: [^\n]*\n$/)
    }))

  it.live("says in one line that the server no longer has the session when it restarted behind the address; 255", () =>
    Effect.gen(function*() {
      const first = yield* spawnServe()
      const second = yield* spawnServe()
      const proxy = yield* WebSocketProxy.start(first.url)
      const running = yield* cliRunningCommand(["run", "--remote", proxy.url, "--", ...twoProcesses])
      // the first server dies with its processes, and the address now leads to one that never had the session
      yield* proxy.setTarget(second.url)
      first.child.kill("SIGKILL")
      for (const pid of running.pids) yield* awaitDeath(pid)
      const finished = yield* running.finished
      assert.strictEqual(finished.code, 255, finished.stderr)
      assert.match(
        finished.stderr,
        /^effect-exec: lost the command: the exec-server no longer has the session process \S+ ran in: it expired while the client was disconnected, or the server restarted; what became of the process is unknown\n$/
      )
      assert.isDefined(
        proxy.frames.find((f) => f.link === 2 && f.message?.error?.code === -32600),
        "the second server refused to resume the session"
      )
    }))

  it.live("serves files within --max-file-bytes", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe(["--max-file-bytes", "10"])
      const client = yield* connect(server.url)
      yield* handshake(client)
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "cli-fs-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      const write = (text: string) =>
        client.request("fs/writeFile", { path: pathToFileURL(join(dir, "f")).href, dataBase64: base64(text) })
      assert.deepStrictEqual((yield* write("ten bytes!")).result, {})
      assert.strictEqual(readFileSync(join(dir, "f"), "utf8"), "ten bytes!")
      assert.deepStrictEqual(
        (yield* write("eleven byte")).error?.message,
        "file is too large to write: limit is 10 bytes"
      )
    }))

  it.live("holds per-address limits from --max-connections-per-address and --max-sessions-per-address", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe(["--max-connections-per-address", "2", "--max-sessions-per-address", "1"])
      const first = yield* connect(server.url)
      yield* handshake(first)
      const second = yield* connect(server.url)
      const refused = yield* second.callError("initialize", { clientName: "second" })
      assert.include(refused.message, "too many sessions from 127.0.0.1: 1 attached (the limit per address)")
      assert.strictEqual(yield* refusedStatus(server.url), 503)
      // another address has its own share
      yield* handshake(yield* connect(server.url, { localAddress: "127.0.0.5" }))
    }))

  it.live("serves NDJSON on stdio", () =>
    Effect.gen(function*() {
      const child = spawn(process.execPath, [bin, "serve", "--listen", "stdio"], { stdio: ["pipe", "pipe", "pipe"] })
      const lines: Array<string> = []
      let buffer = ""
      child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString()
        let newline = buffer.indexOf("\n")
        while (newline !== -1) {
          lines.push(buffer.slice(0, newline))
          buffer = buffer.slice(newline + 1)
          newline = buffer.indexOf("\n")
        }
      })
      const send = (message: unknown) => child.stdin.write(JSON.stringify(message) + "\n")
      // up to 10 s or so: a server started on a busy machine, a read that waits up to 5 s
      const reply = (id: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < 1000; i++) {
            const line = lines.find((l) => JSON.parse(l).id === id)
            if (line !== undefined) return JSON.parse(line)
            yield* Effect.sleep("10 millis")
          }
          return yield* Effect.die(new Error(`no reply ${id}: ${lines.join("\n")}`))
        })
      send({ id: 1, method: "initialize", params: { clientName: "stdio-test" } })
      assert.isString((yield* reply(1)).result.sessionId)
      send({ method: "initialized" })
      send({
        id: 2,
        method: "process/start",
        params: { processId: "p", argv: ["sh", "-c", "printf hi"], cwd: "/tmp", env: {}, tty: false }
      })
      assert.deepStrictEqual((yield* reply(2)).result, { processId: "p", sandboxType: "none" })
      send({ id: 3, method: "process/read", params: { processId: "p", afterSeq: 0, waitMs: 5000 } })
      const read = (yield* reply(3)).result
      assert.strictEqual(read.chunks.map((c: any) => Buffer.from(c.chunk, "base64").toString()).join(""), "hi")
      child.stdin.end()
      const code = yield* Effect.callback<number | null>((resume) => {
        if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
        child.once("exit", (exitCode) => resume(Effect.succeed(exitCode)))
      })
      assert.strictEqual(code, 0, "stdin closed: the server ends cleanly")
    }))

  it.live("stops on SIGTERM over stdio too (as the Codex CLI stops it): exit 0, its processes killed", () =>
    Effect.gen(function*() {
      const child = spawn(process.execPath, [bin, "serve", "--listen", "stdio"], { stdio: ["pipe", "pipe", "ignore"] })
      let stdout = ""
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      const send = (message: unknown) => child.stdin.write(JSON.stringify(message) + "\n")
      send({ id: 1, method: "initialize", params: { clientName: "stdio-test" } })
      send({ method: "initialized" })
      send({
        id: 2,
        method: "process/start",
        params: { processId: "p", argv: ["sh", "-c", "echo $$; exec sleep 30"], cwd: "/tmp", env: {}, tty: false }
      })
      let pid = 0
      for (let i = 0; i < 1000 && pid === 0; i++) {
        yield* Effect.sleep("10 millis")
        const output = stdout.split("\n").flatMap((line) => {
          const message = line.startsWith("{") ? JSON.parse(line) : undefined
          return message?.method === "process/output" ? [Buffer.from(message.params.chunk, "base64").toString()] : []
        })
        pid = Number.parseInt(output.join(""), 10) || 0
      }
      assert.isAbove(pid, 0, `the command printed its pid: ${stdout}`)
      child.kill("SIGTERM")
      const code = yield* Effect.callback<number | null>((resume) => {
        if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
        child.once("exit", (exitCode) => resume(Effect.succeed(exitCode)))
      })
      assert.strictEqual(code, 0, "a clean stop")
      assert.isFalse(yield* aliveAfter(pid), "the command died with the server")
    }))
})

describe("effect-exec and the sandbox", () => {
  const withBwrap = { env: { EXEC_SANDBOX_BWRAP: bwrapPath } }

  it.live("run --sandbox workspace-write writes in its working directory and nowhere else", () =>
    Effect.gen(function*() {
      using dir = scratchDir("cli")
      const workspace = join(dir.path, "ws")
      const outside = join(dir.path, "outside")
      mkdirSync(workspace)
      mkdirSync(outside)
      const script = `printf ok > in.txt && printf x > ${outside}/x`
      const result = yield* cli(
        ["run", "--sandbox", "workspace-write", "--cwd", workspace, "--", "sh", "-c", script],
        withBwrap
      )
      assert.notStrictEqual(result.code, 0)
      assert.match(result.stderr, /Read-only file system/)
      assert.isTrue(existsSync(join(workspace, "in.txt")))
      assert.isFalse(existsSync(join(outside, "x")))
    }))

  it.live("run --sandbox without a working bubblewrap refuses the command instead of running it", () =>
    Effect.gen(function*() {
      using dir = scratchDir("cli")
      const result = yield* cli(
        ["run", "--sandbox", "read-only", "--cwd", dir.path, "--", "touch", "ran"],
        { env: { EXEC_SANDBOX_BWRAP: "/bin/false" } }
      )
      assert.strictEqual(result.code, 255, "the environment refused: never a code the command could give")
      assert.match(
        result.stderr,
        /^effect-exec: sandbox intent cannot be enforced on this executor: bubblewrap at \/bin\/false/
      )
      assert.isFalse(existsSync(join(dir.path, "ran")))
    }))

  it.live("serve --require-sandbox refuses unsandboxed starts and runs sandboxed ones", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe(["--require-sandbox", "--bwrap", bwrapPath])
      assert.include(server.stderr(), "sandboxed starts are enforced")
      const unconfined = yield* cli(["run", "--remote", server.url, "--", "true"])
      assert.strictEqual(unconfined.code, 255)
      assert.include(unconfined.stderr, "this executor runs only sandboxed processes")
      const fullAccess = yield* cli(["run", "--remote", server.url, "--sandbox", "danger-full-access", "--", "true"])
      assert.strictEqual(fullAccess.code, 255, "danger-full-access is no sandbox")
      const confined = yield* cli([
        "run",
        "--remote",
        server.url,
        "--sandbox",
        "read-only",
        "--",
        "sh",
        "-c",
        "echo hi"
      ])
      assert.deepStrictEqual([confined.code, confined.stdout], [0, "hi\n"])
    }))

  it.live("a sandboxed command dies with a server killed by SIGKILL", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe(["--bwrap", bwrapPath])
      const client = yield* connect(server.url)
      yield* handshake(client)
      const marker = `${600 + Math.floor(Math.random() * 300)}.${process.pid}`
      const started = yield* client.call("process/start", startParams("s", ["sleep", marker], { sandbox: readOnly }))
      assert.strictEqual(started.sandboxType, "linuxSeccomp")
      let sleeper: number | undefined
      yield* pollUntil("the sandboxed sleep runs", () => {
        sleeper = pidsOf(["sleep", marker])[0]
        return sleeper !== undefined
      })
      server.child.kill("SIGKILL")
      yield* awaitDeath(sleeper!)
    }))

  it.live("serve --require-sandbox does not start when the sandbox is unavailable", () =>
    Effect.gen(function*() {
      const result = yield* cli(["serve", "--require-sandbox", "--bwrap", "/bin/false"])
      assert.strictEqual(result.code, 2)
      assert.include(result.stderr, "sandbox unavailable: bubblewrap at /bin/false cannot build a sandbox here")
      assert.strictEqual(result.stdout, "", "no address: it never listened")
    }))
})

describe("effect-exec run against a misbehaving exec-server: exit 255 and one line, or the command's own ending", () => {
  /** Answers the handshake, the start and the terminate; `read` decides the reads. */
  const scripted =
    (read: (message: Fake.Incoming, connection: Fake.FakeConnection) => void): Fake.Script => (message, connection) => {
      if (message.method === "process/start") connection.answer(message.id, Fake.startAnswer(message))
      if (message.method === "process/terminate") connection.answer(message.id, { running: false })
      if (message.method === "process/read") read(message, connection)
    }

  const runOn = (url: string, extra: ReadonlyArray<string> = []) =>
    cli(["run", "--remote", url, "--no-stdin", ...extra, "--", "sh", "-c", "echo hi"])

  const oneLine = (stderr: string) => {
    assert.strictEqual(stderr.trimEnd().split("\n").length, 1, `one line on stderr: ${JSON.stringify(stderr)}`)
    assert.notInclude(stderr, "\x1b", "no escape sequence from the server reaches the terminal")
  }

  it.live("an initialize answer of the wrong shape", () =>
    Effect.gen(function*() {
      const server = yield* Fake.fakeServer(() => {}, {
        initialize: (message, connection) => connection.answer(message.id, { sessionId: 7, capabilities: "all" })
      })
      const result = yield* runOn(server.url)
      assert.strictEqual(result.code, 255)
      assert.include(result.stderr, "broke the protocol")
      oneLine(result.stderr)
    }))

  it.live("an error answer to the start, with newlines and escape sequences in its message", () =>
    Effect.gen(function*() {
      const server = yield* Fake.fakeServer((message, connection) => {
        if (message.method === "process/start") connection.fail(message.id, -32000, "boom\nsecond line\x1b[31m red")
      })
      const result = yield* runOn(server.url)
      assert.strictEqual(result.code, 255, "not the 1 a command could exit with")
      assert.include(result.stderr, "boom")
      oneLine(result.stderr)
    }))

  it.live("an exit code of 256 (which a shell would turn into 0)", () =>
    Effect.gen(function*() {
      const server = yield* Fake.fakeServer(
        scripted((message, connection) =>
          connection.answer(message.id, Fake.readAnswer(1, ["hi\n"], { exitCode: 256 }))
        )
      )
      const result = yield* runOn(server.url)
      assert.strictEqual(result.code, 255)
      assert.include(result.stderr, "exit code 256")
      oneLine(result.stderr)
    }))

  it.live("a link cut at every read, reconnection included: the run is lost", () =>
    Effect.gen(function*() {
      const server = yield* Fake.fakeServer(scripted((_message, connection) => connection.cut()))
      const result = yield* runOn(server.url)
      assert.strictEqual(result.code, 255)
      assert.include(result.stderr, "lost the command")
      oneLine(result.stderr)
      assert.isAtLeast(server.connections(), 2, "it reconnected once before giving up")
    }))

  it.live("a start never answered: --timeout holds, and the process is terminated all the same", () =>
    Effect.gen(function*() {
      const server = yield* Fake.fakeServer((message, connection) => {
        if (message.method === "process/terminate") connection.answer(message.id, { running: true })
      })
      const result = yield* runOn(server.url, ["--timeout", "1s"])
      assert.strictEqual(result.code, 124)
      oneLine(result.stderr)
      assert.strictEqual(server.calls("process/terminate").length, 1)
    }))

  it.live(
    "a server that never answers the WebSocket close cannot keep the CLI alive after its work",
    () =>
      Effect.gen(function*() {
        const server = yield* Fake.fakeServer(scripted((message, connection) => {
          connection.answer(message.id, Fake.readAnswer(1, ["hi\n"], { exitCode: 0 }))
        }))
        const proxy = yield* Fake.deafProxy(server.port)
        // deaf from the moment the run is done: the client's close is read and never answered
        yield* Effect.forkChild(Effect.andThen(server.whenReceived("process/read"), Effect.sync(proxy.deafen)))
        const result = yield* runOn(`ws://127.0.0.1:${proxy.port}`)
        assert.strictEqual(result.code, 0)
        assert.strictEqual(result.stdout, "hi\n")
      }),
    20_000
  )
})

describe("effect-exec run --env and envs: named environments", () => {
  /** An environments file naming a live server (the default), one out of reach, and this machine. */
  const fleetFile = (url: string) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const dir = mkdtempSync(join(tmpdir(), "cli-envs-"))
        const file = join(dir, "environments.toml")
        writeFileSync(
          file,
          [
            `default = "devbox"`,
            `[[environments]]`,
            `id = "devbox"`,
            `url = "${url}"`,
            `[[environments]]`,
            `id = "gone"`,
            `url = "ws://127.0.0.1:1"`
          ].join("\n") + "\n"
        )
        return { dir, file }
      }),
      ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )

  it.live("run --env runs on the named environment; without it, on the file's default", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const { file } = yield* fleetFile(server.url)
      const parent = ["sh", "-c", "echo $PPID"]
      const named = yield* cli(["run", "--environments", file, "--env", "devbox", "--", ...parent])
      assert.strictEqual(named.code, 0)
      assert.strictEqual(Number(named.stdout.trim()), server.child.pid, "the command is the server's child")
      const byDefault = yield* cli(["run", "--", ...parent], { env: { EXEC_ENVIRONMENTS_FILE: file } })
      assert.strictEqual(Number(byDefault.stdout.trim()), server.child.pid, "the file's default, from the variable")
      const local = yield* cli(["run", "--environments", file, "--env", "local", "--", ...parent])
      assert.notStrictEqual(Number(local.stdout.trim()), server.child.pid, "local is this machine")
    }))

  it.live("an environment the file does not name, or --env with --remote: exit 2 and one line", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const { file } = yield* fleetFile(server.url)
      const unknown = yield* cli(["run", "--environments", file, "--env", "nope", "--", "true"])
      assert.strictEqual(unknown.code, 2)
      assert.include(unknown.stderr, "no environment nope")
      assert.strictEqual(unknown.stderr.trimEnd().split("\n").length, 1)
      const both = yield* cli(["run", "--remote", server.url, "--env", "devbox", "--", "true"])
      assert.strictEqual(both.code, 2)
      const unreachable = yield* cli(["run", "--environments", file, "--env", "gone", "--", "true"])
      assert.strictEqual(unreachable.code, 255)
      // with no file and no variable, the message blames neither
      const home = mkdtempSync(join(tmpdir(), "cli-home-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(home, { recursive: true, force: true })))
      const unconfigured = yield* cli(["run", "--env", "nope", "--", "true"], {
        env: { EXEC_SERVER_URL: "", EXEC_ENVIRONMENTS_FILE: "", CODEX_HOME: home, HOME: home }
      })
      assert.strictEqual(unconfigured.code, 2)
      assert.include(unconfigured.stderr, "no environment nope in the default configuration")
      assert.include(unconfigured.stderr, "EXEC_SERVER_URL not set")
    }))

  it.live("envs prints each environment's health, and exits 1 when one is not healthy", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const { file } = yield* fleetFile(server.url)
      const table = yield* cli(["envs", "--environments", file])
      assert.strictEqual(table.code, 1, "gone is out of reach")
      const lines = table.stdout.trimEnd().split("\n")
      assert.match(lines[0]!, /^ID\s+KIND\s+TARGET\s+STATE\s+LATENCY/)
      assert.match(
        lines.find((line) => line.startsWith("devbox *"))!,
        /websocket\s+ws:\/\/127\.0\.0\.1:\d+\s+healthy\s+[\d.]+ ms/
      )
      assert.match(lines.find((line) => line.startsWith("gone"))!, /unhealthy/)
      const json = yield* cli(["envs", "--environments", file, "--json"])
      const rows = JSON.parse(json.stdout) as ReadonlyArray<{ id: string; state: string; latency: number | null }>
      assert.deepStrictEqual(rows.map((row) => [row.id, row.state]), [["local", "healthy"], ["devbox", "healthy"], [
        "gone",
        "unhealthy"
      ]])
      assert.isNumber(rows[1]!.latency)
    }))
})
