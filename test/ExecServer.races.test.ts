/**
 * The server's bookkeeping of processes where requests race one another or a
 * connection: a start that a closing connection interrupts, and a process id
 * used again while the notifier of its previous process is still running.
 * Whatever the order, every process the executor started belongs to a
 * session, is counted against the limits, and dies when its session ends.
 *
 * The races are made deterministic by executors that wrap a real local one
 * and hold one step until the test lets it go.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Executor, type StartRequest } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { awaitDeath, isAlive } from "./support/processes.ts"
import { connect, handshake, pollUntil, startParams } from "./support/wireClient.ts"

/** A scratch directory for the test's scope. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "races-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** argv that writes the shell's pid to `pidFile`, then sleeps long past any test. */
const sleeper = (pidFile: string) => ["sh", "-c", `echo $$ > '${pidFile}'; exec sleep 60`]

/** The pid a `sleeper` wrote, once it is there. */
const pidIn = (pidFile: string) =>
  Effect.andThen(
    pollUntil(`${pidFile} written`, () => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n")),
    Effect.sync(() => Number(readFileSync(pidFile, "utf8")))
  )

/** Kills what a failing test left behind. */
const killOnExit = (pidFile: string) =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      if (!existsSync(pidFile)) return
      const pid = Number(readFileSync(pidFile, "utf8"))
      if (pid > 0 && isAlive(pid)) process.kill(pid, "SIGKILL")
    })
  )

/**
 * The end of process `processId` of session `sessionId` once it exited (a
 * killed one within seconds), asked of the server's executor once it knows
 * the process: a process
 * killed before it could write its pid is seen too.
 */
const exitOf = (executor: Executor["Service"], sessionId: string, processId: string) =>
  executor.read({ processId: `${sessionId}/${processId}`, afterSeq: 0, maxBytes: 0, waitMs: 1_000 }).pipe(
    // not known until the start reaches the executor
    Effect.retry({ times: 100, schedule: Schedule.spaced("50 millis") }),
    Effect.repeat({ until: (read) => read.exited, times: 10 }),
    Effect.filterOrFail((read) => read.exited, () => new Error(`${processId} still running after 10 s`))
  )

/** A server in this scope over `executor`. */
const serve = (executor: Executor["Service"], options: WebSocketListener.Options) =>
  Effect.provideService(WebSocketListener.listen(options), Executor, executor)

describe("ExecServer: a start racing a disconnect", () => {
  /**
   * A local executor whose start of a process the client calls `orphan`
   * waits, uninterruptibly as a spawn does, until `gate` opens. A long-poll
   * read of `witness` says when it is interrupted: the connection closed,
   * and every request of that connection was interrupted at once.
   */
  const held = (
    local: Executor["Service"],
    signals: {
      readonly entered: Deferred.Deferred<void>
      readonly gate: Deferred.Deferred<void>
      readonly witnessInterrupted: Deferred.Deferred<void>
    }
  ): Executor["Service"] => ({
    ...local,
    start: (request: StartRequest) =>
      !request.processId.endsWith("/orphan") ? local.start(request) : Effect.uninterruptible(
        Effect.gen(function*() {
          Deferred.doneUnsafe(signals.entered, Effect.void)
          yield* Deferred.await(signals.gate)
          return yield* local.start(request)
        })
      ),
    read: (request) =>
      !request.processId.endsWith("/witness") ? local.read(request) : local.read(request).pipe(
        Effect.onInterrupt(() => Deferred.done(signals.witnessInterrupted, Exit.void))
      )
  })

  it.live(
    "a process spawned after its connection closed is ended at once and its slot given back: no orphan",
    () =>
      Effect.gen(function*() {
        const pidFile = join(yield* scratch, "pid")
        yield* killOnExit(pidFile)
        const signals = {
          entered: yield* Deferred.make<void>(),
          gate: yield* Deferred.make<void>(),
          witnessInterrupted: yield* Deferred.make<void>()
        }
        const local = yield* LocalExecutor.make()
        // a session TTL far beyond the test: only the server's own cleanup can end the process in time
        const { url } = yield* serve(held(local, signals), { sessionTtl: "10 minutes", maxProcesses: 2 })
        const dropped = yield* connect(url)
        const { sessionId } = yield* handshake(dropped)
        yield* dropped.call("process/start", startParams("witness", ["sleep", "60"]))
        yield* dropped.send("process/read", { processId: "witness", afterSeq: 0, waitMs: 60_000 })
        yield* dropped.send("process/start", startParams("orphan", sleeper(pidFile)))
        yield* Deferred.await(signals.entered)
        yield* dropped.close
        // the start's request is interrupted now, while its spawn is under way
        yield* Deferred.await(signals.witnessInterrupted)
        yield* Deferred.succeed(signals.gate, undefined)
        // the spawn completes all the same; nobody was told of it, so it is ended, not left running
        assert.strictEqual((yield* exitOf(local, sessionId, "orphan")).exitCode, 137, "killed")

        // its slot is given back: with the witness, the server has room for one more
        const other = yield* connect(url)
        yield* handshake(other)
        const accepted = yield* other.request("process/start", startParams("third", ["true"])).pipe(
          Effect.filterOrFail((frame) => frame.error === undefined),
          Effect.retry({ times: 100, schedule: Schedule.spaced("100 millis") })
        )
        assert.deepStrictEqual(accepted.result, { processId: "third", sandboxType: "none" })

        // the session's client comes back: its witness runs, the start it never saw answered was ended
        const resumed = yield* connect(url)
        yield* handshake(resumed, { resumeSessionId: sessionId })
        const witness = yield* resumed.call("process/read", { processId: "witness", afterSeq: 0, waitMs: 0 })
        assert.isFalse(witness.exited)
        const orphan = yield* resumed.call("process/read", { processId: "orphan", afterSeq: 0, waitMs: 0 })
        assert.isTrue(orphan.exited)
      }),
    30_000
  )

  it.live(
    "a process whose start the executor answers with an interruption is terminated at once",
    () =>
      Effect.gen(function*() {
        const pidFile = join(yield* scratch, "pid")
        yield* killOnExit(pidFile)
        const local = yield* LocalExecutor.make()
        const interrupting: Executor["Service"] = {
          ...local,
          start: (request) => Effect.andThen(local.start(request), Effect.interrupt)
        }
        // a session TTL far beyond the test: only the server's own cleanup can end the process in time
        const { url } = yield* serve(interrupting, { sessionTtl: "10 minutes" })
        const client = yield* connect(url)
        const { sessionId } = yield* handshake(client)
        yield* client.send("process/start", startParams("orphan", sleeper(pidFile)))
        assert.strictEqual((yield* exitOf(local, sessionId, "orphan")).exitCode, 137, "killed")
      }),
    30_000
  )
})

describe("ExecServer: a process id used again", () => {
  it.live(
    "a new process with the id of one whose notifier is still running stays the session's",
    () =>
      Effect.gen(function*() {
        const pidFile = join(yield* scratch, "pid")
        yield* killOnExit(pidFile)
        const gate = yield* Deferred.make<void>()
        // the executor forgets a closed process at once, so its id may be used again
        const local = yield* LocalExecutor.make({ closedRetention: "100 millis" })
        let followed = 0
        const lateNotifier: Executor["Service"] = {
          ...local,
          // the first process's events end only once the gate opens: its notifier outlives it
          events: (processId, options) =>
            processId.endsWith("/reused") && followed++ === 0
              ? Stream.concat(local.events(processId, options), Stream.fromEffectDrain(Deferred.await(gate)))
              : local.events(processId, options)
        }
        const { url } = yield* serve(lateNotifier, { sessionTtl: "500 millis" })
        const client = yield* connect(url)
        yield* handshake(client)
        yield* client.call("process/start", startParams("reused", ["true"]))
        yield* client.notification("process/closed", "reused")
        const again = yield* client.request("process/start", startParams("reused", sleeper(pidFile))).pipe(
          Effect.filterOrFail((frame) => frame.error === undefined),
          Effect.retry({ times: 100, schedule: Schedule.spaced("50 millis") })
        )
        assert.deepStrictEqual(again.result, { processId: "reused", sandboxType: "none" })
        const pid = yield* pidIn(pidFile)
        // the first process's notifier ends now: it must leave the second process's entry alone
        yield* Deferred.succeed(gate, undefined)
        yield* client.close
        yield* awaitDeath(pid, 10_000)
      }),
    30_000
  )
})

describe("ExecServer: the process starts of one session take turns", () => {
  it.live("one at a time in a session, while another session's start goes ahead", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const local = yield* LocalExecutor.make()
      let entered: Array<string> = []
      let running = 0
      let mostAtOnce = 0
      // the starts of processes called a… wait for the gate, counted while they run
      const counting: Executor["Service"] = {
        ...local,
        start: (request) => {
          const name = request.processId.slice(request.processId.lastIndexOf("/") + 1)
          if (!name.startsWith("a")) return local.start(request)
          return Effect.gen(function*() {
            entered = [...entered, name]
            mostAtOnce = Math.max(mostAtOnce, ++running)
            yield* Deferred.await(gate)
            return yield* local.start(request)
          }).pipe(Effect.ensuring(Effect.sync(() => running--)))
        }
      }
      const { url } = yield* serve(counting, {})
      const first = yield* connect(url)
      yield* handshake(first)
      for (const name of ["a1", "a2", "a3"]) yield* first.send("process/start", startParams(name, ["true"]))
      // answered after the three starts were taken in: had they not waited for turns, they would be under way
      yield* first.callError("process/read", { processId: "nobody", afterSeq: 0, waitMs: 0 })
      yield* pollUntil("the first start under way", () => entered.length === 1)
      const other = yield* connect(url)
      yield* handshake(other)
      assert.deepStrictEqual(yield* other.call("process/start", startParams("b1", ["true"])), {
        processId: "b1",
        sandboxType: "none"
      })
      assert.deepStrictEqual(entered, ["a1"], "the session's other starts wait for its turn")
      yield* Deferred.succeed(gate, undefined)
      for (const name of ["a1", "a2", "a3"]) {
        yield* first.waitFor(`${name} started`, (f) => f.result?.processId === name)
      }
      assert.deepStrictEqual(entered, ["a1", "a2", "a3"])
      assert.strictEqual(mostAtOnce, 1)
    }))
})

describe("ExecServer: requests behind a start", () => {
  it.live("a terminate sent right behind a start still waiting for its turn ends the process it starts", () =>
    Effect.gen(function*() {
      const pidFile = join(yield* scratch, "pid")
      yield* killOnExit(pidFile)
      const gate = yield* Deferred.make<void>()
      const local = yield* LocalExecutor.make()
      // the start of "first" holds the session's turn until the gate opens
      const holding: Executor["Service"] = {
        ...local,
        start: (request) =>
          request.processId.endsWith("/first")
            ? Effect.andThen(Deferred.await(gate), local.start(request))
            : local.start(request)
      }
      const { url } = yield* serve(holding, {})
      const client = yield* connect(url)
      const { sessionId } = yield* handshake(client)
      yield* client.send("process/start", startParams("first", ["true"]))
      const started = yield* client.send("process/start", startParams("x", sleeper(pidFile)))
      const terminated = yield* client.send("process/terminate", { processId: "x" })
      // x has not started yet: the terminate waits for its start instead of answering that nothing runs
      yield* client.callError("process/read", { processId: "nobody", afterSeq: 0, waitMs: 0 })
      assert.isFalse(existsSync(pidFile))
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual((yield* client.reply(started)).result, { processId: "x", sandboxType: "none" })
      assert.deepStrictEqual((yield* client.reply(terminated)).result, { running: true })
      assert.strictEqual((yield* exitOf(local, sessionId, "x")).exitCode, 137, "killed")
    }))

  it.live("a connection that closes while a start is still being prepared detaches its session at once", () =>
    Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const local = yield* LocalExecutor.make()
      // a preparation that never ends (a hung mount), interruptible as the local executor's is
      const hung: Executor["Service"] = {
        ...local,
        start: (request) =>
          !request.processId.endsWith("/hung") ? local.start(request) : Deferred.succeed(entered, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
      }
      const { url } = yield* serve(hung, { sessionTtl: "10 minutes" })
      const dropped = yield* connect(url)
      const { sessionId } = yield* handshake(dropped)
      yield* dropped.send("process/start", startParams("hung", ["true"]))
      yield* Deferred.await(entered)
      yield* dropped.close
      // a start that cannot be interrupted would hold the session attached forever
      yield* Deferred.await(interrupted).pipe(
        Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die("the start was not interrupted") })
      )
      // the session is free to resume: not held attached by a start that cannot end
      const resumed = yield* connect(url)
      yield* handshake(resumed, { resumeSessionId: sessionId })
      assert.deepStrictEqual(yield* resumed.call("process/start", startParams("next", ["true"])), {
        processId: "next",
        sandboxType: "none"
      })
    }))
})

describe("ExecServer: a start of an id in use", () => {
  it.live("a duplicate start cut off by its connection leaves the process that holds the id running", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const entered = yield* Deferred.make<void>()
      // an executor that answers later (one that relays to another host): a second start of x is still in it when
      // the connection closes
      let startsOfX = 0
      const relaying: Executor["Service"] = {
        ...local,
        start: (request) =>
          request.processId.endsWith("/x") && ++startsOfX === 2
            ? Effect.andThen(Deferred.succeed(entered, undefined), Effect.andThen(Effect.never, local.start(request)))
            : local.start(request)
      }
      const { url } = yield* serve(relaying, { sessionTtl: "10 minutes" })
      const first = yield* connect(url)
      const { sessionId } = yield* handshake(first)
      yield* first.call("process/start", startParams("x", ["sleep", "60"]))
      const duplicate = yield* first.request("process/start", startParams("x", ["sleep", "60"]))
      // refused by the server, the executor never asked: nothing to cut off
      assert.strictEqual(duplicate.error?.code, -32600)
      assert.strictEqual(duplicate.error?.message, "process x already exists")
      assert.strictEqual(startsOfX, 1)
      yield* first.close
      const resumed = yield* connect(url)
      yield* handshake(resumed, { resumeSessionId: sessionId })
      const read = yield* resumed.call("process/read", { processId: "x", afterSeq: 0, waitMs: 0 })
      assert.isFalse(read.exited, "x still runs")
      yield* resumed.call("process/terminate", { processId: "x" })
    }))

  it.live("a terminate behind a failed start and a retried one ends the process the retry starts", () =>
    Effect.gen(function*() {
      const local = yield* LocalExecutor.make()
      const { url } = yield* serve(local, {})
      const client = yield* connect(url)
      const { sessionId } = yield* handshake(client)
      const failed = yield* client.send("process/start", startParams("x", ["sleep", "60"], { cwd: "/nonexistent/dir" }))
      const retried = yield* client.send("process/start", startParams("x", ["sleep", "60"]))
      const terminated = yield* client.send("process/terminate", { processId: "x" })
      assert.isDefined((yield* client.reply(failed)).error)
      assert.deepStrictEqual((yield* client.reply(retried)).result, { processId: "x", sandboxType: "none" })
      assert.deepStrictEqual((yield* client.reply(terminated)).result, { running: true })
      assert.strictEqual((yield* exitOf(local, sessionId, "x")).exitCode, 137, "killed")
    }))
})
