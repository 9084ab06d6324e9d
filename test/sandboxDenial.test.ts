/**
 * Codex's `sandboxDenied` rule, on the cases measured against the Codex 0.169
 * exec-server (workspace-write): the exit code, then the retained output.
 */
import { assert, describe, it } from "@effect/vitest"
import { isLikelySandboxDenied } from "../src/internal/sandbox/denial.ts"
import type * as Protocol from "../src/Protocol.ts"

const chunks = (...parts: ReadonlyArray<readonly [Protocol.OutputStream, string]>): Array<Protocol.ProcessChunk> =>
  parts.map(([stream, text], index) => ({ seq: index + 1, stream, chunk: new TextEncoder().encode(text) }))

describe("sandboxDenied (Codex's rule)", () => {
  it("matches what Codex answered for each case", () => {
    const cases: ReadonlyArray<readonly [string, number, Array<Protocol.ProcessChunk>, boolean]> = [
      ["exit 1", 1, [], false],
      ["exit 3", 3, [], false],
      ["exit 2 with 'sandbox' printed", 2, chunks(["stdout", "my sandbox\n"]), true],
      ["a missing command", 127, chunks(["stderr", "sh: 1: nope: not found\n"]), false],
      ["exit 159 (SIGSYS)", 159, [], true],
      ["'Permission denied' printed, exit 0", 0, chunks(["stdout", "Permission denied\n"]), false],
      ["'READ-ONLY FILE SYSTEM' printed, exit 5", 5, chunks(["stderr", "READ-ONLY FILE SYSTEM\n"]), true],
      ["kill -9", 137, [], false],
      ["kill -TERM", 143, [], false],
      [
        "write outside: EROFS, exit 2",
        2,
        chunks(["stderr", "sh: 1: cannot create /var/tmp/x: Read-only file system\n"]),
        true
      ],
      ["socket(): EPERM, exit 1", 1, chunks(["stderr", "PermissionError: [Errno 1] Operation not permitted\n"]), true]
    ]
    for (const [name, exitCode, output, expected] of cases) {
      assert.strictEqual(isLikelySandboxDenied(exitCode, output), expected, name)
    }
  })

  it("reads stdout, stderr and the two in order: a word split across them counts", () => {
    assert.isTrue(isLikelySandboxDenied(1, chunks(["stdout", "permission "], ["stderr", "denied"])))
    assert.isFalse(isLikelySandboxDenied(1, chunks(["stdout", "permission "], ["stderr", "granted"])))
  })
})
