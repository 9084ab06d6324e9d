/**
 * The local executor's pipes for a child's output: real pipes (FIFOs opened
 * and removed), made in batches by `mkfifo`, and nothing of them left open or
 * on disk once a process or the executor is done with them. Socket pairs
 * where `mkfifo` cannot run, and for stdin.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  open,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import * as Exec from "../src/Executor.ts"
import * as Defaults from "../src/internal/defaults.ts"
import { prepareChild } from "../src/internal/local/childProcess.ts"
import { Holdings } from "../src/internal/local/localProcess.ts"
import { makeOutputPipes, type OutputPipes } from "../src/internal/local/outputPipes.ts"
import { longPollRead } from "../src/internal/local/processLog.ts"
import { spawnTurn } from "../src/internal/local/spawnTurns.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import { awaitClosedSince, openDescriptors } from "./support/descriptors.ts"
import { awaitDeath, freshId, readUntilClosed, run } from "./support/processes.ts"

/** Runs `body` with `TMPDIR` (where batches are made) a fresh directory of its own, then removes it. */
const inOwnTmpdir = <A, E, R>(body: (directory: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const previous = process.env.TMPDIR
      const directory = mkdtempSync(join(tmpdir(), "pipes-test-"))
      process.env.TMPDIR = directory
      return { directory, previous }
    }),
    ({ directory }) => body(directory),
    ({ directory, previous }) =>
      Effect.sync(() => {
        if (previous === undefined) delete process.env.TMPDIR
        else process.env.TMPDIR = previous
        rmSync(directory, { recursive: true, force: true })
      })
  )

/** Waits (real time, up to 5 s) until `check` holds. */
const awaitTrue = (check: () => boolean, what: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5_000
    while (!check() && Date.now() < deadline) {
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
    assert.isTrue(check(), what)
  })

/** Lets real time pass (under a `TestClock`): for the work of other processes and of the event loop. */
const realTime = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/** The outcome of `fiber` once it has one (real time, up to 5 s, whatever clock the test runs on). */
const joinWithin5s = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.andThen(awaitTrue(() => fiber.pollUnsafe() !== undefined, "answered within 5 s"), Fiber.join(fiber))

/** A directory of its own in the temporary directory, named from `prefix`, removed with the scope. */
const scratchDirectory = (prefix = "fake-mkfifo-") =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
  )

/** The state letter `/proc` gives `pid` (`T`: stopped). */
const processState = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.charAt(stat.lastIndexOf(")") + 2)
  } catch {
    return undefined
  }
}

/**
 * Holds every thread of libuv's pool (`UV_THREADPOOL_SIZE`, 4 by default) in
 * an open of the FIFO `path` that no one writes to: the file system calls
 * queued behind them wait as on a file system that hangs. `release` opens the
 * FIFO to write, which ends those opens, and closes all it opened.
 */
const holdThreadPool = (path: string) => {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
  const opened = Array.from(
    { length: threads },
    () => new Promise<number>((resolve, reject) => open(path, "r", (error, fd) => error ? reject(error) : resolve(fd)))
  )
  return Effect.promise(async () => {
    const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
    for (const fd of await Promise.all(opened)) closeSync(fd)
    closeSync(writer)
  })
}

/** A stand-in for `mkfifo` in `directory`: a shell script running `body` with mkfifo's arguments (`-m 600 -- names…`). */
const fakeMkfifo = (directory: string, body: string): string => {
  const path = join(directory, "mkfifo")
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
  return path
}

/** `take(2)` of `pipes`, or `Option.none()` when it has not answered in 5 s of real time. */
const takeWithin5s = (pipes: OutputPipes) => Effect.timeoutOption(pipes.take(2), 5_000)

/** Prepares and spawns `script` under `sh -c` on pipes from `pipes`. */
const spawn = (script: string, pipes: OutputPipes, cwd = "/tmp") =>
  Effect.flatMap(
    prepareChild(
      { processId: freshId("pipes"), argv: ["sh", "-c", script], cwd, env: { PATH: "/usr/bin:/bin" }, tty: false },
      { retainedBytes: 1024 * 1024, baseEnvironment: {}, stdinWindowBytes: 1024 * 1024, outputPipes: pipes },
      new Holdings()
    ),
    (prepared) => prepared.spawn(0)
  )

/** What a spawned child wrote to stdout, once it closed. */
const stdoutOf = (child: Effect.Success<ReturnType<typeof spawn>>) =>
  Effect.map(
    Deferred.await(child.closed),
    () => Buffer.concat(child.log.retainedChunks().filter((c) => c.stream === "stdout").map((c) => c.chunk)).toString()
  )

describe("output pipes", () => {
  it.live(
    "every child of an executor gets pipes, over several batches; once it is closed nothing is left open or on disk",
    () =>
      inOwnTmpdir((directory) =>
        Effect.gen(function*() {
          const before = openDescriptors()
          const processes = Defaults.pipes.perBatch * 2
          const outputs = yield* Effect.scoped(
            Effect.flatMap(LocalExecutor.make(), (executor) =>
              Effect.forEach(
                Array.from({ length: processes }, (_, i) => i),
                (i) =>
                  Effect.map(
                    // every third with stdin piped too, on a socket pair
                    i % 3 === 0
                      ? run(["sh", "-c", `test -S /dev/stdin && test -p /dev/stdout && echo ${i}`], { pipeStdin: true })
                      : run(["sh", "-c", `test -p /dev/stdout && test -p /dev/stderr && echo ${i}`]),
                    (seen) => seen.stdout
                  ).pipe(Effect.provideService(Exec.Executor, executor)),
                { concurrency: 8 }
              ))
          )
          assert.deepStrictEqual(outputs, Array.from({ length: processes }, (_, i) => `${i}\n`))
          assert.deepStrictEqual(readdirSync(directory), [], "each batch's directory is gone")
          yield* awaitClosedSince(before)
        })
      ),
    60_000
  )

  it.live("a start that fails after taking its pipes closes them", () =>
    inOwnTmpdir(() =>
      Effect.gen(function*() {
        const before = openDescriptors()
        yield* Effect.scoped(Effect.gen(function*() {
          const pipes = yield* makeOutputPipes()
          const cwd = mkdtempSync(join(tmpdir(), "gone-"))
          const prepared = yield* prepareChild(
            { processId: freshId("gone"), argv: ["true"], cwd, env: { PATH: "/usr/bin:/bin" }, tty: false },
            { retainedBytes: 1024, baseEnvironment: {}, stdinWindowBytes: 1024, outputPipes: pipes },
            new Holdings()
          )
          // the working directory checked by the preparation is gone when the fork comes
          rmSync(cwd, { recursive: true })
          const exit = yield* Effect.exit(prepared.spawn(0))
          assert.isTrue(Exit.isFailure(exit), "the spawn failed")
          // the pipes the supply still holds are its own: one more start takes two of them
          const child = yield* spawn("echo still", pipes)
          assert.strictEqual(yield* stdoutOf(child), "still\n")
        }))
        yield* awaitClosedSince(before)
      })
    ))

  it.live("stdin stays a socket pair: a child that opens /dev/stdin after its input ended fails at once", () =>
    Effect.scoped(Effect.gen(function*() {
      // on a FIFO, that open would wait for a writer that never comes
      const executor = yield* LocalExecutor.make()
      const processId = freshId("late-stdin")
      yield* executor.start({
        processId,
        argv: ["sh", "-c", "read first; sleep 0.2; cat /dev/stdin; echo \"got $first, cat exited $?\""],
        cwd: "/tmp",
        env: { PATH: "/usr/bin:/bin" },
        tty: false,
        pipeStdin: true
      })
      assert.strictEqual(yield* executor.write({ processId, chunk: new TextEncoder().encode("line\n") }), "accepted")
      assert.strictEqual(yield* executor.closeStdin(processId), "accepted")
      const seen = yield* readUntilClosed(processId).pipe(Effect.provideService(Exec.Executor, executor))
      assert.strictEqual(seen.stdout, "got line, cat exited 1\n")
    })))

  it.live("where mkfifo cannot run, the supply says so and children get Node's socket pairs", () =>
    Effect.scoped(Effect.gen(function*() {
      const pipes = yield* makeOutputPipes({ mkfifo: "/nonexistent/mkfifo" })
      assert.isUndefined(yield* pipes.take(2))
      const child = yield* spawn("test -p /dev/stdout || echo socket", pipes)
      assert.strictEqual(yield* stdoutOf(child), "socket\n")
    })))

  it.live("the batch directories of dead processes are removed by the next executor's first batch", () =>
    inOwnTmpdir((directory) =>
      Effect.gen(function*() {
        const dead = spawnSync("true").pid!
        const leftByDead = join(directory, `effect-exec-pipes-${dead}-abc123`)
        const ofALiveOne = join(directory, `effect-exec-pipes-${process.ppid}-def456`)
        const notABatch = join(directory, "effect-exec-pipes-notes")
        for (const path of [leftByDead, ofALiveOne, notABatch]) mkdirSync(path)
        writeFileSync(join(leftByDead, "0"), "")
        yield* Effect.scoped(Effect.gen(function*() {
          const taken = yield* (yield* makeOutputPipes()).take(2)
          taken?.forEach((pipe) => pipe.close())
        }))
        assert.deepStrictEqual(readdirSync(directory).sort(), [ofALiveOne, notABatch].map((p) => basename(p)).sort())
      })
    ))

  it.live("a failure that may pass (no directory to make them in) gives socket pairs to that start only", () =>
    Effect.scoped(Effect.gen(function*() {
      const parent = yield* scratchDirectory("pipes-parent-")
      const directory = join(parent, "later")
      const pipes = yield* makeOutputPipes({ directory })
      assert.isUndefined(yield* pipes.take(2), "no such directory yet")
      mkdirSync(directory)
      const taken = yield* pipes.take(2)
      assert.strictEqual(taken?.length, 2, "made once there is")
      taken?.forEach((pipe) => pipe.close())
    })))

  it.live("a mkfifo that cannot make FIFOs: every start gets socket pairs, without asking it again", () =>
    Effect.scoped(Effect.gen(function*() {
      const scripts = yield* scratchDirectory()
      const runs = join(scripts, "runs")
      const refusing = fakeMkfifo(scripts, `echo run >> ${runs}; exit 1`)
      const pipes = yield* makeOutputPipes({ mkfifo: refusing })
      assert.isUndefined(yield* pipes.take(2))
      assert.isUndefined(yield* pipes.take(2))
      assert.strictEqual(readFileSync(runs, "utf8"), "run\n", "asked once")
    })))

  it.effect("a batch that hangs: at its deadline the start goes on with socket pairs, mkfifo is killed, its directory removed, and pipes stay off", () =>
    Effect.scoped(Effect.gen(function*() {
      const scripts = yield* scratchDirectory()
      const runs = join(scripts, "runs")
      const pidFile = join(scripts, "pid")
      // makes its FIFOs, then stops: a mkfifo hung in a TMPDIR that stopped answering
      const hanging = fakeMkfifo(
        scripts,
        `echo run >> ${runs}; /usr/bin/env mkfifo "$@" || exit 1; echo $$ > ${pidFile}.new; mv ${pidFile}.new ${pidFile}
kill -STOP $$`
      )
      yield* inOwnTmpdir((directory) =>
        Effect.gen(function*() {
          const before = openDescriptors()
          yield* Effect.scoped(Effect.gen(function*() {
            const pipes = yield* makeOutputPipes({ mkfifo: hanging })
            const start = yield* Effect.forkChild(
              Effect.flatMap(spawn("test -p /dev/stdout || echo socket", pipes), stdoutOf)
            )
            yield* awaitTrue(() => existsSync(pidFile), "mkfifo runs")
            const pid = Number(readFileSync(pidFile, "utf8"))
            yield* awaitTrue(() => processState(pid) === "T", "mkfifo hangs (stopped)")
            assert.lengthOf(readdirSync(directory), 1, "its batch directory, with the FIFOs in it")
            yield* TestClock.adjust(Defaults.pipes.batchTimeoutMillis - 1)
            yield* realTime(200)
            assert.isUndefined(start.pollUnsafe(), "the start waits for the batch until its deadline")
            yield* TestClock.adjust(1)
            assert.strictEqual(yield* joinWithin5s(start), "socket\n", "then goes on with a socket pair")
            yield* awaitDeath(pid)
            yield* awaitTrue(() => readdirSync(directory).length === 0, "the batch directory is removed")
            // a place that hung once is not asked again: later starts get socket pairs at once
            assert.isUndefined(yield* joinWithin5s(yield* Effect.forkChild(pipes.take(2))))
            assert.strictEqual(readFileSync(runs, "utf8"), "run\n", "mkfifo run once")
          }))
          yield* awaitClosedSince(before)
        })
      )
    })))

  it.effect("opens that hang: at the deadline the start goes on, and what they open late is closed", () =>
    Effect.scoped(Effect.gen(function*() {
      const scripts = yield* scratchDirectory()
      const made = join(scripts, "made")
      const go = join(scripts, "go")
      const blocker = join(scripts, "blocker")
      spawnSync("mkfifo", [blocker])
      // makes its FIFOs, then waits for the test to have filled libuv's threads: the opens come after
      const waiting = fakeMkfifo(
        scripts,
        `/usr/bin/env mkfifo "$@" || exit 1; echo $$ > ${made}.new; mv ${made}.new ${made}
while [ ! -e ${go} ]; do sleep 0.01; done`
      )
      yield* inOwnTmpdir((directory) =>
        Effect.gen(function*() {
          const before = openDescriptors()
          yield* Effect.scoped(Effect.gen(function*() {
            const pipes = yield* makeOutputPipes({ mkfifo: waiting })
            const taking = yield* Effect.forkChild(pipes.take(2))
            yield* awaitTrue(() => existsSync(made), "mkfifo made the FIFOs")
            const release = holdThreadPool(blocker)
            writeFileSync(go, "")
            yield* awaitDeath(Number(readFileSync(made, "utf8")))
            yield* realTime(200)
            assert.isUndefined(taking.pollUnsafe(), "the opens wait for a thread")
            yield* TestClock.adjust(Defaults.pipes.batchTimeoutMillis)
            assert.isUndefined(yield* joinWithin5s(taking), "the start goes on without pipes")
            yield* release
            yield* awaitTrue(() => readdirSync(directory).length === 0, "the batch directory is removed")
          }))
          // the open under way when the batch gave up ended later: its pipe is closed, as is every other
          yield* awaitClosedSince(before)
        })
      )
    })))

  it.effect("a batch's wait for its turn to fork is not counted in its time", () =>
    inOwnTmpdir((directory) =>
      Effect.scoped(Effect.gen(function*() {
        // forks of other starts hold the turn: a loaded executor, not a hung place
        const held = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        yield* Effect.forkChild(spawnTurn(Effect.andThen(Deferred.succeed(held, undefined), Deferred.await(release))))
        yield* Deferred.await(held)
        const pipes = yield* makeOutputPipes()
        const taking = yield* Effect.forkChild(pipes.take(2))
        yield* awaitTrue(() => readdirSync(directory).length === 1, "the batch made its directory")
        yield* realTime(200)
        yield* TestClock.adjust(2 * Defaults.pipes.batchTimeoutMillis)
        yield* realTime(200)
        assert.isUndefined(taking.pollUnsafe(), "the batch waits for its turn")
        yield* Deferred.succeed(release, undefined)
        const taken = yield* joinWithin5s(taking)
        assert.strictEqual(taken?.length, 2, "pipes, though the start waited longer than a batch's time")
        taken?.forEach((pipe) => pipe.close())
      }))
    ))

  it.live("closing the executor while a start waits for its pipes: the start gets socket pairs, nothing is left", () =>
    inOwnTmpdir((directory) =>
      Effect.gen(function*() {
        const before = openDescriptors()
        // one FIFO at a time: the executor closes while the batch is being made
        const scripts = mkdtempSync(join(tmpdir(), "fake-mkfifo-"))
        const slow = fakeMkfifo(scripts, "shift 3; for name; do /usr/bin/env mkfifo -m 600 \"$name\"; sleep 1; done")
        const scope = yield* Scope.make()
        const pipes = yield* Scope.provide(makeOutputPipes({ mkfifo: slow }), scope)
        const waiting = yield* Effect.forkChild(takeWithin5s(pipes))
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 200)))
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(yield* Fiber.join(waiting), Option.some(undefined), "the start goes on, on sockets")
        // and a start that comes later does not wait for a batch that will never be made
        assert.deepStrictEqual(yield* takeWithin5s(pipes), Option.some(undefined))
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 300)))
        rmSync(scripts, { recursive: true, force: true })
        assert.deepStrictEqual(readdirSync(directory), [], "no batch directory, no FIFO left behind")
        yield* awaitClosedSince(before)
      })
    ))

  it.live("an executor closed in the turns after a start asked for pipes: the start is answered", () =>
    Effect.gen(function*() {
      // the batch's fiber may not have begun to run: interrupted then, it runs nothing of its own
      for (let turns = 0; turns < 4; turns++) {
        const scope = yield* Scope.make()
        const pipes = yield* Scope.provide(makeOutputPipes(), scope)
        const waiting = yield* Effect.forkDetach(takeWithin5s(pipes))
        for (let turn = 0; turn < turns; turn++) yield* Effect.yieldNow
        yield* Scope.close(scope, Exit.void)
        const taken = yield* Fiber.join(waiting)
        assert.isTrue(Option.isSome(taken), `answered (closed after ${turns} turns)`)
        if (Option.isSome(taken)) taken.value?.forEach((pipe) => pipe.close())
      }
    }))

  it.live(
    "executors closed while their first batch is being made leave no directory of FIFOs behind, nor a pipe open",
    () =>
      inOwnTmpdir((directory) =>
        Effect.gen(function*() {
          const before = openDescriptors()
          // mkfifo still at work while the directory is removed would fill it again; opens under way when the
          // executor closes are not waited for, and close what they opened once they end
          for (let i = 0; i < 100; i++) {
            const scope = yield* Scope.make()
            const pipes = yield* Scope.provide(makeOutputPipes(), scope)
            yield* Effect.forkDetach(pipes.take(2))
            yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, i % 4)))
            yield* Scope.close(scope, Exit.void)
          }
          assert.deepStrictEqual(readdirSync(directory), [])
          yield* awaitClosedSince(before)
        })
      ),
    60_000
  )

  it.live("a batch directory replaced by links before the opens: no pipes, and the file linked to is not written", () =>
    inOwnTmpdir((directory) =>
      Effect.gen(function*() {
        // what another user could do in a TMPDIR without the sticky bit
        const victim = join(directory, "victim.txt")
        writeFileSync(victim, "kept\n")
        const swapping = fakeMkfifo(
          mkdtempSync(join(tmpdir(), "fake-mkfifo-")),
          `/usr/bin/env mkfifo "$@" || exit 1; shift 3; dir=$(dirname "$1"); mv "$dir" "$dir.moved"; mkdir "$dir"
for name; do ln -s ${victim} "$name"; done`
        )
        const pipes = yield* makeOutputPipes({ mkfifo: swapping })
        assert.deepStrictEqual(yield* takeWithin5s(pipes), Option.some(undefined))
        const child = yield* spawn("echo child output", pipes)
        assert.strictEqual(yield* stdoutOf(child), "child output\n")
        assert.strictEqual(readFileSync(victim, "utf8"), "kept\n")
      }).pipe(Effect.scoped)
    ))

  it.live("a fork of mkfifo that throws: the start gets socket pairs, and no batch after batch", () =>
    Effect.scoped(Effect.gen(function*() {
      // spawn throws (here a NUL in the name; a fork failing with ENOMEM does too)
      const pipes = yield* makeOutputPipes({ mkfifo: "mk\0fifo" })
      assert.deepStrictEqual(yield* takeWithin5s(pipes), Option.some(undefined))
    })))
})

const MiB = 1024 * 1024

/** Spawns `argv` on pipes from `pipes`, its output read into slabs and lent, as an exec-server's executor does. */
const spawnLending = (
  pipes: OutputPipes,
  processId: string,
  argv: ReadonlyArray<string>,
  options: { readonly retainedBytes: number; readonly backpressure?: boolean }
) =>
  Effect.flatMap(
    prepareChild(
      {
        processId,
        argv,
        cwd: "/tmp",
        env: { PATH: "/usr/bin:/bin" },
        tty: false,
        backpressure: options.backpressure === true
      },
      {
        retainedBytes: options.retainedBytes,
        baseEnvironment: {},
        stdinWindowBytes: 1024,
        lendOutput: true,
        outputPipes: pipes
      },
      new Holdings()
    ),
    (prepared) => prepared.spawn(0)
  )

describe("reads of a writer that is ahead", () => {
  // a read of a pipe takes at most what it holds (64 KiB): a larger chunk is reads joined
  it.live("join into chunks larger than a pipe holds, none larger than a read buffer, every byte kept", () =>
    Effect.scoped(Effect.gen(function*() {
      const pipes = yield* makeOutputPipes()
      const total = 32 * 1024 * 1024
      const file = join(
        yield* scratchDirectory("ahead-"),
        "random"
      )
      const written = randomBytes(total)
      writeFileSync(file, written)
      const child = yield* spawnLending(pipes, "ahead", ["cat", file], { backpressure: true, retainedBytes: 4 * MiB })
      const sizes: Array<number> = []
      const hash = createHash("sha256")
      let afterSeq = 0
      while (true) {
        const result = yield* longPollRead(child.log, { processId: "ahead", afterSeq, maxBytes: null, waitMs: 1_000 })
        // the chunks are lent: hashed before the acknowledgement lets their memory be reused
        for (const { chunk } of result.chunks) {
          sizes.push(chunk.length)
          hash.update(chunk)
        }
        afterSeq = result.nextSeq - 1
        child.acknowledge(afterSeq, 0)
        if (result.closed) break
      }
      assert.strictEqual(sizes.reduce((a, b) => a + b, 0), total, "every byte arrived")
      assert.strictEqual(hash.digest("hex"), createHash("sha256").update(written).digest("hex"), "each in its place")
      assert.isAbove(Math.max(...sizes), Defaults.pipes.fullReadBytes, "reads joined")
      assert.isAtMost(Math.max(...sizes), Defaults.pipes.readBufferBytes)
    })))

  it.live("a read that filled the pipe goes on in the next turn, not with the next read", () =>
    Effect.scoped(Effect.gen(function*() {
      const pipes = yield* makeOutputPipes()
      const processId = freshId("filled")
      // exactly what a pipe holds, in one write, then nothing for a long while
      const script = `dd if=/dev/zero bs=${Defaults.pipes.fullReadBytes} count=1 status=none; sleep 10`
      const child = yield* spawnLending(pipes, processId, ["sh", "-c", script], { retainedBytes: MiB })
      let received = 0
      let afterSeq = 0
      const started = Date.now()
      // up to 9 s, for a start on a busy machine: still before the child's sleep ends, which would end the read too
      while (received < Defaults.pipes.fullReadBytes && Date.now() - started < 9_000) {
        const result = yield* longPollRead(child.log, { processId, afterSeq, maxBytes: null, waitMs: 500 })
        received += result.chunks.reduce((n, c) => n + c.chunk.length, 0)
        afterSeq = result.nextSeq - 1
      }
      assert.strictEqual(received, Defaults.pipes.fullReadBytes, "all of it, while the child sleeps")
      child.signalGroup("SIGKILL")
    })))
})
