/**
 * Objects held by descriptor: where the kernel says one really is, and what
 * is nowhere (a file deleted while held, a pipe). Real files, links and
 * directories in a scratch directory.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import { join } from "node:path"
import { lstatIfAny, osError, pin, splitPath, using } from "../src/internal/fs/pinned.ts"
import { scratchDir } from "./support/sandbox.ts"

const scratch = Effect.acquireRelease(
  Effect.sync(() => scratchDir("pinned")),
  (dir) => Effect.sync(() => dir[Symbol.dispose]())
)

/** The code `promise` rejects with; "resolved" when it does not. */
const rejection = (promise: () => Promise<unknown>) =>
  Effect.promise(() => promise().then(() => "resolved", (error: NodeJS.ErrnoException) => error.code ?? String(error)))

/** This process's descriptors whose object the kernel names `name`. */
const holding = (name: string): ReadonlyArray<number> =>
  NodeFs.readdirSync("/proc/self/fd").map(Number).filter((fd) => {
    try {
      return NodeFs.readlinkSync(`/proc/self/fd/${fd}`) === name
    } catch {
      return false
    }
  })

describe("pinned", () => {
  it.effect("holds what a path leads to, links followed unless noFollow, and names it and its children", () =>
    Effect.gen(function*() {
      const { path } = yield* scratch
      NodeFs.mkdirSync(join(path, "d"))
      NodeFs.writeFileSync(join(path, "d", "f"), "f")
      NodeFs.symlinkSync(join(path, "d"), join(path, "l"))
      const viaLink = yield* Effect.promise(() => pin(join(path, "l", "..", "l"), { directory: true }))
      assert.strictEqual(viaLink.real, join(path, "d"))
      assert.strictEqual(viaLink.self, `/proc/self/fd/${viaLink.handle.fd}`)
      assert.strictEqual(NodeFs.readFileSync(viaLink.child("f"), "utf8"), "f")
      assert.strictEqual(viaLink.realChild("f"), join(path, "d", "f"))
      yield* Effect.promise(() => viaLink.close())
      const link = yield* Effect.promise(() => pin(join(path, "l"), { noFollow: true }))
      assert.strictEqual(link.real, join(path, "l"))
      assert.isTrue(NodeFs.lstatSync(link.self).isSymbolicLink())
      yield* Effect.promise(() => link.close())
      assert.strictEqual(yield* rejection(() => pin(join(path, "l"), { directory: true, noFollow: true })), "ENOTDIR")
      assert.strictEqual(yield* rejection(() => pin(join(path, "d", "f"), { directory: true })), "ENOTDIR")
      const root = yield* Effect.promise(() => pin("/", { directory: true }))
      assert.strictEqual(root.real, "/")
      assert.strictEqual(root.realChild("etc"), "/etc")
      yield* Effect.promise(() => root.close())
      // closing twice is harmless
      yield* Effect.promise(() => root.close())
    }))

  it.effect("finds nowhere a file deleted while held, nor what is no file, and lets the descriptor go", () =>
    Effect.gen(function*() {
      const { path } = yield* scratch
      NodeFs.writeFileSync(join(path, "gone"), "")
      const held = NodeFs.openSync(join(path, "gone"), "r")
      yield* Effect.addFinalizer(() => Effect.sync(() => NodeFs.closeSync(held)))
      NodeFs.unlinkSync(join(path, "gone"))
      // the kernel still names it, "… (deleted)"; it has no link left
      assert.strictEqual(NodeFs.readlinkSync(`/proc/self/fd/${held}`), `${join(path, "gone")} (deleted)`)
      assert.strictEqual(yield* rejection(() => pin(`/proc/self/fd/${held}`)), "ENOENT")
      assert.deepStrictEqual(holding(`${join(path, "gone")} (deleted)`), [held], "the descriptor pin opened was closed")
      // an object that is no file: the event loop's epoll descriptor, "anon_inode:[eventpoll]"
      const epoll = holding("anon_inode:[eventpoll]")
      assert.isNotEmpty(epoll)
      assert.strictEqual(yield* rejection(() => pin(`/proc/self/fd/${epoll[0]}`)), "ENOENT")
      assert.deepStrictEqual(holding("anon_inode:[eventpoll]"), epoll, "the descriptor pin opened was closed")
    }))

  it.effect("lets go of what it holds after its use, whether the use succeeds or fails", () =>
    Effect.gen(function*() {
      const { path } = yield* scratch
      const first = yield* Effect.promise(() => pin(path, { directory: true }))
      assert.strictEqual(yield* Effect.promise(() => using(first, async (pinned) => pinned.real)), path)
      assert.deepStrictEqual(holding(path), [], "let go after a use that succeeded")
      const second = yield* Effect.promise(() => pin(path, { directory: true }))
      assert.deepStrictEqual(holding(path), [second.handle.fd])
      assert.strictEqual(yield* rejection(() => using(second, () => Promise.reject(osError("EIO")))), "EIO")
      assert.deepStrictEqual(holding(path), [], "let go after a use that failed")
    }))

  it("splits a path into its directory and last name; / has none", () => {
    assert.deepStrictEqual(splitPath("/a/b/c"), { parent: "/a/b", name: "c" })
    assert.deepStrictEqual(splitPath("/a"), { parent: "/", name: "a" })
    assert.isUndefined(splitPath("/"))
  })

  it("makes an OS error whose message is its code unless given", () => {
    const error = osError("EROFS")
    assert.strictEqual(error.code, "EROFS")
    assert.strictEqual(error.message, "EROFS")
    assert.strictEqual(osError("EIO", "disk gone").message, "disk gone")
    assert.instanceOf(error, Error)
  })

  it.effect("lstats what is there, answers nothing for what is not, and fails otherwise", () =>
    Effect.gen(function*() {
      const { path } = yield* scratch
      NodeFs.writeFileSync(join(path, "f"), "")
      NodeFs.symlinkSync(join(path, "missing"), join(path, "dangling"))
      assert.isTrue((yield* Effect.promise(() => lstatIfAny(join(path, "f"))))?.isFile())
      assert.isTrue((yield* Effect.promise(() => lstatIfAny(join(path, "dangling"))))?.isSymbolicLink())
      assert.isUndefined(yield* Effect.promise(() => lstatIfAny(join(path, "missing"))))
      assert.strictEqual(yield* rejection(() => lstatIfAny(join(path, "f", "x"))), "ENOTDIR")
    }))
})
