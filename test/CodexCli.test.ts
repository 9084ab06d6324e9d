/**
 * The real client: the released Codex CLI (0.169) runs its agent on
 * `effect-exec serve`, offline, with a scripted mock of the model
 * (`support/mockModel.ts`). Each case checks what the model received — the
 * tool's output in the request after the call — and what is on disk.
 *
 * Over WebSocket (`CODEX_EXEC_SERVER_URL`) one `effect-exec serve`, started
 * without `$SHELL` as a service manager starts it, serves every case, each
 * through its own logging proxy (`support/webSocketProxy.ts`), which also
 * cuts links. Over stdio the CLI starts the server itself, as the `program` of
 * an `environments.toml` entry. The basic case and the cut links also run
 * against Codex's own exec-server, the reference (which shows that what they
 * ask of the server is what Codex's gives). Cases are independent and run
 * concurrently. Every server has an empty `HOME` of its own, so the login
 * shells the CLI runs commands in read no user's profile: a command's output is
 * what it prints.
 */
import { assert, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { userInfo } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { bwrapPath } from "./support/bwrap.ts"
import * as CodexCli from "./support/codexCli.ts"
import { startCodexServer } from "./support/codexServer.ts"
import * as MockModel from "./support/mockModel.ts"
import { bin, spawnServe } from "./support/servers.ts"
import * as WebSocketProxy from "./support/webSocketProxy.ts"

/** `effect-exec serve ARGS` without `$SHELL`, with an empty `HOME` of its own (`CodexCli.serverHome`). */
const serveForTheCli = (args: ReadonlyArray<string> = []) =>
  Effect.flatMap(CodexCli.serverHome, (home) => spawnServe(args, { SHELL: undefined, HOME: home }))

/** The exec-servers the WebSocket cases reach, each through a proxy of their own. */
class Servers extends Context.Service<Servers, {
  /** `effect-exec serve`, started without `$SHELL`. */
  readonly effectExec: string
  /** Codex's own `codex exec-server`, the reference. */
  readonly codex: string
}>()("test/CodexCli/Servers") {}

const servers = Layer.effect(
  Servers,
  Effect.gen(function*() {
    const [ours, codex] = yield* Effect.all([serveForTheCli(), startCodexServer], {
      concurrency: "unbounded"
    })
    return { effectExec: ours.url, codex: codex.url }
  })
)

const caseTimeout = 120_000

/** The CLI on `serverUrl` through a fresh proxy, in a fresh workspace holding `files`. */
const overWebSocket = (serverUrl: string, files: Readonly<Record<string, string | Uint8Array>> = {}) =>
  Effect.gen(function*() {
    const proxy = yield* WebSocketProxy.start(serverUrl)
    const workspace = yield* CodexCli.workspace(files)
    const run = (script: ReadonlyArray<MockModel.Turn>) =>
      CodexCli.run({ workspace, server: { _tag: "WebSocket", url: proxy.url }, script })
    return { proxy, workspace, run }
  })

/** Creates an empty file (what the gated command waits for). */
const touch = (path: string) => Effect.sync(() => writeFileSync(path, ""))

const read = (workspace: string, path: string): string | undefined => {
  const file = join(workspace, path)
  return existsSync(file) ? readFileSync(file, "utf8") : undefined
}

/** The params of every request `method` the client sent through the proxy. */
const sent = (proxy: WebSocketProxy.WebSocketProxy, method: string): ReadonlyArray<any> =>
  proxy.frames.filter((f) => f.from === "client" && f.message.method === method).map((f) => f.message.params)

/** The session id the last command tool reported as still running, for `write_stdin`. */
const runningSession = (request: MockModel.ModelRequest): number => {
  const results = MockModel.toolResults(request)
  const sessionId = CodexCli.commandOutput(results[results.length - 1]).sessionId
  if (sessionId === undefined) throw new Error("the last command is not running")
  return sessionId
}

/** stdout, stderr and the exit code of one command reach the model; it ran in the workspace. */
const commandReachesTheModel = (serverUrl: string) =>
  Effect.gen(function*() {
    const { proxy, workspace, run } = yield* overWebSocket(serverUrl)
    const { toolResults } = yield* run([
      MockModel.execCommand({ cmd: "echo out; echo err >&2; pwd > where.txt; exit 3", yield_time_ms: 30_000 }),
      MockModel.say("done")
    ])
    assert.strictEqual(toolResults.length, 1)
    const result = CodexCli.commandOutput(toolResults[0])
    assert.strictEqual(result.exitCode, 3)
    // stdout and stderr are merged in arrival order, which varies from run to run
    assert.deepStrictEqual(result.output.split("\n").sort(), ["", "err", "out"], JSON.stringify(result.output))
    assert.strictEqual(read(workspace, "where.txt"), `${workspace}\n`)
    assert.strictEqual(sent(proxy, "process/start")[0]?.cwd, pathToFileURL(workspace).href)
  })

/** `before`, then waits for the file `go` in its cwd, then `after`; the call answers after 1 s, while it waits. */
const gated = MockModel.execCommand({
  cmd: "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after",
  yield_time_ms: 1_000
})

/**
 * Forks the CLI on `gated`, then on a poll of it (`write_stdin` without
 * characters, which returns once the command ends), then "done". Returns once
 * the CLI asked the model what to do about the running command: it holds the
 * command's session, so the start went through as far as the CLI knows, and a
 * link cut from then on is one it resumes. Nothing on the wire says as much
 * earlier: that the proxy passed on the answer to `process/start` (or the
 * first output, which Codex's server may push before that answer) does not
 * mean the CLI read it before a cut, and one that did not fails the tool call.
 */
const runGated = (run: (script: ReadonlyArray<MockModel.Turn>) => Effect.Effect<CodexCli.Run, never, Scope.Scope>) =>
  Effect.gen(function*() {
    const polling = Latch.makeUnsafe(false)
    const cli = yield* Effect.forkChild(run([
      gated,
      MockModel.writeStdin((request) => {
        const session_id = runningSession(request)
        polling.openUnsafe()
        return { session_id, yield_time_ms: 30_000 }
      }),
      MockModel.say("done")
    ]))
    yield* Effect.raceFirst(
      polling.await,
      Effect.andThen(Fiber.join(cli), Effect.die(new Error("the CLI finished without polling the command")))
    )
    return cli
  })

/** The gated command as the model got it over its two calls: all it printed, and how it ended. */
const gatedOutput = (toolResults: ReadonlyArray<MockModel.ToolResult>) => {
  assert.deepStrictEqual(toolResults.map((result) => result.tool), ["exec_command", "write_stdin"])
  const [started, polled] = toolResults.map(CodexCli.commandOutput)
  assert.isDefined(started!.sessionId, "the command was still running when the first call answered")
  return { exitCode: polled!.exitCode, output: started!.output + polled!.output }
}

/** The client resumed its session on a second link and read what it missed. */
const assertResumed = (proxy: WebSocketProxy.WebSocketProxy) => {
  const [first, second] = sent(proxy, "initialize")
  const sessionId = proxy.frames.find((f) => f.link === 1 && f.message.result?.sessionId)?.message.result.sessionId
  assert.isNull(first?.resumeSessionId ?? null)
  assert.strictEqual(second?.resumeSessionId, sessionId)
  assert.isTrue(proxy.frames.some((f) => f.link === 2 && f.message.method === "process/read"))
}

/** The link is cut while the command waits; the CLI resumes; the command then finishes: all of it reaches the model. */
const resumesMidCommand = (serverUrl: string) =>
  Effect.gen(function*() {
    const { proxy, workspace, run } = yield* overWebSocket(serverUrl)
    const cli = yield* runGated(run)
    yield* proxy.cut()
    yield* proxy.waitFor("a read after the resume", (f) => f.link === 2 && f.message.method === "process/read")
    yield* touch(join(workspace, "go"))
    const { toolResults } = yield* Fiber.join(cli)
    const result = gatedOutput(toolResults)
    assert.strictEqual(result.exitCode, 0)
    assert.strictEqual(result.output, "before\nafter\n")
    assertResumed(proxy)
  })

/**
 * The link dies while the command finishes: the server's output, exit and
 * close go into it and are lost, and reconnecting is refused until then. The
 * CLI resumes afterwards and must recover all of it with `process/read`.
 */
const recoversWhatTheDeadLinkLost = (serverUrl: string) =>
  Effect.gen(function*() {
    const { proxy, workspace, run } = yield* overWebSocket(serverUrl)
    const cli = yield* runGated(run)
    yield* proxy.setAccepting(false)
    yield* proxy.cut({ holdServerSide: true })
    yield* touch(join(workspace, "go"))
    yield* proxy.waitFor(
      "the close, sent into the dead link",
      (f) => f.from === "server" && f.message.method === "process/closed" && !f.delivered
    )
    yield* proxy.releaseServerSide
    yield* proxy.setAccepting(true)
    const { toolResults } = yield* Fiber.join(cli)
    const result = gatedOutput(toolResults)
    assert.strictEqual(result.exitCode, 0)
    assert.strictEqual(result.output, "before\nafter\n")
    assertResumed(proxy)
  })

/** 4 000 000 × "x" in lines of 100, then END: 4 040 003 bytes. */
const bigOutputBytes = 4_000_000
const printsMegabytes = MockModel.execCommand({
  cmd: `head -c ${bigOutputBytes} /dev/zero | tr '\\0' x | fold -w 100; echo END`,
  yield_time_ms: 30_000
})

/** A command printing a few MiB over `server`: the CLI received every byte (it counts them), and the end. */
const bigOutputArrivesWhole = (server: CodexCli.ExecServer) =>
  Effect.gen(function*() {
    const workspace = yield* CodexCli.workspace()
    const { toolResults } = yield* CodexCli.run({ workspace, server, script: [printsMegabytes, MockModel.say("done")] })
    const result = CodexCli.commandOutput(toolResults[0])
    assert.strictEqual(result.exitCode, 0)
    // a newline after every line of 100 but the last (fold adds none there), then "END\n"
    const bytes = bigOutputBytes + bigOutputBytes / 100 - 1 + 4
    assert.strictEqual(result.originalTokenCount, Math.ceil(bytes / 4), "ceil(bytes / 4): every byte arrived")
    // the model is shown the head and the tail, after a line saying how much was left out
    assert.match(result.output, /^Warning: truncated output \(original token count: \d+\)\n.*omitted.*\n\nx{100}\n/)
    assert.isTrue(result.output.endsWith("xEND\n"), `the tail: ${JSON.stringify(result.output.slice(-200))}`)
  })

/** `effect-exec serve --listen stdio`, as a program for the CLI to start. */
const stdioServe = [bin, "serve", "--listen", "stdio"]
const slowRelay = fileURLToPath(new URL("./support/slowStdioRelay.ts", import.meta.url))

layer(servers, { concurrent: true, excludeTestServices: true, timeout: "60 seconds" })(
  "the Codex CLI 0.169 on effect-exec serve",
  (it) => {
    // the cases whose scenario Codex's own server passes too, run against it as the reference
    for (const [server, name] of [["effectExec", "effect-exec serve"], ["codex", "Codex's exec-server"]] as const) {
      it.effect(`${name}: a command's stdout, stderr and exit code reach the model`, () =>
        Effect.gen(function*() {
          yield* commandReachesTheModel((yield* Servers)[server])
        }), caseTimeout)

      it.effect(
        `${name}: a link cut mid-command; the CLI resumes and the output is complete`,
        () =>
          Effect.gen(function*() {
            yield* resumesMidCommand((yield* Servers)[server])
          }),
        caseTimeout
      )

      it.effect(
        `${name}: the command ends while the link is down, what the server sent lost; all of it arrives`,
        () =>
          Effect.gen(function*() {
            yield* recoversWhatTheDeadLinkLost((yield* Servers)[server])
          }),
        caseTimeout
      )
    }

    it.effect("apply_patch adds, updates, moves and deletes files, in new directories", () =>
      Effect.gen(function*() {
        const { effectExec } = yield* Servers
        const { workspace, run } = yield* overWebSocket(effectExec, {
          "upd.txt": "one\ntwo\nthree\n",
          "mv-src.txt": "alpha\nbeta\n",
          "old/del.txt": "bye\n"
        })
        const { toolResults } = yield* run([
          MockModel.applyPatch("*** Begin Patch\n*** Add File: new/sub/added.txt\n+hello\n+world\n*** End Patch\n"),
          MockModel.applyPatch(
            "*** Begin Patch\n*** Update File: upd.txt\n@@\n one\n-two\n+TWO\n three\n*** End Patch\n"
          ),
          MockModel.applyPatch(
            "*** Begin Patch\n*** Update File: mv-src.txt\n*** Move to: moved/deeper/dst.txt\n@@\n alpha\n-beta\n+BETA\n" +
              "*** End Patch\n"
          ),
          MockModel.applyPatch("*** Begin Patch\n*** Delete File: old/del.txt\n*** End Patch\n"),
          MockModel.say("done")
        ])
        const listed = toolResults.map((result) => {
          assert.strictEqual(result.tool, "apply_patch")
          const match = /^Exit code: 0\n[\s\S]*\nOutput:\nSuccess\. Updated the following files:\n([\s\S]*)$/.exec(
            String(result.output)
          )
          assert.isNotNull(match, `apply_patch answered: ${String(result.output)}`)
          return match![1]
        })
        assert.deepStrictEqual(listed, [
          "A new/sub/added.txt\n",
          "M upd.txt\n",
          "M moved/deeper/dst.txt\n",
          "D old/del.txt\n"
        ])
        assert.strictEqual(read(workspace, "new/sub/added.txt"), "hello\nworld\n")
        assert.strictEqual(read(workspace, "upd.txt"), "one\nTWO\nthree\n")
        assert.strictEqual(read(workspace, "moved/deeper/dst.txt"), "alpha\nBETA\n")
        assert.isFalse(existsSync(join(workspace, "mv-src.txt")), "the moved file left its old place")
        assert.isFalse(existsSync(join(workspace, "old/del.txt")), "the deleted file is gone")
      }), caseTimeout)

    it.effect("view_image: the model receives the image's bytes", () =>
      Effect.gen(function*() {
        const { effectExec } = yield* Servers
        // a 2 × 2 RGB PNG
        const png =
          "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR4nGNgYPj/nwFIMIAIABvyA/17LY6KAAAAAElFTkSuQmCC"
        const { workspace, run } = yield* overWebSocket(effectExec, { "pic.png": Buffer.from(png, "base64") })
        const { toolResults } = yield* run([MockModel.viewImage(join(workspace, "pic.png")), MockModel.say("done")])
        assert.strictEqual(toolResults.length, 1)
        const output = toolResults[0]!.output
        assert.isTrue(Array.isArray(output), `view_image answered: ${JSON.stringify(output)}`)
        const images = (output as ReadonlyArray<any>).filter((item) => item.type === "input_image")
        assert.deepStrictEqual(images.map((item) => item.image_url), [`data:image/png;base64,${png}`])
        assert.strictEqual(readFileSync(join(workspace, "pic.png")).toString("base64"), png, "the file is unchanged")
      }), caseTimeout)

    it.effect("AGENTS.md in the workspace reaches the model", () =>
      Effect.gen(function*() {
        const { effectExec } = yield* Servers
        const marker = "AGENTS-MARKER-5e1c: answer in haiku"
        const { proxy, run } = yield* overWebSocket(effectExec, { "AGENTS.md": `# Rules\n\n${marker}\n` })
        const { requests } = yield* run([MockModel.say("done")])
        const texts = MockModel.inputTexts(requests[0]!).filter((text) => text.includes(marker))
        assert.strictEqual(texts.length, 1, "the file's text is in the first request, once")
        assert.match(texts[0]!, /AGENTS\.md/)
        assert.isTrue(
          sent(proxy, "fs/readFile").some((params) => String(params.path).endsWith("/AGENTS.md")),
          "the CLI read it through the exec-server"
        )
      }), caseTimeout)

    it.effect("a tty session is written to with write_stdin", () =>
      Effect.gen(function*() {
        const { effectExec } = yield* Servers
        const { proxy, workspace, run } = yield* overWebSocket(effectExec)
        const { toolResults } = yield* run([
          MockModel.execCommand({
            cmd: `read line; echo "got:$line"; printf %s "$line" > typed.txt`,
            tty: true,
            yield_time_ms: 500
          }),
          MockModel.writeStdin((request) => ({
            session_id: runningSession(request),
            chars: "hello\n",
            yield_time_ms: 30_000
          })),
          MockModel.say("done")
        ])
        const [started, written] = toolResults.map(CodexCli.commandOutput)
        assert.isDefined(started!.sessionId, "the session waits for input")
        assert.isUndefined(started!.exitCode)
        assert.strictEqual(written!.exitCode, 0)
        assert.match(written!.output, /got:hello\r\n/, "the terminal's output, CRLF and all")
        assert.strictEqual(read(workspace, "typed.txt"), "hello")
        assert.isTrue(sent(proxy, "process/start")[0]?.tty)
        assert.strictEqual(sent(proxy, "process/write").length, 1)
      }), caseTimeout)

    it.effect(
      "bash syntax works on a server started without $SHELL (the login shell is reported)",
      () =>
        Effect.gen(function*() {
          const { effectExec } = yield* Servers
          const loginShell = userInfo().shell
          assert.match(String(loginShell), /\/bash$/, "this case needs a user whose login shell is bash")
          const { proxy, workspace, run } = yield* overWebSocket(effectExec)
          const { toolResults } = yield* run([
            MockModel.execCommand({ cmd: "[[ 1 == 1 ]] && echo bash-ok | tee bash.txt", yield_time_ms: 30_000 }),
            MockModel.say("done")
          ])
          const result = CodexCli.commandOutput(toolResults[0])
          assert.strictEqual(result.exitCode, 0)
          assert.strictEqual(result.output, "bash-ok\n")
          assert.strictEqual(read(workspace, "bash.txt"), "bash-ok\n")
          const initialized = proxy.frames.find((f) => f.from === "server" && f.message.result?.environmentInfo)
          assert.strictEqual(initialized?.message.result.environmentInfo.shell.path, loginShell)
          assert.strictEqual(sent(proxy, "process/start")[0]?.argv[0], loginShell)
        }),
      caseTimeout
    )

    it.effect(
      "--sandbox workspace-write: the command writes in the workspace only, not into .git, and reaches no port",
      () =>
        Effect.gen(function*() {
          // a server of its own, with bubblewrap: the shared one has none and refuses sandboxed starts
          const server = yield* serveForTheCli(["--bwrap", bwrapPath])
          const proxy = yield* WebSocketProxy.start(server.url)
          const workspace = yield* CodexCli.workspace({ ".git/HEAD": "ref: refs/heads/main\n" })
          // workspace-write leaves /tmp writable: "outside" is elsewhere
          const outside = `/var/tmp/codex-cli-sandbox-${process.pid}-${Date.now()}`
          const listener = yield* Effect.acquireRelease(
            Effect.callback<Net.Server>((resume) => {
              const tcp = Net.createServer((socket) => socket.end("hello\n"))
              tcp.listen(0, "127.0.0.1", () => resume(Effect.succeed(tcp)))
            }),
            (tcp) => Effect.sync(() => tcp.close())
          )
          const port = (listener.address() as Net.AddressInfo).port
          const { toolResults } = yield* CodexCli.run({
            workspace,
            server: { _tag: "WebSocket", url: proxy.url },
            sandbox: "workspace-write",
            script: [
              MockModel.execCommand({
                cmd: [
                  "echo in > inside.txt",
                  `echo out > ${outside} 2>/dev/null && echo outside-written`,
                  "echo x > .git/x 2>/dev/null && echo git-written",
                  `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && echo port-reached`,
                  "echo end"
                ].join("; "),
                yield_time_ms: 30_000
              }),
              MockModel.say("done")
            ]
          })
          const result = CodexCli.commandOutput(toolResults[0])
          // (the login shell may print warnings of its own in a read-only world: only our lines count)
          const lines = result.output.split("\n")
          assert.include(lines, "end")
          for (const escaped of ["outside-written", "git-written", "port-reached"]) assert.notInclude(lines, escaped)
          assert.strictEqual(read(workspace, "inside.txt"), "in\n")
          assert.isFalse(existsSync(outside))
          assert.isFalse(existsSync(join(workspace, ".git", "x")))
          const start = sent(proxy, "process/start")[0]
          assert.strictEqual(start?.sandbox?.permissions?.type, "managed", "the CLI asked for its sandbox")
          const answer = proxy.frames.find((f) => f.from === "server" && f.message.result?.sandboxType !== undefined)
          assert.strictEqual(answer?.message.result.sandboxType, "linuxSeccomp")
        }),
      caseTimeout
    )

    it.effect(
      "over stdio (a program in environments.toml): a command printing 4 MB reaches the model whole",
      () => bigOutputArrivesWhole({ _tag: "Stdio", program: process.execPath, args: stdioServe }),
      caseTimeout
    )

    it.effect(
      "over stdio behind a reader that stalls for 2 s: 4 MB reach the model whole",
      () =>
        bigOutputArrivesWhole({
          _tag: "Stdio",
          program: process.execPath,
          args: [slowRelay, "--stall-after", "65536", "--stall-ms", "2000", "--", process.execPath, ...stdioServe]
        }),
      caseTimeout
    )
  }
)
