/**
 * Real pipes for a child's stdio. Node gives a child's stdio as Unix socket
 * pairs (libuv's choice), and a child sees the difference: a socket cannot be
 * opened again by its name, so `echo x > /dev/stderr` or `cat /dev/stdin`
 * fail with "No such device or address", where Codex's children (and a
 * terminal's pipelines) have pipes. A socket pair also costs about twice the kernel time
 * per byte that a pipe does (bench/README.md, "Real pipes").
 *
 * Node has no `pipe()`, but a named pipe (FIFO) opened at both ends and then
 * unlinked is an ordinary pipe. `mkfifo` makes them in batches, in a private
 * directory that is emptied and removed before the batch is handed out:
 * nothing stays on disk, and the executor holds a batch of open pipes for the
 * next starts, making the next batch while the last ones are taken. Where
 * `mkfifo` cannot run (no such program, no temporary directory), the supply
 * says so, and for the rest of the executor's life its children get Node's
 * socket pairs.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as NodeChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Defaults from "../defaults.ts"
import { spawnTurn } from "./spawnTurns.ts"

/** An end of a pipe: the one bytes are read from, or the one they are written to. */
export type PipeEnd = "read" | "write"

/**
 * One pipe, both ends open in this process (blocking, as a child expects its
 * stdio; the socket this process reads or writes its own end through makes
 * that one non-blocking). The child gets one end, this process keeps the
 * other: each end is closed once, `-1` marks one given away or closed.
 */
export class ChildPipe {
  readFd: number
  writeFd: number

  constructor(readFd: number, writeFd: number) {
    this.readFd = readFd
    this.writeFd = writeFd
  }

  /** Gives `end` away (to the socket that will close it). */
  take(end: PipeEnd): number {
    const fd = end === "read" ? this.readFd : this.writeFd
    this.forget(end)
    return fd
  }

  /** Closes `end` in this process (the child has its own copy once spawned). */
  closeEnd(end: PipeEnd): void {
    const fd = end === "read" ? this.readFd : this.writeFd
    if (fd >= 0) closeQuietly(fd)
    this.forget(end)
  }

  /** Closes whatever of the pipe is still ours. */
  close(): void {
    this.closeEnd("read")
    this.closeEnd("write")
  }

  private forget(end: PipeEnd): void {
    if (end === "read") this.readFd = -1
    else this.writeFd = -1
  }
}

const closeQuietly = (fd: number): void => {
  try {
    Fs.closeSync(fd)
  } catch {
    // already closed: nothing to give back
  }
}

/** Pipes for the starts of one executor. */
export interface ChildPipes {
  /**
   * `count` pipes, made now if none are ready; `undefined` when this system
   * cannot make them (the child gets socket pairs instead).
   */
  readonly take: (count: number) => Effect.Effect<ReadonlyArray<ChildPipe> | undefined>
}

/**
 * Makes the pipe supply of an executor in the current scope (its first batch
 * comes with the first start that takes a pipe): closing the scope closes the
 * pipes nobody took. `mkfifo` is the program that makes them (found on
 * `PATH`).
 */
export const makeChildPipes = (mkfifo = "mkfifo"): Effect.Effect<ChildPipes, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ready: Array<ChildPipe> = []
    let unavailable = false
    let batch: Deferred.Deferred<void> | undefined
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const pipe of ready.splice(0)) pipe.close()
      })
    )

    /** The batch being made, started if none is. */
    const nextBatch: Effect.Effect<Deferred.Deferred<void>> = Effect.suspend(() => {
      if (batch !== undefined) return Effect.succeed(batch)
      const made = Deferred.makeUnsafe<void>()
      batch = made
      return makeBatch(mkfifo, Defaults.pipes.perBatch, (pipes) => ready.push(...pipes)).pipe(
        Effect.catch(() => Effect.sync(() => (unavailable = true))),
        Effect.ensuring(Effect.sync(() => {
          batch = undefined
          Deferred.doneUnsafe(made, Effect.void)
        })),
        Effect.forkIn(scope),
        Effect.as(made)
      )
    })

    const take = (count: number): Effect.Effect<ReadonlyArray<ChildPipe> | undefined> =>
      Effect.gen(function*() {
        while (!unavailable && ready.length < count) yield* Deferred.await(yield* nextBatch)
        if (unavailable) return undefined
        const taken = ready.splice(0, count)
        if (ready.length < Defaults.pipes.lowWater) yield* nextBatch
        return taken
      })

    return { take }
  })

/**
 * `count` pipes from one run of `mkfifo`, given to `add` as soon as they are
 * open (in the same step, so that none is lost to an interruption); fails
 * when it cannot run or make them.
 */
const makeBatch = (
  mkfifo: string,
  count: number,
  add: (pipes: ReadonlyArray<ChildPipe>) => void
): Effect.Effect<void, Error> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: () => Fs.promises.mkdtemp(Path.join(Os.tmpdir(), "effect-exec-pipes-")),
      catch: (cause) => new Error("no private directory for pipes", { cause })
    }),
    (directory) => {
      const names = Array.from({ length: count }, (_, index) => Path.join(directory, String(index)))
      return Effect.andThen(
        runMkfifo(mkfifo, names),
        Effect.try({ try: () => add(openPipes(names)), catch: (cause) => new Error("cannot open pipes", { cause }) })
      )
    },
    (directory) => Effect.promise(() => Fs.promises.rm(directory, { recursive: true, force: true }).catch(() => {}))
  )

/** Opens every FIFO of `names` (see `openPipe`); if one cannot be, closes those opened before it. */
const openPipes = (names: ReadonlyArray<string>): ReadonlyArray<ChildPipe> => {
  const pipes: Array<ChildPipe> = []
  try {
    for (const name of names) pipes.push(openPipe(name))
    return pipes
  } catch (error) {
    for (const pipe of pipes) pipe.close()
    throw error
  }
}

/**
 * Opens a FIFO at both ends, both blocking. An end opened alone would wait
 * for the other, so a non-blocking read end holds the FIFO open while the
 * write end and then the blocking read end open (each finding its other end
 * there), and is closed after. Node opens every end close-on-exec: only the
 * child an end is given to inherits it. Once the batch's directory is
 * removed, the two ends are all there is of the pipe.
 */
const openPipe = (name: string): ChildPipe => {
  const holder = Fs.openSync(name, Fs.constants.O_RDONLY | Fs.constants.O_NONBLOCK)
  try {
    const writeFd = Fs.openSync(name, Fs.constants.O_WRONLY)
    try {
      return new ChildPipe(Fs.openSync(name, Fs.constants.O_RDONLY), writeFd)
    } catch (error) {
      closeQuietly(writeFd)
      throw error
    }
  } finally {
    closeQuietly(holder)
  }
}

/** Runs `mkfifo` (a fork of this process, so in a spawn turn) for `names`, readable and writable by this user only. */
const runMkfifo = (mkfifo: string, names: ReadonlyArray<string>): Effect.Effect<void, Error> =>
  Effect.flatMap(
    spawnTurn(Effect.callback<NodeChildProcess.ChildProcess, Error>((resume) => {
      const child = NodeChildProcess.spawn(mkfifo, ["-m", "600", "--", ...names], { stdio: "ignore" })
      child.once("error", (cause) => resume(Effect.fail(new Error("mkfifo did not start", { cause }))))
      child.once("spawn", () => resume(Effect.succeed(child)))
    })),
    (child) =>
      Effect.callback<void, Error>((resume) => {
        const exited = (code: number | null) =>
          resume(code === 0 ? Effect.void : Effect.fail(new Error(`mkfifo exited with ${code}`)))
        if (child.exitCode !== null || child.signalCode !== null) return exited(child.exitCode)
        child.once("exit", exited)
      })
  )
