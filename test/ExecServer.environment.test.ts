/**
 * What the exec-server says of its host in `initialize` (Codex 0.169's
 * `environmentInfo`), the login shell it finds without `$SHELL` (also as a
 * user whose login shell is `nologin`), `fs/*` permission errors as such a
 * user, and the order of a resumed session's first frames.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import {
  accessSync,
  chmodSync,
  constants,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync
} from "node:fs"
import * as NodeOs from "node:os"
import { delimiter, join } from "node:path"
import { pathToFileURL } from "node:url"
import { Executor } from "../src/Executor.ts"
import { detectLoginShell, type ShellLookup } from "../src/internal/server/environmentInfo.ts"
import { ErrorCode } from "../src/JsonRpc.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { listenLocal as server, spawnServe } from "./support/servers.ts"
import { codexShape, connect, handshake, readAll, startParams } from "./support/wireClient.ts"

const uri = (path: string) => pathToFileURL(path).href

const isExecutable = (path: string) => {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** The first executable `name` on `PATH`, else `/bin/<name>`: where Codex looks when the login shell is unusable. */
const onPath = (name: string, path = process.env.PATH ?? "") =>
  path.split(delimiter).filter((dir) => dir !== "").map((dir) => join(dir, name)).find(isExecutable) ?? `/bin/${name}`

/** The initialize result of the server at `url`. */
const initialize = (url: string) =>
  Effect.gen(function*() {
    const client = yield* connect(url)
    return yield* handshake(client) as Effect.Effect<any>
  })

// =============================================================================
// Login shell detection
// =============================================================================

describe("the login shell, as Codex finds it", () => {
  const lookup = (overrides: Partial<ShellLookup>): ShellLookup => ({
    passwdShell: "/bin/bash",
    pathDirs: ["/usr/local/bin", "/usr/bin", "/bin"],
    isExecutable: () => true,
    platform: "linux",
    ...overrides
  })

  it("takes the user database's shell when Codex knows it by path", () => {
    assert.deepStrictEqual(detectLoginShell(lookup({})), { name: "bash", path: "/bin/bash" })
    assert.deepStrictEqual(detectLoginShell(lookup({ passwdShell: "/usr/bin/zsh" })), {
      name: "zsh",
      path: "/usr/bin/zsh"
    })
    assert.deepStrictEqual(detectLoginShell(lookup({ passwdShell: "/bin/sh" })), { name: "sh", path: "/bin/sh" })
  })

  it("falls back to bash on PATH, then /bin/bash, then zsh, then /bin/sh for nologin, a missing or an unknown shell", () => {
    const onlyIn = (...present: ReadonlyArray<string>) => (path: string) => present.includes(path)
    assert.deepStrictEqual(
      detectLoginShell(
        lookup({ passwdShell: "/usr/sbin/nologin", isExecutable: onlyIn("/usr/bin/bash", "/bin/bash") })
      ),
      { name: "bash", path: "/usr/bin/bash" }
    )
    assert.deepStrictEqual(
      detectLoginShell(
        lookup({ passwdShell: "/tmp/bash", pathDirs: ["/nonexistent"], isExecutable: onlyIn("/tmp/bash", "/bin/bash") })
      ),
      { name: "bash", path: "/bin/bash" },
      "a file merely named bash is not trusted"
    )
    assert.deepStrictEqual(
      detectLoginShell(lookup({ passwdShell: "/bin/zsh", isExecutable: onlyIn("/usr/bin/bash") })),
      { name: "bash", path: "/usr/bin/bash" },
      "a known shell that is not installed"
    )
    assert.deepStrictEqual(
      detectLoginShell(lookup({ passwdShell: undefined, isExecutable: onlyIn("/usr/bin/zsh") })),
      { name: "zsh", path: "/usr/bin/zsh" }
    )
    assert.deepStrictEqual(
      detectLoginShell(lookup({ passwdShell: "/usr/bin/fish", isExecutable: () => false })),
      { name: "sh", path: "/bin/sh" }
    )
    assert.deepStrictEqual(
      detectLoginShell(lookup({ passwdShell: "/usr/sbin/nologin", platform: "darwin" })),
      { name: "zsh", path: "/usr/local/bin/zsh" },
      "macOS tries zsh first"
    )
  })
})

// =============================================================================
// environmentInfo
// =============================================================================

describe("ExecServer over the wire: environmentInfo", () => {
  it.live("describes the host in Codex's shape and key order", () =>
    Effect.gen(function*() {
      const { url } = yield* server()
      const result = yield* initialize(url)
      const info = result.environmentInfo
      assert.deepStrictEqual(Object.keys(info), [
        "shell",
        "executorVersion",
        "cwd",
        "userHomeDir",
        "platformOs",
        "temporaryDirectories",
        "tempDir",
        "capabilities"
      ])
      const passwd = NodeOs.userInfo().shell ?? ""
      assert.deepStrictEqual(
        info.shell.path,
        isExecutable(passwd) && /\/(ba|z)?sh$/.test(passwd) ? passwd : info.shell.path
      )
      assert.include(["bash", "zsh", "sh"], info.shell.name)
      assert.match(info.executorVersion, /^effect-exec \d+\.\d+\.\d+/)
      assert.strictEqual(info.cwd, uri(process.cwd()))
      assert.strictEqual(info.userHomeDir, uri(NodeOs.homedir()))
      assert.strictEqual(info.platformOs, "linux")
      assert.strictEqual(Object.keys(info.capabilities).length, 15)
      for (const [name, offered] of Object.entries(info.capabilities)) assert.isFalse(offered, name)
      assert.includeMembers(Object.keys(info.capabilities), [
        "fsWatchMissing",
        "environmentConfigRead",
        "fileWriteStreaming"
      ])
      assert.includeMembers(result.capabilities, ["fs/readFile.maxBytes"])
    }))

  it.live("`serve` without $SHELL reports the user database's login shell, and ignores $SHELL when set", () =>
    Effect.gen(function*() {
      const withoutShell = yield* initialize((yield* spawnServe([], { SHELL: undefined, TMPDIR: undefined })).url)
      const withShell = yield* initialize((yield* spawnServe([], { SHELL: "/bin/sh", TMPDIR: "/var/tmp/" })).url)
      const expected = detectLoginShell({
        passwdShell: NodeOs.userInfo().shell ?? undefined,
        pathDirs: (process.env.PATH ?? "").split(delimiter),
        isExecutable,
        platform: process.platform
      })
      assert.deepStrictEqual(withoutShell.environmentInfo.shell, expected)
      assert.deepStrictEqual(withShell.environmentInfo.shell, expected)
      assert.deepStrictEqual(withoutShell.environmentInfo.temporaryDirectories, [])
      assert.strictEqual(withoutShell.environmentInfo.tempDir, "file:///tmp")
      assert.deepStrictEqual(withShell.environmentInfo.temporaryDirectories, ["file:///var/tmp"])
      assert.strictEqual(withShell.environmentInfo.tempDir, "file:///var/tmp")
    }))
})

// =============================================================================
// A user whose login shell is nologin, and whom the OS refuses files
// =============================================================================

/**
 * As root, `serve` runs as `nobody` (login shell `/usr/sbin/nologin`); as
 * anyone else it runs as that user. Either way the server's user cannot open
 * a mode-000 file or write into a mode-555 directory.
 */
const isRoot = process.getuid?.() === 0
const serveAsOtherUser = isRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] : []

describe("ExecServer over the wire: a user the OS refuses", () => {
  it.live("reports bash from PATH when the login shell is nologin, and permission errors as -32600", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => realpathSync(mkdtempSync(join(NodeOs.tmpdir(), "fs-perm-")))),
        (dir) =>
          Effect.sync(() => {
            chmodSync(join(dir, "locked"), 0o755)
            chmodSync(join(dir, "readonly"), 0o755)
            rmSync(dir, { recursive: true, force: true })
          })
      )
      chmodSync(dir, 0o755)
      writeFileSync(join(dir, "secret"), "s")
      chmodSync(join(dir, "secret"), 0o000)
      mkdirSync(join(dir, "locked"))
      chmodSync(join(dir, "locked"), 0o000)
      mkdirSync(join(dir, "readonly"))
      chmodSync(join(dir, "readonly"), 0o555)

      const serve = yield* spawnServe([], { SHELL: undefined }, serveAsOtherUser)
      const client = yield* connect(serve.url)
      const init: any = yield* handshake(client)
      if (isRoot) assert.deepStrictEqual(init.environmentInfo.shell, { name: "bash", path: onPath("bash") })

      const denied = { code: -32600, message: "Permission denied (os error 13)" }
      const refused = (method: string, params: object) => Effect.map(client.callError(method, params), codexShape)
      assert.deepStrictEqual(yield* refused("fs/readFile", { path: uri(join(dir, "secret")) }), denied)
      assert.deepStrictEqual(yield* refused("fs/readDirectory", { path: uri(join(dir, "locked")) }), denied)
      assert.deepStrictEqual(
        yield* refused("fs/writeFile", { path: uri(join(dir, "readonly", "new")), dataBase64: "" }),
        denied
      )
      assert.deepStrictEqual(yield* refused("fs/createDirectory", { path: uri(join(dir, "readonly", "d")) }), denied)
      const error = yield* client.callError("fs/getMetadata", { path: uri(join(dir, "locked", "inside")) })
      assert.deepStrictEqual(codexShape(error), denied)
      assert.strictEqual((error.data as any).reason._tag, "PathAccessDenied")
    }))
})

// =============================================================================
// Resume: nothing before the initialize answer
// =============================================================================

describe("ExecServer over the wire: resume order", () => {
  /**
   * Sends `initialize` on fresh connections until one is answered without an
   * error (the server's per-address limit of 1 refuses while another session
   * of this address is attached), and returns that connection.
   */
  const initializeOnceFree = (url: string, params: Record<string, unknown>) =>
    Effect.gen(function*() {
      while (true) {
        const client = yield* connect(url)
        yield* client.send("initialize", { clientName: "wire-test", ...params }, { id: "init" })
        const answer = yield* client.reply("init")
        if (answer.error === undefined) return { client, answer }
        assert.strictEqual(answer.error.code, ErrorCode.limitExceeded, JSON.stringify(answer.error))
        yield* client.close
        yield* Effect.sleep(20)
      }
    })

  it.live("sends a resumed session's notifications only after the initialize answer", () =>
    Effect.gen(function*() {
      const marker = mkdtempSync(join(NodeOs.tmpdir(), "effect-exec-resume-"))
      for (let round = 0; round < 3; round++) {
        const executor = yield* LocalExecutor.make()
        const { url } = yield* Effect.provideService(
          WebSocketListener.listen({ maxSessionsPerAddress: 1 }),
          Executor,
          executor
        )
        const first = yield* connect(url)
        const { sessionId } = yield* handshake(first)
        // events pile up while nobody is attached: output, exit and close; the command ends only once told
        const go = join(marker, `go-${round}`)
        const script = `while [ ! -e "$1" ]; do sleep 0.01; done; echo bye; exit 4`
        yield* first.call("process/start", startParams("away", ["sh", "-c", script, "sh", go]))
        yield* first.close
        // the session is detached once this address may attach another one
        const { client: probe } = yield* initializeOnceFree(url, {})
        yield* probe.close
        writeFileSync(go, "")
        // the process ends while detached: wait for its close on the server's own executor
        yield* Stream.runDrain(executor.events(`${sessionId}/away`))

        const { answer, client: second } = yield* initializeOnceFree(url, { resumeSessionId: sessionId })
        assert.strictEqual(answer.result?.sessionId, sessionId)
        yield* second.notification("process/closed", "away")
        const frames = second.received.map((received) => received.frame)
        assert.strictEqual(frames[0]?.id, "init", `first frame: ${JSON.stringify(frames[0])}`)
        // output produced while nobody was attached is not queued (as with Codex): the client reads it
        assert.deepStrictEqual(frames.slice(1).map((frame) => frame.method), ["process/exited", "process/closed"])
        yield* second.notify("initialized", {})
        assert.strictEqual((yield* readAll(second, "away")).text, "bye\n")
      }
      rmSync(marker, { recursive: true, force: true })
    }))
})
