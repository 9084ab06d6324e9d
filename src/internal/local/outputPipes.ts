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
 * directory that is removed before the batch is handed out: nothing stays on
 * disk, and the executor holds a batch of open pipes for the next starts,
 * making the next batch while the last ones are taken. The first batch is
 * small (one start should not wait for many pipes), each next one twice the
 * last, up to `Defaults.pipes.perBatch`; they are made in `/dev/shm` (memory:
 * a FIFO on a disk's file system costs a journal write, ~1 ms here) unless
 * `TMPDIR` names another place; a directory that a process killed in the
 * middle of a batch left there is removed by the next executor that makes
 * one. Where `mkfifo` cannot run or make FIFOs, the supply says so, and for
 * the rest of the executor's life its children get Node's socket pairs; a
 * failure that may pass (no room, no descriptor left, a fork refused) gives
 * socket pairs to the starts that met it only.
 *
 * A batch has `Defaults.pipes.batchTimeoutMillis` for its own work: the
 * sweep, its directory, `mkfifo`'s run, the opens, the removal, but not its
 * wait for a turn to fork (that is other starts forking, not this place
 * being slow). Past it, the starts waiting for it go on at once with socket
 * pairs, and the batch is undone behind them: `mkfifo` killed and awaited,
 * then its directory removed if the file system answers. Its file system
 * calls run on libuv's threads, one at a time, so one that hangs holds one
 * thread of that pool and nothing else; what it gives once the batch gave up
 * on it (a directory, descriptors) is removed or closed when it comes. Only
 * in `/dev/shm` are the opens made in this thread: memory has nothing to
 * hang on, and there they cost a tenth.
 *
 * Running out of time is a lasting failure, like a `mkfifo` that cannot make
 * FIFOs there. What hangs is the place (an NFS or FUSE `TMPDIR` that stopped
 * answering), and the next batch would most likely hang too: were it a
 * failure that may pass, every start would wait out the bound again, each
 * holding one more thread or `mkfifo`. Socket pairs cost a child the
 * reopening of `/dev/stdout` and some speed; a wait of seconds on every
 * start is what a user sees. So the executor waits once, then gives socket
 * pairs for the rest of its life. (An executor stopped, `SIGSTOP` or Ctrl-Z,
 * during the milliseconds a batch takes may find its time spent when it
 * wakes: the same price, pipes off for that executor.)
 *
 * Not stdin: a FIFO differs from a pipe in one way, and for input it matters.
 * Opening it to read waits for a writer, so a child that opens `/dev/stdin`
 * after its input ended (`printf x | effect-exec run -- sh -c 'sleep 1; cat
 * /dev/stdin'`) would wait forever; on a socket pair that open fails at once.
 * Output has no such case while the executor lives: this process holds the
 * read end until every writer is gone. Only a process that escaped its group
 * (`setsid`), outlived the executor and then opens `/dev/stdout` again waits
 * in that open, where on a pipe it would be told at its next write (EPIPE).
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as NodeChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import * as Defaults from "../defaults.ts"
import { isAlive } from "../liveProcess.ts"
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
   * cannot make them, or not in time (the child gets socket pairs instead).
   * It waits for a batch at most `Defaults.pipes.batchTimeoutMillis` beyond
   * the batch's turn to fork.
   */
  readonly take: (count: number) => Effect.Effect<ReadonlyArray<OutputPipe> | undefined>
}

/**
 * Makes the pipe supply of an executor in the current scope (its first batch
 * comes with the first start that takes a pipe): closing the scope closes the
 * pipes nobody took. `mkfifo` is the program that makes them (found on
 * `PATH`).
 */
export const makeOutputPipes = (
  options: { readonly mkfifo?: string | undefined; readonly directory?: string | undefined } = {}
): Effect.Effect<OutputPipes, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const mkfifo = options.mkfifo ?? "mkfifo"
    const ready: Array<OutputPipe> = []
    let unavailable = false
    /** Batches that failed with a failure that may pass: the starts waiting for one go on without. */
    let failures = 0
    let batchSize: number = Defaults.pipes.firstBatch
    let swept = false
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
      const directory = options.directory ?? pipeDirectory()
      // out of time: the starts waiting for it go on now, while the batch is undone
      const within = timeBudget(Defaults.pipes.batchTimeoutMillis, () => {
        unavailable = true
        Deferred.doneUnsafe(made, Effect.void)
      })
      const sweep = swept ? Effect.void : within(Effect.promise(() => sweepAbandoned(directory)))
      swept = true
      return Effect.andThen(sweep, makeBatch(mkfifo, directory, batchSize, (pipes) => ready.push(...pipes), within))
        .pipe(
          Effect.tap(() => Effect.sync(() => (batchSize = Math.min(batchSize * 2, Defaults.pipes.perBatch)))),
          // a defect too (a fork that throws): otherwise every start would make batch after batch, in a loop
          Effect.catchCause((cause) =>
            Effect.sync(() => {
              const failure = Cause.findErrorOption(cause)
              if (failure._tag === "Some" && failure.value.lasting) unavailable = true
              else failures++
            })
          ),
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
          const failed = failures
          yield* Deferred.await(yield* nextBatch)
          if (failures !== failed) return undefined
        }
        const taken = ready.splice(0, count)
        if (ready.length < Defaults.pipes.lowWater && !closing()) yield* nextBatch
        return taken
      })

    return { take }
  })

/**
 * Why a batch could not be made. `lasting`: it will fail the same way next
 * time (no `mkfifo`, one that cannot make FIFOs there, or a place that did
 * not answer in time); otherwise it may pass (no room, no descriptor left, a
 * fork refused).
 */
class BatchFailure extends Error {
  readonly lasting: boolean
  constructor(message: string, lasting: boolean, cause?: unknown) {
    super(message, { cause })
    this.lasting = lasting
  }
}

/**
 * The time a batch is given for its own work, `millis`, as a function that
 * runs one step of it in what is left: the time between steps (a wait for a
 * turn to fork) is not counted. Once the time is spent, `onSpent` is called,
 * then the step is interrupted (which undoes it) and fails, a lasting
 * failure; a step begun after that fails at once.
 */
const timeBudget = (millis: number, onSpent: () => void) => {
  let left = millis
  const spent = Effect.andThen(
    Effect.sync(onSpent),
    Effect.fail(new BatchFailure(`pipes not made in ${millis} ms`, true))
  )
  return <A>(step: Effect.Effect<A, BatchFailure>): Effect.Effect<A, BatchFailure> =>
    Effect.suspend(() =>
      left <= 0 ? spent : Clock.clockWith((clock) => {
        const startedAt = clock.currentTimeMillisUnsafe()
        return Effect.raceFirst(step, Effect.andThen(Effect.sleep(left), spent)).pipe(
          Effect.ensuring(Effect.sync(() => (left -= clock.currentTimeMillisUnsafe() - startedAt)))
        )
      })
    )
}

/** The file system in memory where batches are made unless `TMPDIR` says otherwise. */
const inMemory = "/dev/shm"

/** Where batches are made: `TMPDIR` if set, else `/dev/shm` (memory) where there is one to write to, else `/tmp`. */
const pipeDirectory = (): string => {
  if (process.env.TMPDIR !== undefined && process.env.TMPDIR !== "") return Os.tmpdir()
  try {
    Fs.accessSync(inMemory, Fs.constants.W_OK | Fs.constants.X_OK)
    return inMemory
  } catch {
    return Os.tmpdir()
  }
}

/** A batch's directory is named by this, the pid of the process that made it, and a random part. */
const batchPrefix = "effect-exec-pipes-"

/**
 * Removes the batch directories in `parent` that processes of this user left
 * when they died in the middle of a batch (SIGKILL, or an exit that ran no
 * finalizer): those whose pid names no live process. Best effort: what
 * cannot be read or removed stays.
 */
const sweepAbandoned = async (parent: string): Promise<void> => {
  let names: Array<string>
  try {
    names = await Fs.promises.readdir(parent)
  } catch {
    return
  }
  for (const name of names) {
    const pid = Number(/^effect-exec-pipes-(\d+)-/.exec(name)?.[1] ?? Number.NaN)
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue
    const path = Path.join(parent, name)
    try {
      if ((await Fs.promises.lstat(path)).uid !== process.geteuid?.()) continue
      await Fs.promises.rm(path, { recursive: true, force: true })
    } catch {
      // another process swept it first, or it is not ours to remove
    }
  }
}

/**
 * `count` pipes from one run of `mkfifo` in `parent`, given to `add` as soon
 * as they are open (in the same step, so that none is lost to an
 * interruption); fails when it cannot run or make them, or not `within` its
 * time. Its directory is removed however it ends (in what is left of the
 * time: past it, the removal goes on without anyone waiting for it).
 */
const makeBatch = (
  mkfifo: string,
  parent: string,
  count: number,
  add: (pipes: ReadonlyArray<OutputPipe>) => void,
  within: <A>(step: Effect.Effect<A, BatchFailure>) => Effect.Effect<A, BatchFailure>
): Effect.Effect<void, BatchFailure> =>
  Effect.acquireUseRelease(
    within(makeDirectory(parent)),
    (directory) => {
      const names = Array.from({ length: count }, (_, index) => Path.join(directory, String(index)))
      const calls = parent === inMemory ? inlineCalls : threadedCalls
      return Effect.andThen(runMkfifo(mkfifo, names, within), within(openPipes(names, calls, add)))
    },
    (directory) =>
      Effect.suspend(() => {
        const removed = removeDirectory(directory)
        return Effect.ignore(within(Effect.promise(() => removed)))
      })
  )

/** Removes a batch's directory and what is in it; never fails (a directory already gone is removed). */
const removeDirectory = (directory: string): Promise<void> =>
  Fs.promises.rm(directory, { recursive: true, force: true }).catch(() => {})

/**
 * A private directory for a batch in `parent`. Interrupted (out of time),
 * it does not wait for the file system: the directory, if it comes, is
 * removed then.
 */
const makeDirectory = (parent: string): Effect.Effect<string, BatchFailure> =>
  Effect.callback((resume, signal) => {
    Fs.mkdtemp(Path.join(parent, `${batchPrefix}${process.pid}-`), (error, directory) => {
      if (error !== null) {
        resume(Effect.fail(new BatchFailure(`no private directory for pipes in ${parent}`, false, error)))
      } else if (signal.aborted) void removeDirectory(directory)
      else resume(Effect.succeed(directory))
    })
  })

/**
 * Opens every FIFO of `names` (see `openPipe`) with `calls` and gives the
 * pipes to `add`. Interrupted (out of time, or the executor closing), it does
 * not wait for the file system: the opens stop, and what they opened is
 * closed.
 */
const openPipes = (
  names: ReadonlyArray<string>,
  calls: OpenCalls,
  add: (pipes: ReadonlyArray<OutputPipe>) => void
): Effect.Effect<void, BatchFailure> =>
  Effect.callback((resume, signal) => {
    openInTurn(names, calls, signal).then(
      (pipes) => {
        if (signal.aborted) return pipes.forEach((pipe) => pipe.close())
        add(pipes)
        resume(Effect.void)
      },
      (cause) => resume(Effect.fail(new BatchFailure("cannot open pipes", false, cause)))
    )
  })

/**
 * Opens the FIFOs of `names` one after the other, so that a file system that
 * hangs holds one of libuv's threads rather than all of them. Once `signal`
 * is aborted, or when one cannot be opened, it closes those it opened and
 * fails.
 */
const openInTurn = async (
  names: ReadonlyArray<string>,
  calls: OpenCalls,
  signal: AbortSignal
): Promise<Array<OutputPipe>> => {
  const pipes: Array<OutputPipe> = []
  try {
    for (const name of names) {
      pipes.push(await openPipe(name, calls))
      signal.throwIfAborted()
    }
    return pipes
  } catch (error) {
    for (const pipe of pipes) pipe.close()
    throw error
  }
}

/** The file system calls that open a pipe. */
interface OpenCalls {
  readonly open: (path: string, flags: number) => number | Promise<number>
  readonly fstat: (fd: number) => Fs.Stats | Promise<Fs.Stats>
}

/**
 * On libuv's threads: a file system that hangs holds one of them, not this
 * thread. They cost about ten times the CPU of a call in this thread (~130
 * against ~13 µs a pipe here), little beside the ~1 ms a FIFO costs to make
 * on a disk, or on a file system in a network.
 */
const threadedCalls: OpenCalls = { open: promisify(Fs.open), fstat: promisify(Fs.fstat) }

/** In this thread, for `/dev/shm`: memory, which has nothing to hang on. */
const inlineCalls: OpenCalls = { open: Fs.openSync, fstat: Fs.fstatSync }

/** Whether `/proc` shows this process's descriptors (Linux), checked once. */
let procDescriptors: boolean | undefined

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
 *
 * The read end stays open until the write end's open ended, whatever it
 * gives: its number, in `/proc/self/fd/`, must not name another file meanwhile.
 */
const openPipe = async (name: string, calls: OpenCalls): Promise<OutputPipe> => {
  const readFd = await calls.open(name, Fs.constants.O_RDONLY | Fs.constants.O_NONBLOCK | Fs.constants.O_NOFOLLOW)
  let writeFd = -1
  try {
    const read = await calls.fstat(readFd)
    if (!read.isFIFO() || read.uid !== process.geteuid?.()) throw new Error(`${name} is not the FIFO mkfifo made`)
    procDescriptors ??= Fs.existsSync("/proc/self/fd")
    writeFd = procDescriptors
      ? await calls.open(`/proc/self/fd/${readFd}`, Fs.constants.O_WRONLY)
      : await calls.open(name, Fs.constants.O_WRONLY | Fs.constants.O_NOFOLLOW)
    const write = await calls.fstat(writeFd)
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
 * readable and writable by this user only, `within` the batch's time (its
 * wait for the turn is not counted). However it ends, out of time or the
 * executor closing, `mkfifo` is killed if it still runs and awaited: the
 * batch's directory is removed next, and a `mkfifo` still at work would
 * leave it behind, full of FIFOs.
 */
const runMkfifo = (
  mkfifo: string,
  names: ReadonlyArray<string>,
  within: <A>(step: Effect.Effect<A, BatchFailure>) => Effect.Effect<A, BatchFailure>
): Effect.Effect<void, BatchFailure> =>
  Effect.suspend(() => {
    let started: NodeChildProcess.ChildProcess | undefined
    return Effect.flatMap(
      spawnTurn(spawnMkfifo(mkfifo, names, (child) => (started = child))),
      (child) => within(exitOf(child))
    ).pipe(Effect.ensuring(Effect.suspend(() => started === undefined ? Effect.void : killAndAwait(started))))
  })

/**
 * Spawns `mkfifo` for `names`, handing the child to `started` as soon as
 * there is one (to be killed however the batch ends); completes once it
 * runs, fails if it does not start.
 */
const spawnMkfifo = (
  mkfifo: string,
  names: ReadonlyArray<string>,
  started: (child: NodeChildProcess.ChildProcess) => void
) =>
  Effect.callback<NodeChildProcess.ChildProcess, BatchFailure>((resume) => {
    let child: NodeChildProcess.ChildProcess
    try {
      child = NodeChildProcess.spawn(mkfifo, ["-m", "600", "--", ...names], { stdio: "ignore" })
    } catch (cause) {
      return resume(Effect.fail(new BatchFailure("mkfifo did not start", false, cause)))
    }
    started(child)
    child.once("error", (cause: NodeJS.ErrnoException) =>
      // not there, or not ours to run: so it will stay
      resume(Effect.fail(
        new BatchFailure("mkfifo did not start", cause.code === "ENOENT" || cause.code === "EACCES", cause)
      )))
    child.once("spawn", () => resume(Effect.succeed(child)))
  })

/** Completes when `child` (`mkfifo`) exited: with 0, or failing with a lasting failure (it cannot make FIFOs there). */
const exitOf = (child: NodeChildProcess.ChildProcess): Effect.Effect<void, BatchFailure> =>
  Effect.callback((resume) => {
    const exited = (code: number | null) =>
      resume(code === 0 ? Effect.void : Effect.fail(new BatchFailure(`mkfifo exited with ${code}`, true)))
    if (hasExited(child)) return exited(child.exitCode)
    child.once("exit", exited)
    return Effect.sync(() => child.off("exit", exited))
  })

/**
 * Whether `child` exited, or failed to start. Without stdio its `close` comes
 * in the same turn as its exit: once this is true, it is gone.
 */
const hasExited = (child: NodeChildProcess.ChildProcess): boolean =>
  child.exitCode !== null || child.signalCode !== null

/** Kills `child` unless it exited, and completes once it is gone (its `close`, which a failed start has too). */
const killAndAwait = (child: NodeChildProcess.ChildProcess): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (hasExited(child)) return resume(Effect.void)
    child.once("close", () => resume(Effect.void))
    child.kill("SIGKILL")
  })
