/**
 * The sandbox conformance suite: what a `process/start` with a `sandbox`
 * policy may and may not do, and what the executor answers. Every executor
 * runs it unchanged: the local one, a remote one served by our exec-server,
 * and the real Codex exec-server (whose own sandbox is the reference).
 *
 * Workspaces live under `.cache/sandbox-tests` (or ~/.cache for a clone under /tmp), not under /tmp: the
 * workspace-write preset makes /tmp writable, which would prove nothing.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { join } from "node:path"
import * as Exec from "../../src/Executor.ts"
import { registryDirectory } from "../../src/internal/sandbox/mountPoints.ts"
import type * as Protocol from "../../src/Protocol.ts"
import * as Sandbox from "../../src/Sandbox.ts"
import { awaitDeath, freshId, pidsOf, readUntilClosed, start } from "./processes.ts"
import { scratchDir } from "./sandbox.ts"

export interface SandboxContractOptions {
  /**
   * Ours: refuses what it cannot enforce as written (a deny glob, which
   * Codex's sandbox expands) and cleans up the mount points it created.
   */
  readonly ours: boolean
}

const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin" }

/** A workspace with a `.git` directory, and a sibling directory no policy lists. */
const workspace = () => {
  const dir = scratchDir("sandbox")
  const root = join(dir.path, "ws")
  const outside = join(dir.path, "outside")
  mkdirSync(join(root, ".git"), { recursive: true })
  writeFileSync(join(root, ".git", "HEAD"), "ref: refs/heads/main\n")
  mkdirSync(outside)
  return { root, outside, [Symbol.dispose]: dir[Symbol.dispose] }
}

/** Runs `script` with `sh -c` in `cwd` under `policy` (a Sandbox policy), until closed. */
const sandboxed = (cwd: string, policy: Sandbox.Policy, script: string) =>
  Effect.gen(function*() {
    const processId = freshId("sbx")
    const started = yield* start(processId, ["sh", "-c", script], {
      cwd,
      env: environment,
      sandbox: Sandbox.toWire(policy, cwd)
    })
    const seen = yield* readUntilClosed(processId)
    return { ...seen, sandboxType: started.sandboxType, exitCode: seen.last.exitCode, denied: seen.last.sandboxDenied }
  })

/** A restricted policy of `entries`, the network restricted, `root` its one workspace root. */
const custom = (root: string, entries: ReadonlyArray<Protocol.SandboxEntry>): Sandbox.Policy =>
  Sandbox.custom({
    permissions: { type: "managed", file_system: { type: "restricted", entries }, network: "restricted" },
    cwd: root,
    workspaceRoots: [root],
    windowsSandboxLevel: "disabled"
  })

/** A TCP server on the host's loopback that greets every connection, for the current scope. */
const loopbackServer = Effect.acquireRelease(
  Effect.callback<Net.Server>((resume) => {
    const server = Net.createServer((socket) => socket.end("hello from the host\n"))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

const connectScript = (port: number) =>
  `python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", ${port}), timeout=5); ` +
  `print(s.recv(64).decode().strip())'`

const reasonOf = <A>(exit: Exit.Exit<A, Exec.ExecutorError>) =>
  Exit.isFailure(exit)
    ? exit.cause.reasons.flatMap((reason) => (reason._tag === "Fail" ? [reason.error.reason] : []))[0]
    : undefined

/** Registers the sandbox suite for the executor provided by `executorLayer`. */
export const sandboxSuite = (
  name: string,
  executorLayer: Layer.Layer<Exec.Executor, unknown>,
  options: SandboxContractOptions
) =>
  describe(name, () => {
    layer(executorLayer, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("workspace-write: writes in the workspace; not outside it, not into .git", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const policy = Sandbox.workspaceWrite()
          const inside = yield* sandboxed(ws.root, policy, "printf ok > inside.txt && cat inside.txt")
          assert.strictEqual(inside.sandboxType, "linuxSeccomp")
          assert.deepStrictEqual([inside.exitCode, inside.denied, inside.stdout], [0, false, "ok"])
          assert.strictEqual(readFileSync(join(ws.root, "inside.txt"), "utf8"), "ok")

          const outside = yield* sandboxed(ws.root, policy, `printf x > ${ws.outside}/x`)
          assert.notStrictEqual(outside.exitCode, 0)
          assert.isTrue(outside.denied)
          assert.match(outside.stderr, /Read-only file system/)
          assert.isFalse(existsSync(join(ws.outside, "x")), "nothing written outside the workspace")

          const git = yield* sandboxed(ws.root, policy, "printf x > .git/config")
          assert.notStrictEqual(git.exitCode, 0)
          assert.isTrue(git.denied)
          assert.isFalse(existsSync(join(ws.root, ".git", "config")))
          const head = yield* sandboxed(ws.root, policy, "cat .git/HEAD")
          assert.deepStrictEqual([head.exitCode, head.stdout], [0, "ref: refs/heads/main\n"], ".git stays readable")
        }))

      it.effect("workspace-write: a protected name that does not exist cannot be created", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const seen = yield* sandboxed(ws.root, Sandbox.workspaceWrite(), "mkdir -p .codex/skills && echo made")
          assert.notStrictEqual(seen.exitCode, 0)
          assert.notInclude(seen.stdout, "made")
          assert.isFalse(existsSync(join(ws.root, ".codex", "skills")))
        }))

      it.effect("keeps .git and the other protected names read-only even when the policy does not list them", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const policy = custom(ws.root, [
            { path: { type: "special", value: { kind: "root" } }, access: "read" },
            { path: { type: "special", value: { kind: "project_roots" } }, access: "write" }
          ])
          const git = yield* sandboxed(ws.root, policy, "printf x > .git/config")
          assert.isTrue(git.denied)
          assert.isFalse(existsSync(join(ws.root, ".git", "config")))
          const agents = yield* sandboxed(ws.root, policy, "mkdir -p .agents/skills")
          assert.notStrictEqual(agents.exitCode, 0)
          assert.isFalse(existsSync(join(ws.root, ".agents", "skills")))
          const other = yield* sandboxed(ws.root, policy, "mkdir -p notes && printf ok > notes/a")
          assert.strictEqual(other.exitCode, 0)
        }))

      it.effect("cannot lift its own confinement: no remount, no way out through a new user namespace", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const target = `${ws.outside}/x`
          const script = `mount -o remount,rw,bind / ; printf a > ${target}; ` +
            `unshare -Urm sh -c 'mount -o remount,rw,bind / ; printf b > ${target}'; ` +
            `printf c > ${target}; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status`
          const seen = yield* sandboxed(ws.root, Sandbox.workspaceWrite(), script)
          assert.isFalse(existsSync(target), "nothing written outside the workspace")
          assert.match(seen.stdout, /CapEff:\s+0+\n/)
          assert.match(seen.stdout, /NoNewPrivs:\s+1/)
        }))

      it.effect("/tmp is writable under workspace-write, not under read-only; read-only writes nowhere", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const file = `/tmp/effect-exec-sandbox-${freshId("tmp")}`
          const writable = yield* sandboxed(ws.root, Sandbox.workspaceWrite(), `printf t > ${file}`)
          assert.deepStrictEqual([writable.exitCode, writable.denied], [0, false])
          assert.isTrue(existsSync(file))
          rmSync(file, { force: true })

          const readOnly = yield* sandboxed(ws.root, Sandbox.readOnly(), `printf t > ${file}`)
          assert.isTrue(readOnly.denied)
          assert.isFalse(existsSync(file))
          const workspaceWrite = yield* sandboxed(ws.root, Sandbox.readOnly(), "printf t > inside.txt")
          assert.isTrue(workspaceWrite.denied)
          assert.isFalse(existsSync(join(ws.root, "inside.txt")))
          const reading = yield* sandboxed(ws.root, Sandbox.readOnly(), "cat .git/HEAD")
          assert.deepStrictEqual([reading.exitCode, reading.denied], [0, false])
        }))

      it.effect("deny hides a file and a directory, even inside the writable workspace", () =>
        Effect.gen(function*() {
          using ws = workspace()
          writeFileSync(join(ws.root, "secret.txt"), "top secret\n")
          mkdirSync(join(ws.root, "private"))
          writeFileSync(join(ws.root, "private", "key"), "key\n")
          const policy = custom(ws.root, [
            { path: { type: "special", value: { kind: "root" } }, access: "read" },
            { path: { type: "special", value: { kind: "project_roots" } }, access: "write" },
            { path: { type: "path", path: join(ws.root, "secret.txt") }, access: "deny" },
            { path: { type: "path", path: join(ws.root, "private") }, access: "deny" }
          ])
          const file = yield* sandboxed(ws.root, policy, "cat secret.txt")
          assert.notStrictEqual(file.exitCode, 0)
          assert.match(file.stderr, /Permission denied/)
          assert.notInclude(file.stdout, "secret")
          const directory = yield* sandboxed(ws.root, policy, "cat private/key")
          assert.notStrictEqual(directory.exitCode, 0)
          assert.notInclude(directory.stdout, "key")
          const overwrite = yield* sandboxed(ws.root, policy, "printf gone > secret.txt")
          assert.notStrictEqual(overwrite.exitCode, 0)
          assert.strictEqual(readFileSync(join(ws.root, "secret.txt"), "utf8"), "top secret\n")
          const elsewhere = yield* sandboxed(ws.root, policy, "printf ok > other.txt")
          assert.strictEqual(elsewhere.exitCode, 0)
        }))

      it.effect("minimal: the system's read set and the workspace, nothing else", () =>
        Effect.gen(function*() {
          using ws = workspace()
          writeFileSync(join(ws.outside, "notes"), "elsewhere\n")
          const policy = custom(ws.root, [
            { path: { type: "special", value: { kind: "minimal" } }, access: "read" },
            { path: { type: "special", value: { kind: "project_roots" } }, access: "write" }
          ])
          const seen = yield* sandboxed(
            ws.root,
            policy,
            `cat /etc/passwd > /dev/null && echo etc; cat ${ws.outside}/notes; printf ok > mine && cat mine`
          )
          assert.strictEqual(seen.stdout, "etc\nok")
          assert.match(seen.stderr, /No such file or directory/)
          assert.isFalse(existsSync(join(ws.root, "..", "..", "..", "mine")))
        }))

      it.effect("network restricted: a loopback server on the host is unreachable", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const port = yield* loopbackServer
          const seen = yield* sandboxed(ws.root, Sandbox.workspaceWrite(), connectScript(port))
          assert.notStrictEqual(seen.exitCode, 0)
          assert.isTrue(seen.denied)
          assert.match(seen.stderr, /Operation not permitted/)
          assert.notInclude(seen.stdout, "hello")
        }))

      it.effect("network enabled: the same server answers", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const port = yield* loopbackServer
          const seen = yield* sandboxed(ws.root, Sandbox.workspaceWrite({ network: "enabled" }), connectScript(port))
          assert.deepStrictEqual([seen.exitCode, seen.denied, seen.stdout], [0, false, "hello from the host\n"])
          // VM sockets stay closed (they reach host services past the file system sandbox): EPERM, not EAFNOSUPPORT
          const vsock = yield* sandboxed(
            ws.root,
            Sandbox.workspaceWrite({ network: "enabled" }),
            `python3 -c 'import socket\ntry: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)\nexcept OSError as e: print(e.errno)'`
          )
          assert.strictEqual(vsock.stdout, "1\n")
        }))

      it.effect("sandboxDenied follows Codex's rule: exit code, then what the output says", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const denied = (script: string) =>
            Effect.map(sandboxed(ws.root, Sandbox.workspaceWrite(), script), (seen) => [seen.exitCode, seen.denied])
          assert.deepStrictEqual(yield* denied("exit 3"), [3, false])
          assert.deepStrictEqual(yield* denied("echo READ-ONLY FILE SYSTEM >&2; exit 5"), [5, true])
          assert.deepStrictEqual(yield* denied("echo Permission denied"), [0, false])
          assert.deepStrictEqual(yield* denied("no-such-command-here"), [127, false])
          assert.deepStrictEqual(yield* denied("exit 159"), [159, true])
        }))

      it.effect("terminate kills the whole sandbox, background children too", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const executor = yield* Exec.Executor
          const processId = freshId("kill")
          const marker = `${300 + Math.floor(Math.random() * 1000)}.${process.pid}`
          const script = `sleep ${marker} & sleep ${marker}1; echo unreachable`
          // read-only: no mask to create, so a killed sandbox leaves nothing behind (Codex's leaves its masks)
          yield* start(processId, ["sh", "-c", script], {
            cwd: ws.root,
            env: environment,
            sandbox: Sandbox.toWire(Sandbox.readOnly(), ws.root)
          })
          let sleepers: Array<number> = []
          // up to 10 s: two sandboxed starts on a busy machine
          for (let tries = 0; tries < 500 && sleepers.length < 2; tries++) {
            yield* Effect.sleep("20 millis")
            sleepers = [...pidsOf(["sleep", marker]), ...pidsOf(["sleep", `${marker}1`])]
          }
          assert.strictEqual(sleepers.length, 2, "both sleeps run")
          assert.isTrue((yield* executor.terminate(processId)).running)
          const seen = yield* readUntilClosed(processId)
          assert.strictEqual(seen.last.exitCode, 137)
          assert.isFalse(seen.last.sandboxDenied)
          for (const pid of sleepers) yield* awaitDeath(pid)
        }))

      it.effect("no sandbox, or a policy that confines nothing: sandboxType none", () =>
        Effect.gen(function*() {
          using ws = workspace()
          const none = yield* sandboxed(ws.root, Sandbox.fullAccess, `printf x > ${ws.outside}/x`)
          assert.deepStrictEqual([none.sandboxType ?? "none", none.exitCode, none.denied], ["none", 0, false])
          const disabled = yield* start(freshId("disabled"), ["true"], {
            cwd: ws.root,
            env: environment,
            sandbox: { permissions: { type: "disabled" }, windowsSandboxLevel: "disabled" }
          })
          // Codex answers linuxSeccomp here while it applies nothing; we answer what happens
          if (options.ours) assert.strictEqual(disabled.sandboxType, "none")
        }))

      if (options.ours) {
        it.effect("refuses, with a typed reason, a policy it cannot enforce as written", () =>
          Effect.gen(function*() {
            using ws = workspace()
            const denyGlob: Protocol.SandboxContext = {
              permissions: {
                type: "managed",
                file_system: {
                  type: "restricted",
                  entries: [
                    { path: { type: "special", value: { kind: "root" } }, access: "read" },
                    { path: { type: "glob_pattern", pattern: "**/*.env" }, access: "deny" }
                  ]
                },
                network: "restricted"
              },
              windowsSandboxLevel: "disabled"
            }
            const exit = yield* Effect.exit(
              start(freshId("glob"), ["true"], { cwd: ws.root, env: environment, sandbox: denyGlob })
            )
            const reason = reasonOf(exit)
            assert.strictEqual(reason?._tag, "SandboxRefused")
            assert.match(reason!.message, /glob_pattern/)
            const managed = yield* Effect.exit(
              start(freshId("proxy"), ["true"], {
                cwd: ws.root,
                env: environment,
                sandbox: Sandbox.toWire(Sandbox.readOnly(), ws.root),
                enforceManagedNetwork: true
              })
            )
            assert.match(reasonOf(managed)?.message ?? "", /managed network/)
            const arg0 = yield* Effect.exit(
              start(freshId("arg0"), ["true"], {
                cwd: ws.root,
                env: environment,
                sandbox: Sandbox.toWire(Sandbox.readOnly(), ws.root),
                arg0: "renamed"
              })
            )
            assert.match(reasonOf(arg0)?.message ?? "", /arg0 under a sandbox/)
          }))

        it.effect("removes the mount points it created once the sandbox is gone", () =>
          Effect.gen(function*() {
            using ws = workspace()
            const seen = yield* sandboxed(ws.root, Sandbox.workspaceWrite(), "ls -a")
            assert.include(seen.stdout, ".codex", "the missing protected names are masked")
            assert.deepStrictEqual(readdirSync(ws.root), [".git"], "and gone from the host afterwards")
            // the registry that counts them is out of the sandbox's reach
            const registry = yield* sandboxed(ws.root, Sandbox.workspaceWrite(), `ls ${registryDirectory()}`)
            assert.isTrue(registry.denied)
            assert.match(registry.stderr, /Permission denied/)
          }))
      }
    })
  })
