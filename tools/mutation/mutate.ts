/**
 * `npm run mutate -- <module…>`: Stryker over one module (or a file) at a time,
 * running only the test files that exercise it. A module is a name below
 * (`npm run mutate -- --list` prints them) or a path under `src/`, which runs
 * the test files vitest finds related to it. Stryker and the TypeScript it
 * type-checks mutants with (5.9: its checker needs TypeScript's JS API, which
 * the project's TypeScript 7 does not have) live in this folder's own
 * package, installed here on first use; the project's toolchain never loads
 * them, and CI does not run this.
 *
 * Reports: `reports/mutation/<module>.html` and `.json`; `npm run mutate --
 * --scores` prints the table of the last runs and the mutants left.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { printScores } from "./scores.ts"

interface Module {
  readonly mutate: ReadonlyArray<string>
  readonly tests: ReadonlyArray<string>
}

/** The modules the mutation score is kept for (test/README.md), with the test files that exercise each. */
export const modules: Readonly<Record<string, Module>> = {
  capture: {
    mutate: ["src/CappedBuffer.ts", "src/internal/bytes.ts"],
    tests: ["test/CappedBuffer.test.ts", "test/bytes.test.ts"]
  },
  exec: {
    mutate: ["src/Exec.ts"],
    tests: ["test/Exec.test.ts", "test/Exec.local.test.ts", "test/Exec.stdin.test.ts"]
  },
  protocol: {
    mutate: ["src/Protocol.ts"],
    tests: ["test/Protocol.test.ts", "test/ExecServer.wire.test.ts", "test/RemoteExecutor.hostileServer.test.ts"]
  },
  processLog: {
    mutate: ["src/internal/local/processLog.ts"],
    // its own unit tests: the log is reached through Exec.test.ts as well, at 3 times the cost a mutant
    tests: ["test/processLog.test.ts"]
  },
  envPolicy: {
    mutate: ["src/internal/local/envPolicy.ts", "src/internal/local/glob.ts"],
    tests: ["test/envPolicy.test.ts"]
  },
  server: {
    mutate: [
      "src/internal/server/processHandlers.ts",
      "src/internal/server/sessions.ts",
      "src/internal/server/router.ts"
    ],
    // not ExecServer.hostile (40 s a run): its limits are the connection's, not these files'
    tests: [
      "test/ExecServer.sessions.test.ts",
      "test/ExecServer.wire.test.ts",
      "test/ExecServer.environment.test.ts",
      "test/ExecServer.races.test.ts",
      "test/RemoteExecutor.test.ts"
    ]
  },
  // the remote client's stream handling: pushed output, its ordering, reads answered from it
  remote: {
    mutate: [
      "src/internal/remote/pushedOutput.ts",
      "src/internal/remote/processRecords.ts",
      "src/internal/remote/seqQueue.ts",
      "src/internal/remote/streamedRead.ts"
    ],
    // not RemoteExecutor.hostileServer: instrumented, its flood of 65 000 pushed chunks fails the dry run
    tests: [
      "test/pushedOutput.test.ts",
      "test/processRecords.test.ts",
      "test/streamedRead.test.ts",
      "test/RemoteExecutor.test.ts",
      "test/RemoteRecords.test.ts"
    ]
  },
  // the fs/* calls under a sandbox policy: confined paths, pinned descriptors, OS errors as typed reasons
  fileSystem: {
    mutate: ["src/internal/fs/confinedFileSystem.ts", "src/internal/fs/pinned.ts", "src/internal/fs/osError.ts"],
    // their own unit tests: the wire tests (ExecServer.fs, FileSystemSandbox) reach the same code through a server
    // and a client, Codex's server in the dry run
    tests: ["test/confinedFileSystem.test.ts", "test/pinned.test.ts", "test/osError.test.ts"]
  },
  // the sandbox: a policy resolved against the host, the bubblewrap command line built from it, its mount points
  sandbox: {
    mutate: [
      "src/internal/sandbox/policy.ts",
      "src/internal/sandbox/bwrapArgs.ts",
      "src/internal/sandbox/mountPoints.ts"
    ],
    // not Sandbox.test.ts (its conformance suite, 17 s an executor) nor Sandbox.launch.test.ts (through the
    // executor): sandboxConfinement runs the same confinement through bubblewrap directly; not seccomp.ts,
    // reached only through that suite's network tests
    tests: ["test/sandboxPolicy.test.ts", "test/sandboxMountPoints.test.ts", "test/sandboxConfinement.test.ts"]
  },
  // the local executor's output path: the pipes a child writes to, their reading, the memory it goes into
  localOutput: {
    mutate: ["src/internal/local/outputPipes.ts", "src/internal/local/pipeReader.ts", "src/internal/outputMemory.ts"],
    // not Exec.local or LocalExecutor: end to end, at many times the cost a mutant
    tests: ["test/outputPipes.test.ts", "test/outputMemory.test.ts", "test/pipeReader.test.ts"]
  },
  // the client end of a ws:// WebSocket: the upgrade, frames, limits, the close
  wsClient: {
    mutate: ["src/internal/rpc/webSocketClient.ts", "src/internal/rpc/webSocketFrames.ts"],
    tests: ["test/webSocketClient.test.ts", "test/webSocketClient.edges.test.ts"]
  }
}

const here = fileURLToPath(new URL(".", import.meta.url))
const repository = join(here, "..", "..")

const run = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  env: Record<string, string> = {}
): number => {
  const result = spawnSync(command, args, {
    cwd,
    stdio: "inherit",
    env: { ...process.env, ...env, EFFECT_EXEC_REPOSITORY: repository }
  })
  return result.status ?? 1
}

const names = process.argv.slice(2)
if (names.includes("--scores")) {
  printScores(join(repository, "reports", "mutation"))
  process.exit(0)
}
if (names.length === 0 || names.includes("--list") || names.includes("--help")) {
  console.log("usage: npm run mutate -- <module|src/file.ts>…   (or --scores: the last runs' table)")
  for (const [name, module] of Object.entries(modules)) console.log(`  ${name.padEnd(12)} ${module.mutate.join(" ")}`)
  process.exit(names.length === 0 ? 2 : 0)
}

if (!existsSync(join(here, "node_modules", "@stryker-mutator", "core"))) {
  // its own lock file: the project's `npm ci` never installs Stryker
  const status = run("npm", ["ci", "--no-audit", "--no-fund"], here)
  if (status !== 0) process.exit(status)
}

let failed = 0
for (const name of names) {
  const module: Module | undefined = modules[name]
  const mutate = module?.mutate ?? [name]
  const tests = module?.tests.filter((file) => existsSync(join(repository, file))) ?? []
  const label = module === undefined ? name.replace(/^src\//, "").replace(/\.ts$/, "").replaceAll("/", "-") : name
  const stryker = join(here, "node_modules", "@stryker-mutator", "core", "bin", "stryker.js")
  console.log(`\n# mutate ${label}: ${mutate.join(" ")} (tests: ${tests.join(" ") || "related"})`)
  // a file outside the modules (no test files named): vitest's related mode finds its tests
  const env = { MUTATE: mutate.join(","), MUTATE_TESTS: tests.join(","), MUTATE_LABEL: label }
  if (run(process.execPath, [stryker, "run", join(here, "stryker.config.mjs")], repository, env) !== 0) failed++
}
process.exit(failed > 0 ? 1 : 0)
