/**
 * The `effect-exec` command line, run as a child process like a user would.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { bwrapPath } from "./support/bwrap.ts"
import { awaitDeath, isAlive } from "./support/processes.ts"
import { scratchDir } from "./support/sandbox.ts"
import { bin, spawnServe } from "./support/servers.ts"
import { base64, connect, handshake, pollUntil, startParams } from "./support/wireClient.ts"

/** The pids of live processes whose command line is exactly `argv`. */
const pidsRunning = (argv: ReadonlyArray<string>): Array<number> =>
  readdirSync("/proc").filter((name) => /^\d+$/.test(name)).flatMap((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8") === `${argv.join("\0")}\0` && isAlive(Number(pid))
        ? [Number(pid)]
        : []
    } catch {
      return []
    }
  })

interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly stdoutBytes: number
}

/** Runs the CLI with `args`, counting stdout bytes (and keeping the first 64 KiB as text). */
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.callback<CliRun>((resume) => {
    const child = spawn(process.execPath, [bin, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, EXEC_SERVER_URL: "", EXEC_SERVER_TOKEN: "", ...env }
    })
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
      for (const flag of ["--timeout", "--cwd", "--capture", "--sandbox", "command..."]) {
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
      const viaEnvironment = yield* cli(["run", "--", ...script], { EXEC_SERVER_URL: server.url })
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
      const fromEnvironment = yield* cli(["run", "--remote", server.url, "--", "true"], { EXEC_SERVER_TOKEN: "s3cret" })
      assert.strictEqual(fromEnvironment.code, 0)
      assert.notInclude(server.stderr(), "s3cret", "the token never reaches the logs")
    }))

  it.live("refuses to listen off loopback without a token", () =>
    Effect.gen(function*() {
      const result = yield* cli(["serve", "--listen", "ws://0.0.0.0:0"])
      assert.strictEqual(result.code, 2)
      assert.include(result.stderr, "without a token")
      const named = yield* cli(["serve", "--listen", "ws://localhost:0"])
      assert.strictEqual(named.code, 2)
      assert.include(named.stderr, "host name")
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
      const reply = (id: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < 500; i++) {
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
      send({ id: 3, method: "process/read", params: { processId: "p", afterSeq: 0, waitMs: 2000 } })
      const read = (yield* reply(3)).result
      assert.strictEqual(Buffer.from(read.chunks[0].chunk, "base64").toString(), "hi")
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
  const withBwrap = { EXEC_SANDBOX_BWRAP: bwrapPath }

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
        { EXEC_SANDBOX_BWRAP: "/bin/false" }
      )
      assert.strictEqual(result.code, 1)
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
      assert.strictEqual(unconfined.code, 1)
      assert.include(unconfined.stderr, "this executor runs only sandboxed processes")
      const fullAccess = yield* cli(["run", "--remote", server.url, "--sandbox", "danger-full-access", "--", "true"])
      assert.strictEqual(fullAccess.code, 1, "danger-full-access is no sandbox")
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
      const readOnly = {
        permissions: {
          type: "managed",
          file_system: {
            type: "restricted",
            entries: [{ path: { type: "special", value: { kind: "root" } }, access: "read" }]
          },
          network: "restricted"
        },
        windowsSandboxLevel: "disabled"
      }
      const started = yield* client.call("process/start", startParams("s", ["sleep", marker], { sandbox: readOnly }))
      assert.strictEqual(started.sandboxType, "linuxSeccomp")
      let sleeper: number | undefined
      yield* pollUntil("the sandboxed sleep runs", () => {
        sleeper = pidsRunning(["sleep", marker])[0]
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
