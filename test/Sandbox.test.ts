/**
 * The sandbox conformance suite against the local executor, our exec-server
 * (a remote executor over WebSocket), and Codex's exec-server, whose own
 * sandbox is the reference; then what each server says on the wire of a
 * policy it cannot read, and whether `initialize` names the sandbox. In one
 * file, so that our sandboxes and Codex's never run at once (both create and
 * remove the same masks under /tmp).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as OutputSink from "../src/OutputSink.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import * as Sandbox from "../src/Sandbox.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { bwrapPath } from "./support/bwrap.ts"
import { startCodexServer } from "./support/codexServer.ts"
import { pidsOf } from "./support/processes.ts"
import { readOnly, scratchDir } from "./support/sandbox.ts"
import { sandboxSuite } from "./support/SandboxContract.ts"
import { listenLocal } from "./support/servers.ts"
import { connect, handshake, startParams } from "./support/wireClient.ts"

const sandboxed = { sandbox: { bwrap: bwrapPath } }

const ourServer = Layer.effect(
  Executor,
  Effect.gen(function*() {
    const server = yield* WebSocketListener.listen({})
    return yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url: server.url }))
  })
).pipe(Layer.provide(LocalExecutor.layer(sandboxed)))

const codexServer = Layer.effect(
  Executor,
  Effect.gen(function*() {
    const server = yield* startCodexServer
    return yield* RemoteExecutor.make(RemoteExecutor.connectWebSocket({ url: server.url }))
  })
)

sandboxSuite("LocalExecutor sandbox", LocalExecutor.layer(sandboxed), { ours: true })
sandboxSuite("ExecServer sandbox (remote over WebSocket)", ourServer, { ours: true })
sandboxSuite("Codex exec-server 0.169.0 sandbox", codexServer, { ours: false })

describe("a sandbox on the wire", () => {
  const unknownPolicy = (url: string) =>
    Effect.gen(function*() {
      const client = yield* connect(url)
      yield* handshake(client)
      // Codex takes a cwd only as a file:// URI
      const cwd = "file:///tmp"
      const bogus = { ...readOnly, permissions: { type: "bogus" } }
      const error = yield* client.callError("process/start", startParams("p", ["true"], { cwd, sandbox: bogus }))
      const missing = yield* client.callError(
        "process/start",
        startParams("q", ["true"], { cwd, sandbox: { permissions: readOnly.permissions } })
      )
      return { error, missing }
    })

  it.live("our server refuses a policy it cannot read with -32602, naming the field", () =>
    Effect.gen(function*() {
      const server = yield* listenLocal()
      const { error, missing } = yield* unknownPolicy(server.url)
      assert.strictEqual(error.code, -32602)
      assert.match(error.message, /permissions/)
      assert.strictEqual(missing.code, -32602)
      assert.match(missing.message, /windowsSandboxLevel/)
    }))

  it.live("Codex's server refuses it too, with -32602", () =>
    Effect.gen(function*() {
      const server = yield* startCodexServer
      const { error, missing } = yield* unknownPolicy(server.url)
      assert.strictEqual(error.code, -32602)
      assert.match(error.message, /unknown variant `bogus`/)
      assert.strictEqual(missing.code, -32602)
      assert.match(missing.message, /windowsSandboxLevel/)
    }))

  it.live("initialize names the sandbox where it works; elsewhere sandboxed starts are refused", () =>
    Effect.gen(function*() {
      const executor = yield* LocalExecutor.make(sandboxed)
      const working = yield* Effect.provideService(WebSocketListener.listen({}), Executor, executor)
      const client = yield* connect(working.url)
      assert.include((yield* handshake(client)).capabilities ?? [], "sandbox")

      const broken = yield* LocalExecutor.make({ sandbox: { bwrap: "/bin/false" } })
      const withoutSandbox = yield* Effect.provideService(WebSocketListener.listen({}), Executor, broken)
      const other = yield* connect(withoutSandbox.url)
      assert.notInclude((yield* handshake(other)).capabilities ?? [], "sandbox")
      const refused = yield* other.callError(
        "process/start",
        startParams("p", ["true"], { sandbox: readOnly })
      )
      assert.strictEqual(refused.code, -32602)
      assert.match(refused.message, /^sandbox intent cannot be enforced on this executor: bubblewrap at \/bin\/false/)
      assert.deepStrictEqual((refused.data as { reason: { _tag: string; kind: string } }).reason._tag, "SandboxRefused")
      // an unsandboxed start still runs
      const started = yield* other.call("process/start", startParams("q", ["true"]))
      assert.strictEqual(started.sandboxType, "none")
    }))
})

describe("Exec.run with a sandbox", () => {
  const local = Layer.mergeAll(
    Environment.fromExecutor({ _tag: "Local" }).pipe(Layer.provide(LocalExecutor.layer(sandboxed))),
    OutputSink.layerDiscard
  )

  layer(local, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.effect("returns how the command was confined and whether the sandbox denied it", () =>
      Effect.gen(function*() {
        using dir = scratchDir("exec")
        const workspace = join(dir.path, "ws")
        const outside = join(dir.path, "outside")
        mkdirSync(workspace)
        mkdirSync(outside)
        const denied = yield* Exec.run({
          command: ["sh", "-c", `printf ok > in.txt; printf x > ${outside}/x`],
          cwd: workspace,
          sandbox: Sandbox.workspaceWrite()
        })
        assert.strictEqual(denied.sandboxType, "linuxSeccomp")
        assert.isTrue(denied.sandboxDenied)
        assert.match(denied.stderr.text, /Read-only file system/)
        assert.isTrue(existsSync(join(workspace, "in.txt")))
        assert.isFalse(existsSync(join(outside, "x")))

        const allowed = yield* Exec.run({ command: ["true"], cwd: workspace, sandbox: Sandbox.readOnly() })
        assert.deepStrictEqual([allowed.exitCode, allowed.sandboxType, allowed.sandboxDenied], [
          0,
          "linuxSeccomp",
          false
        ])
        const unconfined = yield* Exec.run({ command: ["true"], cwd: workspace })
        assert.deepStrictEqual([unconfined.sandboxType, unconfined.sandboxDenied], ["none", false])
      }))

    it.effect("a timeout kills the whole sandbox", () =>
      Effect.gen(function*() {
        using dir = scratchDir("exec")
        // the command starts in its sandbox within the timeout unless the machine is too busy: then the run is
        // repeated (up to 4 runs), each one checked for its end and for what outlived it
        let started = ""
        for (let run = 0; run < 4 && started !== "started"; run++) {
          const marker = `${30 + run}.${process.pid}${Date.now() % 1000}`
          const result = yield* Exec.run({
            command: ["sh", "-c", `printf started; sleep ${marker} & sleep ${marker}1`],
            cwd: dir.path,
            timeout: "2 seconds",
            sandbox: Sandbox.readOnly()
          })
          assert.deepStrictEqual([result.exitCode, result.timedOut], [124, true])
          assert.include(["", "started"], result.stdout.text)
          assert.isFalse(result.pipesHeldOpen, "nothing in the sandbox outlived the kill")
          // the sleeps are gone too (up to 10 s for a busy machine to reap them)
          const sleeps = () => [...pidsOf(["sleep", marker]), ...pidsOf(["sleep", `${marker}1`])]
          for (let tries = 0; tries < 500 && sleeps().length > 0; tries++) yield* Effect.sleep("20 millis")
          assert.deepStrictEqual(sleeps(), [], "no sleep of the sandbox outlived the kill")
          started = result.stdout.text
        }
        assert.strictEqual(started, "started")
      }))
  })
})
