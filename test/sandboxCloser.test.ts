/**
 * The closer that runs on the host before bubblewrap: each kind this host has
 * (bash, perl, sh) closes what the server would pass on, runs what follows
 * with the fixed environment, and `sh`, which cannot close a descriptor above
 * 9, refuses to run anything rather than let it through. Real processes
 * (a closer this host lacks is not tried).
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { hostEnvironment } from "../src/internal/sandbox/bwrap.ts"
import { closerFailureExitCode, closers } from "../src/internal/sandbox/closeDescriptors.ts"

/**
 * Runs `closer` with descriptors 0–2 kept and `open` (a pipe) open, nothing
 * else (whatever this test's own parent let through is closed first, by bash);
 * what the command after it says.
 */
const through = (closer: (typeof closers)[number], file: string, open: number) => {
  const stdio = Array.from({ length: open + 1 }, (_, fd) => fd === 1 || fd === 2 || fd === open ? "pipe" : "ignore")
  const onlyThat =
    `for f in /proc/self/fd/*; do f=\${f##*/}; [ "$f" -gt 2 ] && [ "$f" != ${open} ] && exec {f}>&-; done; ` +
    `exec "$@"`
  const command = `if [ -e /proc/self/fd/${open} ]; then echo open; else echo closed; fi`
  const child = spawnSync(
    "/bin/bash",
    ["-c", onlyThat, "bash", file, ...closer.prefix, "2", "/bin/sh", "-c", command],
    { stdio: stdio as Array<"ignore" | "pipe">, env: { ...hostEnvironment }, encoding: "utf8" }
  )
  return { status: child.status, stdout: String(child.stdout ?? ""), stderr: String(child.stderr ?? "") }
}

describe("the descriptor closer", () => {
  // the closers this host has (the test itself clears its descriptors with bash)
  for (const closer of closers.filter((candidate) => candidate.paths.some(existsSync))) {
    const file = closer.paths.find(existsSync)!
    const kind = closer.paths[0]!.split("/").pop()!
    it(`${kind} closes a descriptor the server would pass on`, () => {
      const low = through(closer, file, 5)
      assert.deepStrictEqual([low.status, low.stdout], [0, "closed\n"], low.stderr)
      const high = through(closer, file, 12)
      if (kind === "sh") {
        // a POSIX shell names descriptors 0 to 9 only: it refuses to run what follows
        assert.strictEqual(high.status, closerFailureExitCode)
        assert.include(high.stderr, "descriptor 12 would reach the sandbox")
      } else {
        assert.deepStrictEqual([high.status, high.stdout], [0, "closed\n"], high.stderr)
      }
    })
  }
})
