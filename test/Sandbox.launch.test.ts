/**
 * What runs on the host when a sandbox starts, and what a start holds there:
 * a client's environment reaches the command inside and nothing outside
 * (no dynamic loader, shell or interpreter on the host sees `LD_*`,
 * `BASH_ENV`, `SHELLOPTS`/`PS4`, `PERL5OPT`; no value shows in a command
 * line), a bubblewrap that cannot take the environment that way is not used,
 * a start stuck in its preparation can be interrupted, a clean stop removes
 * the placeholders of its masks, hidden paths stay hidden whatever a rule
 * below them says, and a command is found by the same rule whether it runs on
 * pipes, in a sandbox or on a terminal. Real processes, real bubblewrap;
 * policies that make nothing under /tmp writable (Codex's sandboxes in
 * another file mask /tmp/.git and the like).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as NodeFs from "node:fs"
import { join } from "node:path"
import * as Exec from "../src/Executor.ts"
import { registryDirectory } from "../src/internal/sandbox/mountPoints.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import type * as Protocol from "../src/Protocol.ts"
import * as Sandbox from "../src/Sandbox.ts"
import { bwrapPath } from "./support/bwrap.ts"
import { awaitDeath, freshId, readUntilClosed } from "./support/processes.ts"
import { entry, restricted, scratchDir } from "./support/sandbox.ts"

/** A scratch directory (outside /tmp) for the test's scope. */
const scratch = (label: string) =>
  Effect.acquireRelease(Effect.sync(() => scratchDir(label)), (dir) => Effect.sync(() => dir[Symbol.dispose]()))

/** A local executor with the tests' bubblewrap (or `bwrap`), in the test's scope, provided to `body`. */
const withExecutor = <A, E>(
  body: Effect.Effect<A, E, Exec.Executor>,
  sandbox: LocalExecutor.SandboxOptions = { bwrap: bwrapPath }
) => Effect.flatMap(LocalExecutor.make({ sandbox }), (executor) => Effect.provideService(body, Exec.Executor, executor))

/** A policy in Codex's shape: the root readable, `writable` writable, nothing else. */
const readAndWrite = (writable: ReadonlyArray<string>, cwd: string): Protocol.SandboxContext =>
  Sandbox.toWire(
    Sandbox.Policy.Custom({
      context: restricted([entry("root", "read"), ...writable.map((path) => entry(path, "write"))])
    }),
    cwd
  )!

const reasonOf = <A>(exit: Exit.Exit<A, Exec.ExecutorError>) =>
  Exit.isFailure(exit)
    ? exit.cause.reasons.flatMap((reason) => (reason._tag === "Fail" ? [reason.error.reason] : []))[0]
    : undefined

/** Whether any process's command line holds `text`. */
const anyCommandLineHolds = (text: string): boolean =>
  NodeFs.readdirSync("/proc").some((entry) => {
    if (!/^\d+$/.test(entry)) return false
    try {
      return NodeFs.readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)
    } catch {
      return false
    }
  })

describe("a sandbox's launch on the host", () => {
  it.live(
    "the command's environment reaches it inside, and no program on the host, nor any command line",
    () =>
      Effect.gen(function*() {
        const dir = (yield* scratch("hostile-env")).path
        const ran = (name: string) => join(dir, name)
        NodeFs.writeFileSync(join(dir, "bashenv.sh"), `touch ${ran("bash-env-ran")}\n`)
        NodeFs.mkdirSync(join(dir, "perl"))
        NodeFs.writeFileSync(join(dir, "perl", "Marker.pm"), `open(my $f, ">", "${ran("perl5opt-ran")}"); 1;\n`)
        const mark = `value-${process.pid}-${Date.now()}`
        const hostile = {
          PATH: "/usr/bin:/bin",
          MARK: mark,
          // the dynamic loader of a program on the host would write here (a client's LD_PRELOAD would run code)
          LD_DEBUG: "libs",
          LD_DEBUG_OUTPUT: ran("ld-debug"),
          BASH_ENV: join(dir, "bashenv.sh"),
          ENV: join(dir, "bashenv.sh"),
          SHELLOPTS: "xtrace",
          PS4: `$(touch ${ran("ps4-ran")})`,
          PERL5LIB: join(dir, "perl"),
          PERL5OPT: "-MMarker"
        }
        yield* withExecutor(Effect.gen(function*() {
          const executor = yield* Exec.Executor
          // a process on a terminal leaves its terminal's controlling side open across exec: the closer must run
          yield* executor.start({
            processId: freshId("tty"),
            argv: ["sleep", "30"],
            cwd: dir,
            env: { PATH: "/usr/bin:/bin" },
            tty: true
          })
          const processId = freshId("hostile-env")
          const started = yield* executor.start({
            processId,
            argv: ["sh", "-c", "echo \"mark=$MARK\"; exec sleep 30"],
            cwd: dir,
            env: hostile,
            tty: false,
            sandbox: Sandbox.toWire(Sandbox.readOnly(), dir)
          })
          assert.strictEqual(started.sandboxType, "linuxSeccomp")
          let seen = ""
          let afterSeq = 0
          while (!seen.includes(`mark=${mark}\n`)) {
            const result = yield* executor.read({ processId, afterSeq, waitMs: 1_000 })
            for (const chunk of result.chunks) seen += new TextDecoder().decode(chunk.chunk)
            afterSeq = result.nextSeq - 1
            assert.isFalse(result.closed, `closed early: ${seen}`)
          }
          assert.isFalse(anyCommandLineHolds(mark), "the value is in no process's command line")
          yield* executor.terminate(processId)
        }))
        assert.deepStrictEqual(NodeFs.readdirSync(dir).sort(), ["bashenv.sh", "perl"], "nothing ran on the host")
      }),
    { timeout: 30_000 }
  )

  it.live("an environment bubblewrap cannot set is refused; so is one past its argument limit", () =>
    withExecutor(Effect.gen(function*() {
      const executor = yield* Exec.Executor
      const sandboxed = (env: Record<string, string>) =>
        Effect.exit(executor.start({
          processId: freshId("env"),
          argv: ["true"],
          cwd: "/",
          env,
          tty: false,
          sandbox: Sandbox.toWire(Sandbox.readOnly(), "/")
        }))
      const named = reasonOf(yield* sandboxed({ PATH: "/usr/bin:/bin", "A=B": "x" }))
      assert.strictEqual(named?._tag, "InvalidRequest")
      const many = Object.fromEntries(Array.from({ length: 3_100 }, (_, i) => [`V${i}`, "x"]))
      const large = reasonOf(yield* sandboxed({ PATH: "/usr/bin:/bin", ...many }))
      assert.strictEqual(large?._tag, "SandboxRefused")
      assert.include(large?.message ?? "", "bubblewrap takes at most 9000")
    })))

  it.live("a bubblewrap that does not take its arguments and environment from a descriptor is not used", () =>
    Effect.gen(function*() {
      const dir = (yield* scratch("old-bwrap")).path
      const old = join(dir, "bwrap")
      // what a bubblewrap before --args and --clearenv says
      NodeFs.writeFileSync(
        old,
        `#!/bin/sh\nfor a in "$@"; do case $a in --args|--clearenv) echo "bwrap: Unknown option $a" >&2; exit 1;; ` +
          `esac; done\nexec ${bwrapPath} "$@"\n`,
        { mode: 0o755 }
      )
      yield* withExecutor(
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const support = yield* executor.sandboxSupport
          assert.isFalse(support.available)
          assert.include(support.available ? "" : support.reason, "Unknown option --args")
          const refused = reasonOf(
            yield* Effect.exit(executor.start({
              processId: freshId("old"),
              argv: ["true"],
              cwd: dir,
              env: {},
              tty: false,
              sandbox: Sandbox.toWire(Sandbox.readOnly(), dir)
            }))
          )
          assert.strictEqual(refused?._tag, "SandboxRefused")
        }),
        { bwrap: old }
      )
    }))
})

describe("a sandboxed start's preparation and what it holds", () => {
  it.effect("a start stuck in its preparation (bubblewrap's probe) is interrupted, and leaves nothing", () =>
    Effect.gen(function*() {
      const dir = (yield* scratch("stuck")).path
      const hanging = join(dir, "bwrap")
      NodeFs.writeFileSync(hanging, `#!/bin/sh\necho $$ > ${join(dir, "pid")}\nexec sleep 600\n`, { mode: 0o755 })
      yield* withExecutor(
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const request = {
            processId: "stuck",
            argv: ["true"],
            cwd: dir,
            env: {},
            tty: false
          }
          // the probe's own timeout is on the test clock: only an interrupt ends this start
          const fiber = yield* Effect.forkChild(
            executor.start({ ...request, sandbox: Sandbox.toWire(Sandbox.readOnly(), dir) })
          )
          yield* TestClock.withLive(Effect.gen(function*() {
            while (!NodeFs.existsSync(join(dir, "pid"))) yield* Effect.sleep("10 millis")
          }))
          yield* Fiber.interrupt(fiber)
          const probe = Number(NodeFs.readFileSync(join(dir, "pid"), "utf8"))
          yield* TestClock.withLive(awaitDeath(probe))
          // the id was given back
          const started = yield* executor.start(request)
          assert.strictEqual(started.sandboxType, "none")
        }),
        { bwrap: hanging }
      )
    }))

  it.live("closing the executor removes the placeholders of a running sandbox's masks", () =>
    Effect.gen(function*() {
      const dir = (yield* scratch("stop")).path
      const ws = join(dir, "ws")
      NodeFs.mkdirSync(ws)
      const scope = yield* Scope.make()
      const executor = yield* Scope.provide(LocalExecutor.make({ sandbox: { bwrap: bwrapPath } }), scope)
      const processId = freshId("masked")
      yield* executor.start({
        processId,
        argv: ["sleep", "30"],
        cwd: ws,
        env: {},
        tty: false,
        sandbox: readAndWrite([ws], ws)
      })
      // a missing .git, .agents, .codex or .aws in a writable root is masked: its mount point is made on the host
      assert.includeMembers(NodeFs.readdirSync(ws), [".agents", ".aws", ".codex", ".git"])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(NodeFs.readdirSync(ws), [], "no placeholder left in the workspace")
    }))

  it.live("the sandboxes' registry stays hidden from a command whatever a rule below it grants", () =>
    Effect.gen(function*() {
      const registry = registryDirectory()
      NodeFs.mkdirSync(registry, { recursive: true, mode: 0o700 })
      const inside = yield* Effect.acquireRelease(
        Effect.sync(() => NodeFs.mkdtempSync(join(registry, "test-hidden-"))),
        (path) => Effect.sync(() => NodeFs.rmSync(path, { recursive: true, force: true }))
      )
      yield* withExecutor(Effect.gen(function*() {
        const executor = yield* Exec.Executor
        const processId = freshId("hidden")
        yield* executor.start({
          processId,
          argv: ["sh", "-c", `touch ${inside}/f; ls ${registry}`],
          cwd: "/",
          env: { PATH: "/usr/bin:/bin" },
          tty: false,
          sandbox: readAndWrite([inside], "/")
        })
        const { last, stderr } = yield* readUntilClosed(processId)
        assert.notStrictEqual(last.exitCode, 0, stderr)
      }))
      assert.isFalse(NodeFs.existsSync(join(inside, "f")))
    }))
})

describe("finding a command", () => {
  /** How a start of `argv` in `cwd` with `env` ends: its output, or why it was refused. */
  const outcome = (
    argv: ReadonlyArray<string>,
    cwd: string,
    env: Record<string, string>,
    mode: "pipes" | "sandbox" | "terminal"
  ) =>
    Effect.gen(function*() {
      const executor = yield* Exec.Executor
      const processId = freshId(mode)
      const exit = yield* Effect.exit(executor.start({
        processId,
        argv,
        cwd,
        env,
        tty: mode === "terminal",
        ...(mode === "sandbox" ? { sandbox: Sandbox.toWire(Sandbox.readOnly(), cwd) } : {})
      }))
      if (Exit.isFailure(exit)) {
        const reason = reasonOf(exit)
        return reason?._tag === "SpawnFailed" ? reason.kind : reason?._tag
      }
      const { pty, stdout } = yield* readUntilClosed(processId)
      return (stdout + pty).trim()
    })

  it.live(
    "pipes, a sandbox and a terminal find the same program by the same rule, or fail alike",
    () =>
      Effect.gen(function*() {
        const dir = (yield* scratch("which")).path
        NodeFs.writeFileSync(join(dir, "tool"), "#!/bin/sh\necho tool ran\n", { mode: 0o755 })
        NodeFs.writeFileSync(join(dir, "plain"), "#!/bin/sh\necho plain ran\n", { mode: 0o644 })
        NodeFs.mkdirSync(join(dir, "sub", "tool"), { recursive: true })
        const cases: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string>, string]> = [
          // an empty PATH entry is the working directory
          [["tool"], { PATH: ":/usr/bin:/bin" }, "tool ran"],
          [["tool"], { PATH: "" }, "tool ran"],
          // a directory of that name is passed over
          [["tool"], { PATH: `${join(dir, "sub")}:${dir}` }, "tool ran"],
          // without PATH: /usr/bin:/bin
          [["sh", "-c", "echo default"], {}, "default"],
          // a file that may not be executed: permission denied, wherever it is found
          [["plain"], { PATH: dir }, "PermissionDenied"],
          [["./plain"], { PATH: "/usr/bin:/bin" }, "PermissionDenied"],
          [["no-such-tool"], { PATH: dir }, "CommandNotFound"],
          [["./sub/tool"], {}, "PermissionDenied"],
          // found on PATH, and its argv[0] stays what the request said
          [["sh", "-c", "head -c 2 /proc/$$/cmdline"], { PATH: "/usr/bin:/bin" }, "sh"]
        ]
        yield* withExecutor(Effect.gen(function*() {
          for (const [argv, env, expected] of cases) {
            for (const mode of ["pipes", "sandbox", "terminal"] as const) {
              assert.strictEqual(
                yield* outcome(argv, dir, env, mode),
                expected,
                `${mode}: ${argv.join(" ")} ${env.PATH}`
              )
            }
          }
        }))
      }),
    { timeout: 60_000 }
  )
})
