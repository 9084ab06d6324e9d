/**
 * What a process confined by the bubblewrap command line `bwrapArgs` builds
 * can and cannot do: a policy resolved against real directories, its mount
 * points claimed, its invocation run by the tests' bubblewrap directly (no
 * executor, no descriptor closer), a shell script inside. Without a seccomp
 * program unless a test names one, so that what keeps the network closed is
 * the namespace the command line asks for, not the filter. Policies that make
 * nothing under /tmp writable (Codex's sandboxes in another file mask
 * /tmp/.git and the like); a private registry of mount points per test.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as NodeChildProcess from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { feed, hostEnvironment } from "../src/internal/sandbox/bwrap.ts"
import {
  type BwrapInvocation,
  confinedInvocation,
  describeMounts,
  type InvocationOptions,
  mountLayout,
  networkOnlyInvocation
} from "../src/internal/sandbox/bwrapArgs.ts"
import { MountPoints } from "../src/internal/sandbox/mountPoints.ts"
import { resolvePolicy } from "../src/internal/sandbox/policy.ts"
import { networkFilter } from "../src/internal/sandbox/seccomp.ts"
import type * as Protocol from "../src/Protocol.ts"
import { bwrapPath } from "./support/bwrap.ts"
import { awaitDeath, pidsOf } from "./support/processes.ts"
import { entry, scratchDir } from "./support/sandbox.ts"

interface Seen {
  readonly exitCode: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs bubblewrap as `invocation` says, then `sh -c script` inside; its exit and output. */
const runBwrap = (invocation: BwrapInvocation, script: string, argv0 = "/bin/sh") =>
  Effect.callback<Seen>((resume) => {
    const child = NodeChildProcess.spawn(bwrapPath, [...invocation.args, "--", argv0, "-c", script], {
      env: hostEnvironment,
      stdio: ["ignore", "pipe", "pipe", ...invocation.inputs.map(() => "pipe" as const)]
    })
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    child.once("spawn", () => feed(child, invocation.inputs))
    child.once("close", (exitCode) => resume(Effect.succeed({ exitCode, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** The arguments bubblewrap reads from descriptor 3 (NUL-terminated). */
const argumentsOf = (invocation: BwrapInvocation): ReadonlyArray<string> =>
  Buffer.from(invocation.inputs[0]!).toString("utf8").split("\0").slice(0, -1)

/** A scratch directory with a workspace (its `.git` holding `HEAD`), a sibling outside it, and a private registry. */
const setup = (label: string) =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => scratchDir(label)),
      (dir) => Effect.sync(() => dir[Symbol.dispose]())
    )
    const root = join(dir.path, "ws")
    const outside = join(dir.path, "outside")
    mkdirSync(join(root, ".git"), { recursive: true })
    writeFileSync(join(root, ".git", "HEAD"), "ref: refs/heads/main\n")
    mkdirSync(outside)
    writeFileSync(join(outside, "notes"), "outside notes\n")
    const mountPoints = new MountPoints(join(dir.path, "registry"))
    yield* mountPoints.prepare()
    return { base: dir.path, root, outside, mountPoints, cwd: root }
  })

interface Confine {
  readonly cwd: string
  readonly mountPoints: MountPoints
  readonly network?: Protocol.SandboxNetwork
  readonly environment?: Readonly<Record<string, string>>
  readonly seccomp?: Uint8Array
  readonly argv0?: string
  readonly hidden?: ReadonlyArray<string>
}

/** The invocation for `entries` (or, with `undefined`, the whole disk writable), its mount points held until the scope ends. */
const invocationFor = (entries: ReadonlyArray<Protocol.SandboxEntry> | undefined, options: Confine) =>
  Effect.gen(function*() {
    const context: Protocol.SandboxContext = {
      permissions: {
        type: "managed",
        network: options.network ?? "restricted",
        file_system: entries === undefined ? { type: "unrestricted" } : { type: "restricted", entries }
      },
      workspaceRoots: [options.cwd],
      windowsSandboxLevel: "disabled"
    }
    const hidden = options.hidden ?? [options.mountPoints.directory]
    const policy = yield* resolvePolicy(context, { tmpdir: undefined, hidden })
    const invocationOptions: InvocationOptions = {
      cwd: options.cwd,
      environment: options.environment ?? { PATH: "/usr/bin:/bin" },
      seccomp: options.seccomp,
      hidden,
      argv0: options.argv0
    }
    if (policy.confinement !== "full") return networkOnlyInvocation(invocationOptions)
    const layout = yield* mountLayout(policy)
    const releases: Array<() => void> = []
    yield* Effect.acquireRelease(
      options.mountPoints.claim(layout.placeholders, (release) => releases.push(release)),
      () => Effect.sync(() => releases.forEach((release) => release()))
    )
    return yield* confinedInvocation(policy, yield* describeMounts(layout), invocationOptions)
  })

/** Runs `script` confined by `entries`. */
const confined = (entries: ReadonlyArray<Protocol.SandboxEntry> | undefined, options: Confine, script: string) =>
  Effect.scoped(Effect.flatMap(invocationFor(entries, options), (invocation) => runBwrap(invocation, script)))

const root = (access: "read" | "write" | "deny") => entry("root", access)
const projectRoots: Protocol.SandboxPath = { type: "special", value: { kind: "project_roots" } }
const minimal: Protocol.SandboxPath = { type: "special", value: { kind: "minimal" } }

/** This process's namespace of `kind` (`net`, `user`, `ipc`, `pid`). */
const hostNamespace = (kind: string) => readlinkSync(`/proc/self/ns/${kind}`)

describe("a confined process's file system", () => {
  it.live("the root readable: writes in a writable root only, never in .git, outside, or a missing protected name", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-read")
      const seen = yield* confined(
        [root("read"), { path: projectRoots, access: "write" }],
        // a hidden path that sorts after the workspace: the workspace's is the first mount
        { ...dirs, hidden: [join(dirs.base, "zz-hidden")] },
        `printf in > inside.txt && echo inside; printf out > ${dirs.outside}/x || echo outside refused; ` +
          `printf g > .git/config || echo git refused; cat .git/HEAD; mkdir .codex || echo codex refused; ` +
          `cat ${dirs.outside}/notes`
      )
      assert.strictEqual(
        seen.stdout,
        "inside\noutside refused\ngit refused\nref: refs/heads/main\ncodex refused\noutside notes\n"
      )
      assert.strictEqual(readFileSync(join(dirs.root, "inside.txt"), "utf8"), "in")
      assert.isFalse(existsSync(join(dirs.outside, "x")))
      assert.isFalse(existsSync(join(dirs.root, ".git", "config")))
      assert.isFalse(existsSync(join(dirs.root, ".codex")), "the placeholder went with the sandbox")
    }))

  it.live("an empty read-only directory inside a writable root can be listed, not written", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-empty")
      mkdirSync(join(dirs.root, "frozen"))
      const seen = yield* confined(
        [
          root("read"),
          { path: projectRoots, access: "write" },
          entry(join(dirs.root, "frozen"), "read")
        ],
        dirs,
        "ls -a frozen | tr '\\n' ' '; echo; stat -c %a frozen; printf x > frozen/x || echo refused; " +
          "mkdir frozen/d || echo refused"
      )
      // an empty directory of its own, read-only whatever the host's mode (755 here)
      assert.strictEqual(seen.stdout, ". .. \n555\nrefused\nrefused\n")
      assert.isFalse(existsSync(join(dirs.root, "frozen", "x")))
      assert.isFalse(existsSync(join(dirs.root, "frozen", "d")))
    }))

  it.live("a denied file and a denied directory are unreadable and unwritable, inside a writable root too", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-deny")
      writeFileSync(join(dirs.root, "secret.txt"), "top secret\n")
      mkdirSync(join(dirs.root, "private"))
      writeFileSync(join(dirs.root, "private", "key"), "key\n")
      const seen = yield* confined(
        [
          root("read"),
          { path: projectRoots, access: "write" },
          entry(join(dirs.root, "secret.txt"), "deny"),
          entry(join(dirs.root, "private"), "deny"),
          entry(dirs.outside, "deny")
        ],
        dirs,
        "cat secret.txt || echo file refused; printf gone > secret.txt || echo overwrite refused; " +
          "cat private/key || echo directory refused; ls private || echo listing refused; " +
          "printf x > private/new || echo create refused; " +
          `cat ${dirs.outside}/notes || echo outside refused; printf ok > other.txt && echo other`
      )
      assert.strictEqual(
        seen.stdout,
        "file refused\noverwrite refused\ndirectory refused\nlisting refused\ncreate refused\noutside refused\nother\n"
      )
      assert.notInclude(seen.stdout, "secret")
      assert.match(seen.stderr, /Permission denied/)
      assert.strictEqual(readFileSync(join(dirs.root, "secret.txt"), "utf8"), "top secret\n")
      assert.isFalse(existsSync(join(dirs.root, "private", "new")))
    }))

  it.live("the root writable: writes anywhere but under what a rule denies or keeps read-only", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-write")
      const frozen = join(dirs.base, "frozen")
      mkdirSync(join(frozen, "thawed"), { recursive: true })
      writeFileSync(join(frozen, "file"), "frozen\n")
      const seen = yield* confined(
        // the most specific first: the mounts go shortest path first whatever the policy's order
        [entry(join(frozen, "thawed"), "write"), entry(frozen, "read"), entry(dirs.outside, "deny"), root("write")],
        dirs,
        `printf a > ${dirs.base}/anywhere && echo anywhere; cat ${dirs.outside}/notes || echo denied; ` +
          `cat ${frozen}/file; printf b > ${frozen}/file || echo frozen refused; ` +
          `printf c > ${frozen}/thawed/c && echo thawed`
      )
      assert.strictEqual(seen.stdout, "anywhere\ndenied\nfrozen\nfrozen refused\nthawed\n", seen.stderr)
      assert.strictEqual(readFileSync(join(dirs.base, "anywhere"), "utf8"), "a")
      assert.strictEqual(readFileSync(join(frozen, "file"), "utf8"), "frozen\n")
    }))

  it.live("the root not readable: the minimal set through its links, the workspace by its real path, nothing else", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-minimal")
      const link = join(dirs.base, "link-to-ws")
      symlinkSync(dirs.root, link)
      const seen = yield* confined(
        [{ path: minimal, access: "read" }, { path: projectRoots, access: "write" }],
        { ...dirs, cwd: link },
        `pwd; cat /etc/passwd > /dev/null && echo etc; /bin/sh -c 'echo bin'; printf ok > mine && cat mine; echo; ` +
          `cat ${dirs.outside}/notes || echo outside missing; printf r > /rootfile || echo root refused; ` +
          `mkdir /newdir || echo mkdir refused`
      )
      assert.strictEqual(seen.stdout, `${dirs.root}\netc\nbin\nok\noutside missing\nroot refused\nmkdir refused\n`)
      assert.match(seen.stderr, /No such file or directory/)
      assert.strictEqual(readFileSync(join(dirs.root, "mine"), "utf8"), "ok")
    }))

  it.live("a missing path kept from a writable root is masked at its first missing component, nowhere else", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-missing")
      const seen = yield* confined(
        [
          root("read"),
          { path: projectRoots, access: "write" },
          entry(join(dirs.root, "cache/keys"), "deny"),
          entry(join(dirs.root, "cache/certs"), "read"),
          entry(join(dirs.outside, "ghost"), "deny")
        ],
        dirs,
        "mkdir -p cache/keys || echo refused; mkdir -p cache/certs || echo refused; " +
          `test -e ${dirs.outside}/ghost && echo ghost || echo no ghost; mkdir made && echo made`
      )
      assert.strictEqual(seen.stdout, "refused\nrefused\nno ghost\nmade\n")
      assert.isFalse(existsSync(join(dirs.root, "cache")), "the placeholder went with the sandbox")
      assert.isTrue(existsSync(join(dirs.root, "made")))
    }))

  it.live("the registry of mount points is hidden from the command", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-registry")
      writeFileSync(join(dirs.mountPoints.directory, "claim"), "")
      const seen = yield* confined(
        [root("read"), { path: projectRoots, access: "write" }],
        dirs,
        `ls ${dirs.mountPoints.directory} || echo hidden`
      )
      assert.strictEqual(seen.stdout, "hidden\n")
    }))
})

describe("a confined process's namespaces, environment and start", () => {
  it.live("new user, pid, ipc and net namespaces, its own session, no capabilities, no nested user namespace", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-ns")
      const seen = yield* confined(
        [root("read"), { path: projectRoots, access: "write" }],
        dirs,
        "for ns in net user ipc pid; do readlink /proc/self/ns/$ns; done; " +
          "grep -E '^CapEff' /proc/self/status; cut -d' ' -f6 /proc/self/stat; ls /proc | grep -cE '^[0-9]+$'; " +
          "unshare -U true 2>/dev/null && echo nested || echo no nested; tail -n +3 /proc/net/dev | wc -l"
      )
      const lines = seen.stdout.split("\n")
      for (const [index, kind] of ["net", "user", "ipc", "pid"].entries()) {
        assert.notStrictEqual(lines[index], hostNamespace(kind), `a new ${kind} namespace`)
      }
      assert.match(lines[4]!, /^CapEff:\s+0+$/)
      assert.notStrictEqual(lines[5], "0", "a session of its own, inside its pid namespace")
      assert.isBelow(Number(lines[6]), 5, "only the sandbox's processes")
      assert.strictEqual(lines[7], "no nested")
      assert.strictEqual(lines[8], "1", "only the loopback interface")
    }))

  it.live("the network enabled: the host's network namespace, the others new", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-net")
      const seen = yield* confined(
        [root("read"), { path: projectRoots, access: "write" }],
        { ...dirs, network: "enabled" },
        "for ns in net user; do readlink /proc/self/ns/$ns; done"
      )
      assert.strictEqual(seen.stdout.split("\n")[0], hostNamespace("net"))
      assert.notStrictEqual(seen.stdout.split("\n")[1], hostNamespace("user"))
    }))

  it.live("the working directory, exactly the command's environment, the seccomp program, all from descriptors", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-env")
      writeFileSync(join(dirs.root, "secret.txt"), "top secret\n")
      const invocation = yield* invocationFor(
        [root("read"), { path: projectRoots, access: "write" }, entry(join(dirs.root, "secret.txt"), "deny")],
        {
          ...dirs,
          environment: { PATH: "/usr/bin:/bin", GREETING: "hello world", EMPTY: "" },
          seccomp: networkFilter("restricted")!
        }
      )
      const seen = yield* runBwrap(
        invocation,
        "pwd; env | grep -v '^PWD=\\|^SHLVL=\\|^_=' | sort; " +
          "cat secret.txt || echo denied; " +
          `python3 -c 'import socket; socket.socket(socket.AF_INET)' 2>&1 | tail -1`
      )
      assert.strictEqual(
        seen.stdout,
        `${dirs.root}\nEMPTY=\nGREETING=hello world\nPATH=/usr/bin:/bin\ndenied\n` +
          "PermissionError: [Errno 1] Operation not permitted\n",
        seen.stderr
      )
      assert.notInclude(invocation.args.join(" "), "GREETING", "the environment is on a descriptor")
      assert.deepStrictEqual(invocation.args, ["--args", "3"])
      assert.strictEqual(invocation.argumentCount, argumentsOf(invocation).length + 2)
    }))

  it.effect("argv[0] set apart from the program, where asked (the tests' bubblewrap 0.8 has no --argv0)", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-argv0")
      const entries = [root("read"), { path: projectRoots, access: "write" as const }]
      const named = argumentsOf(yield* invocationFor(entries, { ...dirs, argv0: "custom-zero" }))
      assert.deepStrictEqual(named.slice(named.indexOf("--chdir")), [
        "--chdir",
        dirs.root,
        "--argv0",
        "custom-zero",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin"
      ])
      assert.notInclude(argumentsOf(yield* invocationFor(entries, dirs)), "--argv0")
    }))
})

describe("a sandbox's life", () => {
  it.live("ends with the process that started bubblewrap, confined or network-only", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-parent")
      for (const entries of [[root("read"), { path: projectRoots, access: "write" as const }], undefined]) {
        const invocation = yield* Effect.scoped(invocationFor(entries, dirs))
        const sleeper = ["/bin/sleep", `300.${process.pid}${entries === undefined ? 1 : 2}`]
        // a shell starts bubblewrap in the background and waits: the shell is bubblewrap's parent
        const parent = NodeChildProcess.spawn(
          "/bin/sh",
          ["-c", "\"$0\" \"$@\" & wait", bwrapPath, ...invocation.args, "--", ...sleeper],
          {
            env: hostEnvironment,
            stdio: ["ignore", "ignore", "ignore", ...invocation.inputs.map(() => "pipe" as const)]
          }
        )
        parent.once("spawn", () => feed(parent, invocation.inputs))
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => pidsOf(sleeper).forEach((pid) => process.kill(pid, "SIGKILL")))
        )
        let pids = pidsOf(sleeper)
        for (let tries = 0; pids.length === 0 && tries < 500; tries++) {
          yield* Effect.sleep("20 millis")
          pids = pidsOf(sleeper)
        }
        assert.strictEqual(pids.length, 1, "the command runs in its sandbox")
        parent.kill("SIGKILL")
        yield* awaitDeath(pids[0]!)
      }
    }))

  it.live("keeps a working directory reached through a link as given where / is readable ($PWD)", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-cwd")
      const link = join(dirs.base, "link-to-ws")
      symlinkSync(dirs.root, link)
      const seen = yield* confined(
        [root("read"), entry(dirs.root, "write")],
        { ...dirs, cwd: link },
        "echo \"$PWD\"; printf ok > here && cat here"
      )
      assert.strictEqual(seen.stdout, `${link}\nok`)
    }))
})

describe("a network-only sandbox (the whole disk writable)", () => {
  it.live("writes anywhere, sees the host's devices, but not the hidden directories nor the host's network", () =>
    Effect.gen(function*() {
      const dirs = yield* setup("confine-netonly")
      writeFileSync(join(dirs.outside, "secret"), "hidden\n")
      const hostDevices = readdirSync("/dev").length
      const seen = yield* confined(
        undefined,
        { ...dirs, hidden: [dirs.outside] },
        `printf a > ${dirs.base}/anywhere && echo anywhere; cat ${dirs.outside}/secret || echo hidden; ` +
          "readlink /proc/self/ns/net; readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; " +
          "readlink /proc/self/ns/user; ls /dev | wc -l; cut -d' ' -f6 /proc/self/stat"
      )
      const lines = seen.stdout.split("\n")
      assert.deepStrictEqual(lines.slice(0, 2), ["anywhere", "hidden"])
      assert.notStrictEqual(lines[2], hostNamespace("net"))
      assert.notStrictEqual(lines[3], hostNamespace("pid"))
      assert.notStrictEqual(lines[4], hostNamespace("ipc"))
      assert.strictEqual(lines[5], hostNamespace("user"), "its user kept")
      assert.strictEqual(lines[6], String(hostDevices), "the host's /dev")
      assert.notStrictEqual(lines[7], "0", "a session of its own")
      assert.strictEqual(readFileSync(join(dirs.base, "anywhere"), "utf8"), "a")
    }))
})
