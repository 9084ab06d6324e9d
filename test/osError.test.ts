/**
 * A failed file operation as a typed reason, in Codex's words: musl's text and
 * Rust's "(os error n)", the reason's kind by OS error code, and what is not
 * an OS error at all (Node refusing an argument) as invalid input.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs/promises"
import { FileSystemFailure, InvalidRequest, PathAccessDenied, PathNotFound } from "../src/Executor.ts"
import { attempt, errnoCode, fromErrnoCode, fromNodeError, osErrorText } from "../src/internal/fs/osError.ts"

describe("osError", () => {
  it("writes an OS error as Rust does, with musl's text where it has one", () => {
    assert.strictEqual(osErrorText("ENOENT"), "No such file or directory (os error 2)")
    assert.strictEqual(osErrorText("ELOOP"), "Symbolic link loop (os error 40)")
    // a code musl's table here does not name keeps its name; one that is no OS error has no number
    assert.strictEqual(osErrorText("ECONNRESET"), "ECONNRESET (os error 104)")
    assert.strictEqual(osErrorText("ENOTANERROR"), "ENOTANERROR")
  })

  it("names an OS error number, and no other", () => {
    assert.strictEqual(errnoCode(17), "EEXIST")
    assert.strictEqual(errnoCode(2), "ENOENT")
    assert.isUndefined(errnoCode(0))
    assert.isUndefined(errnoCode(100_000))
  })

  it("types a missing path, a refused one, and any other OS error with its code and number", () => {
    assert.deepStrictEqual(
      fromErrnoCode("ENOENT", "/p"),
      new PathNotFound({ path: "/p", description: "No such file or directory (os error 2)" })
    )
    assert.deepStrictEqual(
      fromErrnoCode("EACCES", "/p"),
      new PathAccessDenied({ path: "/p", description: "Permission denied (os error 13)" })
    )
    assert.deepStrictEqual(
      fromErrnoCode("EPERM", "/p"),
      new PathAccessDenied({ path: "/p", description: "Operation not permitted (os error 1)" })
    )
    assert.deepStrictEqual(
      fromErrnoCode("EROFS", "/p"),
      new FileSystemFailure({
        path: "/p",
        code: "EROFS",
        errno: 30,
        description: "Read-only file system (os error 30)"
      })
    )
    assert.deepStrictEqual(
      fromErrnoCode("ENOTANERROR", "/p"),
      new FileSystemFailure({ path: "/p", code: "ENOTANERROR", errno: 0, description: "ENOTANERROR" })
    )
  })

  it("takes an OS error by its code; anything else a node:fs call throws is invalid input", () => {
    const errno = (code: unknown, message = "boom") => Object.assign(new Error(message), { code })
    assert.deepStrictEqual(fromNodeError(errno("EISDIR"), "/d"), fromErrnoCode("EISDIR", "/d"))
    assert.deepStrictEqual(
      fromNodeError(errno("ERR_INVALID_ARG_TYPE", "bad argument"), "/d"),
      new InvalidRequest({ description: "bad argument" })
    )
    assert.deepStrictEqual(fromNodeError(errno(2, "a number"), "/d"), new InvalidRequest({ description: "a number" }))
    assert.deepStrictEqual(fromNodeError("thrown text", "/d"), new InvalidRequest({ description: "thrown text" }))
    assert.deepStrictEqual(fromNodeError(undefined, "/d"), new InvalidRequest({ description: "undefined" }))
    assert.deepStrictEqual(fromNodeError(null, "/d"), new InvalidRequest({ description: "null" }))
  })

  it.effect("runs a node:fs call, its failure the typed reason for the path", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* attempt("/", async () => (await NodeFs.stat("/")).isDirectory()), true)
      const error = yield* Effect.flip(attempt("/nonexistent/x", () => NodeFs.stat("/nonexistent/x")))
      assert.deepStrictEqual(
        error.reason,
        new PathNotFound({ path: "/nonexistent/x", description: "No such file or directory (os error 2)" })
      )
    }))
})
