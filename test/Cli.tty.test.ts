/**
 * `effect-exec run --tty` as a user at a terminal runs it: the CLI itself runs
 * on a real pseudo-terminal (node-pty), inside a shell that records the
 * terminal's settings (`stty -g`) before and after, so every test also checks
 * that the terminal was given back as it was. (Node also resets its stdin's
 * settings when it exits; what the CLI prints after the command shows that
 * the terminal was given back before that.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as pty from "@lydell/node-pty"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { bin, spawnServe } from "./support/servers.ts"

/** Runs the CLI's arguments, then says how it exited and whether the terminal's settings came back. */
const wrapper = [
  "before=$(stty -g)",
  "\"$0\" \"$@\"",
  "code=$?",
  "[ \"$before\" = \"$(stty -g)\" ] && state=restored || state=changed",
  "printf '\\n[exit %s, terminal %s]\\n' \"$code\" \"$state\""
].join("; ")

interface Session {
  /** Everything the terminal showed so far. */
  readonly screen: () => string
  readonly type: (text: string) => void
  readonly resize: (cols: number, rows: number) => void
  /** Waits until the screen matches, and returns the match. */
  readonly waitFor: (pattern: RegExp) => Effect.Effect<RegExpExecArray>
}

/** `effect-exec ARGS` on a terminal of 100 × 30, for the test's scope. */
const onTerminal = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync((): Session & { readonly terminal: pty.IPty } => {
      const terminal = pty.spawn("/bin/sh", ["-c", wrapper, process.execPath, bin, ...args], {
        cols: 100,
        rows: 30,
        cwd: "/tmp",
        env: { ...process.env, TERM: "xterm-256color", EXEC_SERVER_URL: "", EXEC_SERVER_TOKEN: "" },
        encoding: null
      })
      let screen = ""
      terminal.onData((data) => (screen += Buffer.from(data as unknown as Uint8Array).toString("utf8")))
      return {
        terminal,
        screen: () => screen,
        type: (text) => terminal.write(text),
        resize: (cols, rows) => terminal.resize(cols, rows),
        waitFor: (pattern) =>
          Effect.gen(function*() {
            const deadline = Date.now() + 15_000
            while (true) {
              const match = pattern.exec(screen)
              if (match !== null) return match
              if (Date.now() > deadline) {
                return yield* Effect.die(new Error(`no ${pattern} on the terminal: ${JSON.stringify(screen)}`))
              }
              yield* Effect.sleep("20 millis")
            }
          })
      }
    }),
    ({ terminal }) => Effect.sync(() => terminal.kill("SIGKILL"))
  )

const ended = /\[exit (\d+), terminal (\w+)\]/

describe("effect-exec run --tty, at a terminal", () => {
  it.live("gives the command a terminal of the user's size, raw keys, and the resizes", () =>
    Effect.gen(function*() {
      const session = yield* onTerminal([
        "run",
        "--tty",
        "--",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo on-a-tty; echo TERM=$TERM; stty size; echo ready; read line; " +
        "echo got:$line; stty size"
      ])
      yield* session.waitFor(/ready\r\n/)
      assert.include(session.screen(), "on-a-tty\r\nTERM=xterm-256color\r\n30 100\r\n")
      session.resize(120, 40)
      yield* Effect.sleep("200 millis")
      // line editing is the command's terminal's: a typo erased with backspace never reaches the command
      session.type("helo\x7flo\r")
      const [, code, terminal] = yield* session.waitFor(ended)
      const afterReady = session.screen().slice(session.screen().indexOf("ready\r\n") + "ready\r\n".length)
      // echoed once (by the command's terminal, not also by ours), \n as \r\n once, not \r\r\n
      assert.isTrue(afterReady.startsWith("helo\b \blo\r\ngot:hello\r\n40 120\r\n"), JSON.stringify(afterReady))
      assert.strictEqual(code, "0")
      assert.strictEqual(terminal, "restored")
    }))

  it.live("sends Ctrl-C to the command as a key, and exits with the command's code", () =>
    Effect.gen(function*() {
      const session = yield* onTerminal([
        "run",
        "-t",
        "--",
        "sh",
        "-c",
        "trap 'echo caught-int; exit 7' INT; echo ready; while :; do sleep 0.05; done"
      ])
      yield* session.waitFor(/ready/)
      session.type("\x03")
      const [, code, terminal] = yield* session.waitFor(ended)
      // the command's own terminal turned the key into SIGINT: its trap ran, the CLI was not interrupted
      assert.include(session.screen(), "caught-int")
      assert.strictEqual(code, "7")
      assert.strictEqual(terminal, "restored")
    }))

  it.live("gives the terminal back when the command is killed by the key, or the CLI by a signal", () =>
    Effect.gen(function*() {
      const killedByKey = yield* onTerminal(["run", "-t", "--", "sh", "-c", "echo ready; sleep 100"])
      yield* killedByKey.waitFor(/ready/)
      killedByKey.type("\x03")
      const [, keyCode, keyTerminal] = yield* killedByKey.waitFor(ended)
      assert.strictEqual(keyCode, "130", "128 + SIGINT")
      assert.strictEqual(keyTerminal, "restored")
      // given back before the CLI says what happened: its line ends as a line should (\n output as \r\n)
      assert.include(killedByKey.screen(), "effect-exec: command killed by SIGINT\r\n")

      const killedCli = yield* onTerminal(["run", "-t", "--", "sh", "-c", "echo cli:$PPID; sleep 100"])
      const [, cliPid] = yield* killedCli.waitFor(/cli:(\d+)\r\n/)
      process.kill(Number(cliPid), "SIGTERM")
      const [, cliCode, cliTerminal] = yield* killedCli.waitFor(ended)
      assert.strictEqual(cliCode, "143", "128 + SIGTERM, as a shell reports it")
      assert.strictEqual(cliTerminal, "restored")
    }))

  it.live("gives the terminal back when the command cannot start or the server is gone", () =>
    Effect.gen(function*() {
      const missing = yield* onTerminal(["run", "-t", "--", "no-such-command-effect-exec"])
      const [, missingCode, missingTerminal] = yield* missing.waitFor(ended)
      assert.strictEqual(missingCode, "127")
      assert.strictEqual(missingTerminal, "restored")
      assert.include(missing.screen(), "command not found: no-such-command-effect-exec")

      const unreachable = yield* onTerminal(["run", "-t", "--remote", "ws://127.0.0.1:1", "--", "true"])
      const [, lostCode, lostTerminal] = yield* unreachable.waitFor(ended)
      assert.strictEqual(lostCode, "255")
      assert.strictEqual(lostTerminal, "restored")
    }))

  it.live("runs an interactive session on an exec-server", () =>
    Effect.gen(function*() {
      const server = yield* spawnServe()
      const session = yield* onTerminal([
        "run",
        "-t",
        "--remote",
        server.url,
        "--",
        "sh",
        "-c",
        "stty size; echo ready; read line; echo got:$line; stty size"
      ])
      yield* session.waitFor(/ready\r\n/)
      assert.include(session.screen(), "30 100\r\n")
      session.resize(90, 20)
      yield* Effect.sleep("300 millis")
      session.type("remote\r")
      const [, code, terminal] = yield* session.waitFor(ended)
      assert.include(session.screen(), "remote\r\ngot:remote\r\n20 90\r\n")
      assert.strictEqual(code, "0")
      assert.strictEqual(terminal, "restored")
    }))

  it.live("without a terminal on stdin, forwards its bytes and then its end as Ctrl-D", () =>
    Effect.callback<void>((resume) => {
      const child = spawn(process.execPath, [bin, "run", "-t", "--", "sh", "-c", "cat; echo done"], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, EXEC_SERVER_URL: "" }
      })
      let stdout = ""
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
      child.on("close", (code) => {
        // the terminal echoes each line, cat prints it, and Ctrl-D at the start of a line ends cat
        resume(Effect.sync(() => {
          assert.strictEqual(stdout, "one\r\ntwo\r\none\r\ntwo\r\ndone\r\n")
          assert.strictEqual(code, 0)
        }))
      })
      child.stdin.end("one\ntwo\n")
      return Effect.sync(() => void child.kill("SIGKILL"))
    }))
})
