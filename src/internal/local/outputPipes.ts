/**
 * Real pipes for a child's stdout and stderr. Node gives a child's stdio as
 * Unix socket pairs (libuv's choice), and a child sees the difference: a
 * socket cannot be opened again by its name, so `echo x > /dev/stderr` fails
 * with "No such device or address", where Codex's children (and a terminal's
 * pipelines) have pipes. A socket pair also costs about twice the kernel time
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
 * Not stdin: a FIFO differs from a pipe in one way, and for input it matters.
 * Opening it to read waits for a writer, so a child that opens `/dev/stdin`
 * after its input ended (`printf x | effect-exec run -- sh -c 'sleep 1; cat
 * /dev/stdin'`) would wait forever; on a socket pair that open fails at once.
 * Output has no such case: this process holds the read end until every
 * writer is gone.
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

/**
 * One pipe: the read end is ours (non-blocking, for the event loop), the
 * write end the child's (blocking, as a program expects its stdout). Each end
 * is closed once; `-1` marks an end given away or closed.
 */
export class OutputPipe {
  readFd: number
  writeFd: number

  constructor(readFd: number, writeFd: number) {
    this.readFd = readFd
    this.writeFd = writeFd
  }

  /** Closes the write end in this process (the child has its own copy once spawned). */
  closeWriteEnd(): void {
    if (this.writeFd >= 0) closeQuietly(this.writeFd)
    this.writeFd = -1
  }

  /** Gives the read end away (to the reader that will close it). */
  takeReadEnd(): number {
    const fd = this.readFd
    this.readFd = -1
    return fd
  }

  /** Closes whatever of the pipe is still ours. */
  close(): void {
    this.closeWriteEnd()
    if (this.readFd >= 0) closeQuietly(this.readFd)
    this.readFd = -1
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
export interface OutputPipes {
  /**
   * `count` pipes, made now if none are ready; `undefined` when this system
   * cannot make them (the child gets socket pairs instead).
   */
  readonly take: (count: number) => Effect.Effect<ReadonlyArray<OutputPipe> | undefined>
}

/**
 * Makes the pipe supply of an executor in the current scope (its first batch
 * comes with the first start that takes a pipe): closing the scope closes the
 * pipes nobody took. `mkfifo` is the program that makes them (found on
 * `PATH`).
 */
export const makeOutputPipes = (mkfifo = "mkfifo"): Effect.Effect<OutputPipes, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ready: Array<OutputPipe> = []
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
        // a defect too (a fork that throws): otherwise every start would make batch after batch, in a loop
        Effect.catchCause(() => Effect.sync(() => (unavailable = true))),
        Effect.forkIn(scope),
        // however its fiber ends: interrupted by the executor's closing, even before it began to run
        Effect.map((fiber) => {
          fiber.addObserver(() => {
            batch = undefined
            Deferred.doneUnsafe(made, Effect.void)
          })
          return made
        })
      )
    })

    /**
     * Whether the executor is closing: a batch forked into its closed scope
     * would never run (nor end), so none is made any more, and a start still
     * under way gets socket pairs.
     */
    const closing = () => scope.state._tag === "Closed"

    const take = (count: number): Effect.Effect<ReadonlyArray<OutputPipe> | undefined> =>
      Effect.gen(function*() {
        while (ready.length < count) {
          if (unavailable || closing()) return undefined
          yield* Deferred.await(yield* nextBatch)
        }
        const taken = ready.splice(0, count)
        if (ready.length < Defaults.pipes.lowWater && !closing()) yield* nextBatch
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
  add: (pipes: ReadonlyArray<OutputPipe>) => void
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
const openPipes = (names: ReadonlyArray<string>): ReadonlyArray<OutputPipe> => {
  const pipes: Array<OutputPipe> = []
  try {
    for (const name of names) pipes.push(openPipe(name))
    return pipes
  } catch (error) {
    for (const pipe of pipes) pipe.close()
    throw error
  }
}

/**
 * Opens a FIFO at both ends: the read end without blocking (nothing writes
 * yet), then the write end, which finds a reader and so returns at once,
 * blocking as the child wants it. Node opens both close-on-exec: only the
 * child the write end is given to inherits it. Once the batch's directory is
 * removed, the two ends are all there is of the pipe.
 *
 * The directory is ours and private, but in a `TMPDIR` others may write into
 * (no sticky bit) they can put a directory of theirs in its place between
 * `mkfifo` and these opens: a FIFO of theirs would hand them the child's
 * output, a link to a file would have the child write into that file. So the
 * name is not followed if it is a link, the read end must be a FIFO of this
 * user, and the write end is that same FIFO: opened through the read end's
 * descriptor where `/proc` shows it (Linux: no name to swap), else by name,
 * and compared.
 */
const openPipe = (name: string): OutputPipe => {
  const readFd = Fs.openSync(name, Fs.constants.O_RDONLY | Fs.constants.O_NONBLOCK | Fs.constants.O_NOFOLLOW)
  let writeFd = -1
  try {
    const read = Fs.fstatSync(readFd)
    if (!read.isFIFO() || read.uid !== process.geteuid?.()) throw new Error(`${name} is not the FIFO mkfifo made`)
    const byDescriptor = `/proc/self/fd/${readFd}`
    writeFd = Fs.existsSync(byDescriptor)
      ? Fs.openSync(byDescriptor, Fs.constants.O_WRONLY)
      : Fs.openSync(name, Fs.constants.O_WRONLY | Fs.constants.O_NOFOLLOW)
    const write = Fs.fstatSync(writeFd)
    if (write.dev !== read.dev || write.ino !== read.ino) throw new Error(`${name} is not the FIFO mkfifo made`)
    return new OutputPipe(readFd, writeFd)
  } catch (error) {
    closeQuietly(readFd)
    if (writeFd >= 0) closeQuietly(writeFd)
    throw error
  }
}

/**
 * Runs `mkfifo` (a fork of this process, so in a spawn turn) for `names`,
 * readable and writable by this user only. Interrupted (the executor
 * closing), it kills `mkfifo` and waits until it is gone: the batch's
 * directory is removed next, and a `mkfifo` still at work would leave it
 * behind, full of FIFOs.
 */
const runMkfifo = (mkfifo: string, names: ReadonlyArray<string>): Effect.Effect<void, Error> =>
  Effect.flatMap(
    spawnTurn(Effect.callback<NodeChildProcess.ChildProcess, Error>((resume) => {
      let child: NodeChildProcess.ChildProcess
      try {
        child = NodeChildProcess.spawn(mkfifo, ["-m", "600", "--", ...names], { stdio: "ignore" })
      } catch (cause) {
        return resume(Effect.fail(new Error("mkfifo did not start", { cause })))
      }
      child.once("error", (cause) => resume(Effect.fail(new Error("mkfifo did not start", { cause }))))
      child.once("spawn", () => resume(Effect.succeed(child)))
      return killAndAwait(child)
    })),
    (child) =>
      Effect.callback<void, Error>((resume) => {
        const exited = (code: number | null) =>
          resume(code === 0 ? Effect.void : Effect.fail(new Error(`mkfifo exited with ${code}`)))
        if (child.exitCode !== null || child.signalCode !== null) return exited(child.exitCode)
        child.once("exit", exited)
        return killAndAwait(child)
      })
  )

/** Kills `child` and completes once it is gone (its `close`: after its exit, or its failure to start). */
const killAndAwait = (child: NodeChildProcess.ChildProcess): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    child.once("close", () => resume(Effect.void))
    child.kill("SIGKILL")
  })
