/**
 * The `Executor` conformance suite, written from `shared/protocol.md`. Every
 * executor runs it unchanged: the local one, a remote one served by our
 * `ExecServer`, and the real Codex exec-server.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Exec from "../../src/Executor.ts"
import type * as Protocol from "../../src/Protocol.ts"
import { awaitDeath, freshId, isAlive, readUntilClosed, run, start } from "./processes.ts"

export interface ContractOptions {
  /**
   * Our protocol extensions (`dropped`, `signal`, `backpressure`, `process/signal`,
   * the `events` replay). A Codex exec-server does not offer them.
   */
  readonly extensions: boolean
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const bytes = (s: string) => new TextEncoder().encode(s)

const reasonOf = <A>(exit: Exit.Exit<A, Exec.ExecutorError>): string | undefined =>
  Exit.isFailure(exit)
    ? exit.cause.reasons.flatMap((r) => r._tag === "Fail" ? [r.error.reason._tag] : [])[0]
    : undefined

/** Reads a process until its output (of any stream) contains `marker`; returns that output and the cursor. */
const readUntilOutput = (processId: string, marker: string) =>
  Effect.gen(function*() {
    const executor = yield* Exec.Executor
    let output = ""
    let afterSeq = 0
    while (!output.includes(marker)) {
      const result = yield* executor.read({ processId, afterSeq, maxBytes: null, waitMs: 2_000 })
      output += result.chunks.map((c) => text(c.chunk)).join("")
      afterSeq = result.nextSeq - 1
      if (result.closed && !output.includes(marker)) {
        return yield* Effect.die(new Error(`${processId} closed before printing ${marker}: ${JSON.stringify(output)}`))
      }
    }
    return { output, afterSeq }
  })

/**
 * Starts a process that prints `out`, then `err` on stderr, then exits 7, each
 * step once the one before it was read: a reader that takes its time (a busy
 * machine) cannot find both outputs waiting, nor the exit before the output,
 * so their order is the order they were written, on any executor.
 */
const outErrExit = (processId: string, options: Partial<Exec.StartRequest> = {}) =>
  Effect.gen(function*() {
    const executor = yield* Exec.Executor
    yield* start(processId, ["sh", "-c", "printf out; read _; printf err >&2; read _; exit 7"], {
      ...options,
      pipeStdin: true
    })
    for (const marker of ["out", "outerr"]) {
      yield* readUntilOutput(processId, marker)
      yield* executor.write({ processId, chunk: bytes("\n"), writeId: marker })
    }
  })

/** Registers the conformance suite for the executor provided by `executorLayer`. */
export const suite = (
  name: string,
  executorLayer: Layer.Layer<Exec.Executor, unknown>,
  options: ContractOptions
) =>
  describe(name, () => {
    layer(executorLayer, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
      it.effect("starts a process and reports its exit", () =>
        Effect.gen(function*() {
          const seen = yield* run(["sh", "-c", "exit 0"])
          assert.isTrue(seen.last.exited)
          assert.strictEqual(seen.last.exitCode, 0)
          assert.isTrue(seen.last.closed)
          assert.strictEqual(seen.last.failure, null)
        }))

      it.effect("streams output with argv, cwd and exactly the given env", () =>
        Effect.gen(function*() {
          const seen = yield* run([
            "sh",
            "-c",
            "printf '%s|%s|%s|' \"$0\" \"$PWD\" \"$FOO\"; sleep 0.05; printf done",
            "zero"
          ], {
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin", FOO: "bar baz" }
          })
          assert.strictEqual(seen.stdout, "zero|/tmp|bar baz|done")
          assert.strictEqual(seen.last.exitCode, 0)
        }))

      it.effect("gives the output real pipes: the child can open /dev/stdout and /dev/stderr again by name", () =>
        Effect.gen(function*() {
          // a socket pair (what Node's child_process gives) cannot be reopened: "No such device or address"
          const seen = yield* run([
            "sh",
            "-c",
            "echo out > /dev/stdout && echo err > /dev/stderr && test -p /dev/stdout && test -p /dev/stderr && echo pipes"
          ])
          assert.strictEqual(seen.stdout, "out\npipes\n")
          assert.strictEqual(seen.stderr, "err\n")
          assert.strictEqual(seen.last.exitCode, 0)
        }))

      it.effect("numbers output, exit and close with one counter", () =>
        Effect.gen(function*() {
          const processId = freshId("seq")
          yield* outErrExit(processId)
          const seen = yield* readUntilClosed(processId)
          assert.deepStrictEqual(
            seen.chunks.map((c) => [c.seq, c.stream, text(c.chunk)]),
            [[1, "stdout", "out"], [2, "stderr", "err"]]
          )
          assert.strictEqual(seen.last.exitCode, 7)
          assert.strictEqual(seen.last.nextSeq, 5)
        }))

      it.effect("keeps the log after close, for a reader that starts over", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("replay")
          // "two" comes only once "one" was read: two chunks however busy the machine
          yield* start(processId, ["sh", "-c", "printf one; read line; printf two"], { pipeStdin: true })
          let first = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 5_000 })
          while (first.chunks.length === 0) {
            first = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 5_000 })
          }
          assert.deepStrictEqual(first.chunks.map((c) => text(c.chunk)), ["one"])
          assert.strictEqual(yield* executor.write({ processId, chunk: bytes("\n") }), "accepted")
          yield* readUntilClosed(processId)
          const replay = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 0 })
          assert.strictEqual(replay.chunks.map((c) => text(c.chunk)).join(""), "onetwo")
          assert.isTrue(replay.closed)
          const tail = yield* executor.read({ processId, afterSeq: 1, maxBytes: null, waitMs: 0 })
          assert.deepStrictEqual(tail.chunks.map((c) => text(c.chunk)), ["two"])
        }))

      it.effect("keeps output written after the exit until the close", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("late")
          // the background child writes once the test saw the exit (a file it waits for), however long that took
          const go = join(tmpdir(), `${processId}-go`)
          const script = "(while [ ! -e \"$0\" ]; do sleep 0.01; done; rm -f \"$0\"; printf late) & printf early"
          yield* start(processId, ["sh", "-c", script, go])
          let result = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 2_000 })
          let afterSeq = result.nextSeq - 1
          while (!result.exited) {
            result = yield* executor.read({ processId, afterSeq, maxBytes: null, waitMs: 2_000 })
            afterSeq = result.nextSeq - 1
          }
          assert.isFalse(result.closed, "a background child still holds the pipe")
          writeFileSync(go, "")
          const seen = yield* readUntilClosed(processId)
          assert.strictEqual(seen.stdout, "earlylate")
          const late = seen.chunks.find((c) => text(c.chunk) === "late")
          assert.isDefined(late)
          assert.isAbove(late!.seq, 2, "late output is numbered after the exit")
        }))

      it.effect("long-polls: a read wakes up when output arrives", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("poll")
          yield* start(processId, ["sh", "-c", "sleep 0.2; printf wake; sleep 5"])
          const result = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 60_000 }).pipe(
            Effect.timeout("10 seconds")
          )
          assert.deepStrictEqual(result.chunks.map((c) => text(c.chunk)), ["wake"])
          yield* executor.terminate(processId)
        }))

      it.effect("maxBytes stops before a chunk that would pass it, but returns the first whole", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("max")
          // each write waits for a line of input, sent once the one before was read: three chunks on any machine
          yield* start(processId, ["sh", "-c", "printf aaaa; read x; printf bb; read y; printf c"], { pipeStdin: true })
          let afterSeq = 0
          for (const [expected, writeId] of [["aaaa", "w1"], ["bb", "w2"]] as const) {
            const seen = yield* executor.read({ processId, afterSeq, maxBytes: null, waitMs: 10_000 })
            assert.deepStrictEqual(seen.chunks.map((c) => text(c.chunk)), [expected])
            afterSeq = seen.chunks[0]!.seq
            yield* executor.write({ processId, chunk: bytes("\n"), writeId })
          }
          yield* readUntilClosed(processId)
          const one = yield* executor.read({ processId, afterSeq: 0, maxBytes: 1, waitMs: 0 })
          assert.deepStrictEqual(one.chunks.map((c) => text(c.chunk)), ["aaaa"])
          assert.strictEqual(one.nextSeq, 2)
          const two = yield* executor.read({ processId, afterSeq: 0, maxBytes: 6, waitMs: 0 })
          assert.deepStrictEqual(two.chunks.map((c) => text(c.chunk)), ["aaaa", "bb"])
          assert.strictEqual(two.nextSeq, 3)
        }))

      it.effect("writes to stdin with pipeStdin", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("stdin")
          yield* start(processId, ["sh", "-c", "read line; printf 'from-stdin:%s' \"$line\""], { pipeStdin: true })
          const status = yield* executor.write({ processId, chunk: bytes("hel"), writeId: "w1" })
          assert.strictEqual(status, "accepted")
          const retried = yield* executor.write({ processId, chunk: bytes("hel"), writeId: "w1" })
          assert.strictEqual(retried, "accepted", "a repeated writeId is accepted and not written twice")
          yield* executor.write({ processId, chunk: bytes("lo\n"), writeId: "w2" })
          const seen = yield* readUntilClosed(processId)
          assert.strictEqual(seen.stdout, "from-stdin:hello")
        }))

      it.effect("reports stdinClosed without pipeStdin, and unknownProcess for an unknown id", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("nostdin")
          yield* start(processId, ["sh", "-c", "cat; printf eof"])
          const status = yield* executor.write({ processId, chunk: bytes("x"), writeId: "w1" })
          assert.strictEqual(status, "stdinClosed")
          const seen = yield* readUntilClosed(processId)
          assert.strictEqual(seen.stdout, "eof", "stdin is /dev/null, so cat ends at once")
          const unknown = yield* executor.write({ processId: freshId("nobody"), chunk: bytes("x"), writeId: "w2" })
          assert.strictEqual(unknown, "unknownProcess")
        }))

      it.effect("lets exactly one of two racing starts with one id win", () =>
        Effect.gen(function*() {
          const processId = freshId("dup")
          const exits = yield* Effect.all([
            Effect.exit(start(processId, ["sh", "-c", "sleep 0.2"])),
            Effect.exit(start(processId, ["sh", "-c", "sleep 0.2"]))
          ], { concurrency: "unbounded" })
          assert.strictEqual(exits.filter(Exit.isSuccess).length, 1)
          assert.deepStrictEqual(exits.filter(Exit.isFailure).map(reasonOf), ["ProcessIdInUse"])
          yield* readUntilClosed(processId)
          const again = yield* Effect.exit(start(processId, ["true"]))
          assert.strictEqual(reasonOf(again), "ProcessIdInUse", "a closed process keeps its id reserved")
        }))

      it.effect("fails typed for unknown ids, empty argv and spawn failures", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const read = yield* Effect.exit(
            executor.read({ processId: freshId("ghost"), afterSeq: 0, maxBytes: null, waitMs: 0 })
          )
          assert.strictEqual(reasonOf(read), "UnknownProcess")
          const empty = yield* Effect.exit(start(freshId("empty"), []))
          assert.strictEqual(reasonOf(empty), "InvalidRequest")
          const missing = yield* Effect.exit(start(freshId("missing"), ["definitely-not-a-command-xyz"]))
          assert.isTrue(Exit.isFailure(missing))
          const missingCwd = yield* Effect.exit(start(freshId("cwd"), ["true"], { cwd: "/definitely/not/here" }))
          assert.isTrue(Exit.isFailure(missingCwd))
        }))

      it.effect("terminates a running process and its whole group", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("group")
          yield* start(processId, ["sh", "-c", "sleep 100 & echo $!; wait"])
          let first = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 5_000 })
          while (first.chunks.length === 0) {
            first = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 5_000 })
          }
          const grandchild = Number(text(first.chunks[0]!.chunk).trim())
          assert.isTrue(isAlive(grandchild))
          const terminated = yield* executor.terminate(processId)
          assert.isTrue(terminated.running)
          const seen = yield* readUntilClosed(processId)
          assert.isTrue(seen.last.exited)
          assert.notStrictEqual(seen.last.exitCode, 0)
          yield* awaitDeath(grandchild)
          const again = yield* executor.terminate(processId)
          assert.isFalse(again.running, "an exited process is not running")
          const unknown = yield* executor.terminate(freshId("nobody"))
          assert.isFalse(unknown.running)
        }))

      it.effect("streams the events of a process in seq order", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("events")
          yield* outErrExit(processId)
          const events = yield* Stream.runCollect(executor.events(processId))
          assert.deepStrictEqual(
            events.map((e) => e._tag === "Output" ? `Output ${e.seq} ${e.stream}` : `${e._tag} ${e.seq}`),
            ["Output 1 stdout", "Output 2 stderr", "Exited 3", "Closed 4"]
          )
          const exited = events.find((e) => e._tag === "Exited")
          assert.deepStrictEqual(exited, { _tag: "Exited", seq: 3, exitCode: 7, signal: null, sandboxDenied: false })
        }))

      it.effect("streams the events of a process whose output is not pushed, and fails for an unknown id", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("unpushed")
          yield* outErrExit(processId, { outputNotifications: false })
          const events = yield* Stream.runCollect(executor.events(processId))
          assert.deepStrictEqual(
            events.map((e) => e._tag === "Output" ? `Output ${e.seq} ${text(e.chunk)}` : `${e._tag} ${e.seq}`),
            ["Output 1 out", "Output 2 err", "Exited 3", "Closed 4"]
          )
          const unknown = yield* Effect.exit(Stream.runCollect(executor.events(freshId("nobody"))))
          assert.strictEqual(reasonOf(unknown), "UnknownProcess")
        }))

      it.effect("a refused second start of a running process's id leaves its events and reads whole", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("inuse")
          yield* start(processId, ["sh", "-c", "printf one; read _; printf two; exit 5"], { pipeStdin: true })
          const follower = yield* Effect.forkChild(Stream.runCollect(executor.events(processId)))
          yield* readUntilOutput(processId, "one")
          const refused = yield* Effect.exit(start(processId, ["true"]))
          assert.strictEqual(reasonOf(refused), "ProcessIdInUse")
          yield* executor.write({ processId, chunk: bytes("\n"), writeId: "go" })
          const events = yield* Fiber.join(follower).pipe(
            Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die("the events stream never ended") })
          )
          const tags = events.map((e) => e._tag === "Output" ? `Output ${text(e.chunk)}` : e._tag)
          if (options.extensions) {
            assert.deepStrictEqual(tags, ["Output one", "Output two", "Exited", "Closed"])
          } else {
            // a Codex server numbers the exit as it sees it, which on a busy machine can be before it read the
            // last output (ours waits for the pipes first): whole is what counts here, not that order
            assert.deepStrictEqual(tags.filter((tag) => tag !== "Exited"), ["Output one", "Output two", "Closed"])
            assert.include(tags, "Exited")
          }
          const seen = yield* readUntilClosed(processId)
          assert.deepStrictEqual([seen.stdout, seen.last.exitCode], ["onetwo", 5])
        }))

      it.effect("builds the environment from an envPolicy, then lays env on top", () =>
        Effect.gen(function*() {
          const seen = yield* run(["/usr/bin/env"], {
            env: { FROM_ENV: "2", SHARED: "env-wins" },
            envPolicy: {
              inherit: "none",
              ignoreDefaultExcludes: false,
              exclude: [],
              set: { FROM_POLICY: "1", SHARED: "policy" },
              includeOnly: []
            }
          })
          const variables = new Map(
            seen.stdout.trim().split("\n").map((line) => line.split("=", 2) as [string, string])
          )
          assert.strictEqual(variables.get("FROM_ENV"), "2")
          assert.strictEqual(variables.get("FROM_POLICY"), "1")
          assert.strictEqual(variables.get("SHARED"), "env-wins")
          assert.isFalse(variables.has("HOME"), "inherit none: nothing of the server's own environment")
        }))

      it.effect("delivers an interrupt signal to the process group", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("int")
          yield* start(processId, [
            "sh",
            "-c",
            "trap 'printf got-int; exit 3' INT; printf ready; while :; do sleep 0.05; done"
          ])
          let ready = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 5_000 })
          while (ready.chunks.length === 0) {
            ready = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 5_000 })
          }
          yield* executor.signal(processId, "interrupt")
          const seen = yield* readUntilClosed(processId)
          assert.strictEqual(seen.stdout, "readygot-int")
          assert.strictEqual(seen.last.exitCode, 3)
        }))

      it.effect("runs a tty process on a terminal of 24 × 80, its output on stream pty", () =>
        Effect.gen(function*() {
          const seen = yield* run([
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo on-a-tty; stty size; echo to-stderr >&2; exit 3"
          ], { tty: true })
          assert.strictEqual(seen.pty, "on-a-tty\r\n24 80\r\nto-stderr\r\n", "the terminal merges both streams")
          assert.deepStrictEqual([...new Set(seen.chunks.map((c) => c.stream))], ["pty"])
          assert.strictEqual(seen.last.exitCode, 3)
        }))

      it.effect("writes type into a tty process's terminal", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("tty-write")
          yield* start(processId, ["sh", "-c", "printf ready; read x; echo got:$x"], { tty: true })
          yield* readUntilOutput(processId, "ready")
          assert.strictEqual(yield* executor.write({ processId, chunk: bytes("hello\n"), writeId: "w1" }), "accepted")
          const seen = yield* readUntilClosed(processId)
          // the terminal echoes what was typed, then the child answers
          assert.include(seen.pty, "hello\r\ngot:hello\r\n")
          assert.strictEqual(seen.last.exitCode, 0)
        }))

      it.effect("terminates a tty process and its whole group", () =>
        Effect.gen(function*() {
          const executor = yield* Exec.Executor
          const processId = freshId("tty-group")
          yield* start(processId, ["sh", "-c", "sleep 100 & echo bg:$!; wait"], { tty: true })
          const { output } = yield* readUntilOutput(processId, "\n")
          const background = Number(/bg:(\d+)/.exec(output)![1])
          assert.isTrue(isAlive(background))
          assert.isTrue((yield* executor.terminate(processId)).running)
          const seen = yield* readUntilClosed(processId)
          assert.isTrue(seen.last.exited)
          assert.notStrictEqual(seen.last.exitCode, 0)
          yield* awaitDeath(background)
        }))

      if (options.extensions) {
        it.effect("opens a tty process's terminal at the requested size and resizes it", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("tty-size")
            yield* start(processId, ["sh", "-c", "stty size; read x; stty size"], {
              tty: true,
              size: { rows: 10, cols: 40 }
            })
            yield* readUntilOutput(processId, "10 40")
            yield* executor.resize(processId, { rows: 50, cols: 132 })
            yield* executor.write({ processId, chunk: bytes("\n"), writeId: "w1" })
            const seen = yield* readUntilClosed(processId)
            assert.strictEqual(seen.pty, "10 40\r\n\r\n50 132\r\n")
            // after the exit there is no terminal left to resize, and that is no error
            yield* executor.resize(processId, { rows: 5, cols: 5 })
          }))

        it.effect("reports a tty process's death by signal as 128 + n with the signal's name", () =>
          Effect.gen(function*() {
            const seen = yield* run(["sh", "-c", "kill -TERM $$"], { tty: true })
            assert.strictEqual(seen.last.exitCode, 143)
            assert.strictEqual(seen.last.signal, "SIGTERM")
          }))

        it.effect("terminate also kills the jobs a job-control shell started on the terminal", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("tty-jobs")
            // an interactive sh runs its background job in a process group of its own
            yield* start(processId, ["sh", "-ic", "sleep 100 & echo bg:$!; wait"], { tty: true })
            const { output } = yield* readUntilOutput(processId, "bg:")
            const { output: rest } = output.includes("\n") ? { output } : yield* readUntilOutput(processId, "\n")
            const background = Number(/bg:(\d+)/.exec(output + rest)![1])
            assert.isTrue(isAlive(background))
            yield* executor.terminate(processId)
            yield* awaitDeath(background)
            assert.isTrue((yield* readUntilClosed(processId)).last.closed)
          }))

        it.effect("refuses to resize a process without a terminal, or an unknown one", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("no-tty")
            yield* start(processId, ["sleep", "5"])
            const noTerminal = yield* Effect.flip(executor.resize(processId, { rows: 10, cols: 10 }))
            assert.strictEqual(noTerminal.reason._tag, "InvalidRequest")
            assert.include(noTerminal.message, "no terminal")
            yield* executor.terminate(processId)
            const unknown = yield* Effect.flip(executor.resize(freshId("ghost"), { rows: 10, cols: 10 }))
            assert.strictEqual(unknown.reason._tag, "UnknownProcess")
          }))

        it.effect("ends stdin after the writes before it: the command reads end-of-file", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("eof")
            yield* start(processId, ["sh", "-c", "wc -c; echo after-eof"], { pipeStdin: true })
            yield* executor.write({ processId, chunk: bytes("abc"), writeId: "w1" })
            yield* executor.write({ processId, chunk: bytes("de"), writeId: "w2" })
            assert.strictEqual(yield* executor.closeStdin(processId), "accepted")
            assert.strictEqual(yield* executor.closeStdin(processId), "stdinClosed", "closing twice is harmless")
            const seen = yield* readUntilClosed(processId)
            assert.strictEqual(seen.stdout.replace(/ /g, ""), "5\nafter-eof\n")
            const late = yield* executor.write({ processId, chunk: bytes("x"), writeId: "w3" })
            assert.strictEqual(late, "stdinClosed")
          }))

        it.effect("says stdinClosed without a stdin pipe, unknownProcess for an unknown id, and refuses a terminal", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const noPipe = freshId("nopipe")
            yield* start(noPipe, ["sleep", "5"])
            assert.strictEqual(yield* executor.closeStdin(noPipe), "stdinClosed")
            yield* executor.terminate(noPipe)
            assert.strictEqual(yield* executor.closeStdin(freshId("ghost")), "unknownProcess")
            const onTerminal = freshId("tty-eof")
            yield* start(onTerminal, ["sleep", "5"], { tty: true })
            const refused = yield* Effect.flip(executor.closeStdin(onTerminal))
            assert.strictEqual(refused.reason._tag, "InvalidRequest")
            assert.include(refused.message, "Ctrl-D")
            yield* executor.terminate(onTerminal)
          }))
      } else {
        it.effect("says ending stdin is unsupported (the server has no process/closeStdin)", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("no-eof")
            yield* start(processId, ["sleep", "5"], { pipeStdin: true })
            const error = yield* Effect.flip(executor.closeStdin(processId))
            assert.strictEqual(error.reason._tag, "Unsupported")
            assert.include(error.message, "stdin")
            yield* executor.terminate(processId)
          }))

        it.effect("says resizing is unsupported (the server has no process/resize)", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("tty-nosize")
            yield* start(processId, ["sh", "-c", "sleep 5"], { tty: true })
            const error = yield* Effect.flip(executor.resize(processId, { rows: 10, cols: 40 }))
            assert.strictEqual(error.reason._tag, "Unsupported")
            yield* executor.terminate(processId)
          }))
      }

      if (options.extensions) {
        it.effect("reports the signal of a death by signal, exit code 128 + n on the wire", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("sig")
            yield* start(processId, ["sleep", "100"])
            yield* executor.terminate(processId)
            const seen = yield* readUntilClosed(processId)
            assert.strictEqual(seen.last.exitCode, 137)
            assert.strictEqual(seen.last.signal, "SIGKILL")
          }))

        it.effect("bounds retention and reports what it dropped", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("flood")
            const total = 3_000_000
            yield* start(processId, ["head", "-c", String(total), "/dev/zero"])
            // wait for the close without reading any output
            let poll = yield* executor.read({ processId, afterSeq: 1_000_000_000, maxBytes: 0, waitMs: 1_000 })
            while (!poll.closed) {
              poll = yield* executor.read({ processId, afterSeq: 1_000_000_000, maxBytes: 0, waitMs: 1_000 })
            }
            const replay = yield* executor.read({ processId, afterSeq: 0, maxBytes: null, waitMs: 0 })
            const retained = replay.chunks.reduce((n, c) => n + c.chunk.length, 0)
            assert.isAtMost(retained, 1024 * 1024)
            assert.isDefined(replay.dropped)
            assert.strictEqual(retained + replay.dropped!.bytes, total)
            assert.isAbove(replay.dropped!.chunks, 0)
          }))

        it.effect("with backpressure, a reader that keeps reading gets every byte", () =>
          Effect.gen(function*() {
            const total = 8 * 1024 * 1024 + 17
            const seen = yield* run(["head", "-c", String(total), "/dev/urandom"], { backpressure: true })
            const received = seen.chunks.reduce((n, c) => n + c.chunk.length, 0)
            assert.strictEqual(received, total)
            assert.strictEqual(seen.droppedBytes, 0)
            assert.deepStrictEqual(seen.chunks.map((c) => c.seq), seen.chunks.map((_, i) => i + 1))
          }))

        it.effect("read lent (as Exec.run reads) or kept, every chunk shows the bytes written, 16 MiB at once", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            // random bytes on stdout, their sha256 on stderr; two processes at once, as memory is shared
            const script = "head -c 8388608 /dev/urandom | tee >(sha256sum | cut -d' ' -f1 >&2)"
            const lentId = freshId("lent")
            const keptId = freshId("kept")
            yield* start(lentId, ["bash", "-c", script], { backpressure: true })
            yield* start(keptId, ["bash", "-c", script], { backpressure: true })
            const readAll = (processId: string, lent: boolean) =>
              Effect.gen(function*() {
                const read = (request: Protocol.ReadParams) => executor.read(request, { lent })
                const hash = createHash("sha256")
                const kept: Array<Uint8Array> = []
                let stderr = ""
                let afterSeq = 0
                while (true) {
                  const result = yield* read({ processId, afterSeq, maxBytes: 512 * 1024, waitMs: 2_000 })
                  for (const { chunk, stream } of result.chunks) {
                    if (stream === "stderr") stderr += text(chunk)
                    else if (lent) hash.update(chunk) // used up before the next read, as a lent chunk must be
                    else kept.push(chunk)
                  }
                  afterSeq = result.nextSeq - 1
                  if (result.closed && result.chunks.length === 0) break
                }
                for (const chunk of kept) hash.update(chunk) // hashed only at the end: kept chunks must not change
                return { digest: hash.digest("hex"), expected: stderr.trim() }
              })
            const [lent, kept] = yield* Effect.all([readAll(lentId, true), readAll(keptId, false)], {
              concurrency: 2
            })
            assert.strictEqual(lent.digest, lent.expected, "lent")
            assert.strictEqual(kept.digest, kept.expected, "kept")
          }))

        it.effect("terminate after the leader exited still kills the group that holds its pipes", () =>
          Effect.gen(function*() {
            const executor = yield* Exec.Executor
            const processId = freshId("orphaned")
            yield* start(processId, ["sh", "-c", "sleep 100 & echo $!"])
            // long-poll with a cursor until the pid line and the exit are in
            let text = ""
            let afterSeq = 0
            let exited = false
            while (!exited || !text.includes("\n")) {
              const result = yield* executor.read({ processId, afterSeq, maxBytes: null, waitMs: 2_000 })
              text += result.chunks.map((c) => new TextDecoder().decode(c.chunk)).join("")
              afterSeq = result.nextSeq - 1
              exited = result.exited
            }
            const background = Number(text.trim())
            assert.isTrue(isAlive(background), "the background child outlives the leader")
            const terminated = yield* executor.terminate(processId)
            assert.isFalse(terminated.running, "the leader had exited")
            yield* awaitDeath(background)
            const seen = yield* readUntilClosed(processId)
            assert.isTrue(seen.last.closed)
          }))

        it.effect("names the missing binary or working directory in a spawn failure", () =>
          Effect.gen(function*() {
            const missing = yield* Effect.flip(start(freshId("missing"), ["definitely-not-a-command-xyz"]))
            assert.strictEqual(missing.reason._tag, "SpawnFailed")
            assert.include(missing.message, "definitely-not-a-command-xyz")
            const missingCwd = yield* Effect.flip(start(freshId("cwd"), ["true"], { cwd: "/definitely/not/here" }))
            assert.strictEqual(missingCwd.reason._tag, "SpawnFailed")
            assert.include(missingCwd.message, "/definitely/not/here")
          }))
      }
    })
  })
