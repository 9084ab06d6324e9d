/**
 * The reader of a child's output pipe on its own: a real pipe (or Node's
 * socket pair) written by a real child, read into an `OutputMemory`. Every
 * byte arrives once and in order, the close comes after the last chunk, the
 * slab reads went into is let go at the close, and flow control and
 * `destroy` act on the pipe itself.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as NodeChildProcess from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PassThrough, type Readable } from "node:stream"
import * as Defaults from "../src/internal/defaults.ts"
import { makeOutputPipes, type OutputPipe } from "../src/internal/local/outputPipes.ts"
import { type PipeHandlers, type PipeReader, readDescriptor, readPipe } from "../src/internal/local/pipeReader.ts"
import { OutputMemory } from "../src/internal/outputMemory.ts"

/** What a reader handed on: its chunks, and the events in order. */
interface Reading {
  readonly reader: PipeReader
  readonly chunks: Array<Buffer>
  /** `chunk` and `close`, in the order they came. */
  readonly events: Array<"chunk" | "close">
  readonly closed: Deferred.Deferred<void>
}

/** Starts a reader with `start`, collecting what it hands on; `onChunk` sees each chunk once collected. */
const reading = (
  start: (handlers: PipeHandlers) => PipeReader,
  onChunk: (chunk: Buffer, reading: Reading) => void = () => {}
): Reading => {
  const closed = Deferred.makeUnsafe<void>()
  const chunks: Array<Buffer> = []
  const events: Array<"chunk" | "close"> = []
  const result: { reading?: Reading } = {}
  const reader = start({
    onChunk: (chunk) => {
      chunks.push(chunk)
      events.push("chunk")
      onChunk(chunk, result.reading!)
    },
    onClose: () => {
      events.push("close")
      Deferred.doneUnsafe(closed, Effect.void)
    }
  })
  result.reading = { reader, chunks, events, closed }
  return result.reading
}

/** Waits (real time, up to 10 s) for the reader's close, failing by assertion otherwise. */
const awaitClose = (read: Reading) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 10_000
    while (!Deferred.isDoneUnsafe(read.closed) && Date.now() < deadline) yield* realTime(10)
    assert.isTrue(Deferred.isDoneUnsafe(read.closed), "the reader closed")
  })

/**
 * Reads whole streams with `stream` (its chunks) until one has a chunk of a
 * whole read buffer, up to 20 s: a writer stays ahead of its reader for that
 * many reads in a row only when the scheduler lets it, which a busy machine
 * may not. Every stream keeps the bound. Returns the largest chunk's size.
 */
const largestJoined = <E, R>(stream: Effect.Effect<ReadonlyArray<Buffer>, E, R>) =>
  Effect.gen(function*() {
    const { readBufferBytes } = Defaults.pipes
    const deadline = Date.now() + 20_000
    let largest = 0
    while (largest < readBufferBytes && Date.now() < deadline) {
      const sizes = (yield* stream).map((chunk) => chunk.length)
      assert.isAtMost(Math.max(...sizes), readBufferBytes, "a read joined to a held chunk takes only its room")
      largest = Math.max(largest, ...sizes)
    }
    return largest
  })

/** Lets real time pass: for the work of other processes and of the event loop. */
const realTime = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/** Calls `f` after `turns` turns of the event loop. */
const afterTurns = (turns: number, f: () => void): void => {
  setImmediate(() => turns <= 1 ? f() : afterTurns(turns - 1, f))
}

/** A file of `bytes` random bytes in a directory of its own, removed with the scope. */
const randomFile = (bytes: number) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "pipe-reader-"))),
      (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
    ),
    (directory) => {
      const content = randomBytes(bytes)
      const path = join(directory, "random")
      writeFileSync(path, content)
      return { path, content }
    }
  )

/** One real pipe from an executor's supply (closed with the scope if not given away). */
const onePipe = Effect.gen(function*() {
  const pipes = yield* makeOutputPipes()
  const taken = yield* pipes.take(1)
  assert.isDefined(taken, "this machine makes pipes")
  const pipe = taken![0]!
  yield* Effect.addFinalizer(() => Effect.sync(() => pipe.close()))
  return pipe
})

/** Spawns `argv` with `pipe`'s write end as its stdout, which this process then closes. */
const spawnInto = (pipe: OutputPipe, argv: ReadonlyArray<string>) => {
  const child = NodeChildProcess.spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", pipe.writeFd, "ignore"] })
  pipe.closeWriteEnd()
  return child
}

/** The exit of `child`: its code and signal. */
const exitOf = (child: NodeChildProcess.ChildProcess) =>
  Effect.callback<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resume(Effect.succeed({ code: child.exitCode, signal: child.signalCode }))
    }
    child.once("exit", (code, signal) => resume(Effect.succeed({ code, signal })))
  })

/** Every chunk let go by its log as a reader that acknowledged it would: the slabs they hold may be reused. */
const dropAll = (memory: OutputMemory, chunks: ReadonlyArray<Buffer>) => {
  for (const chunk of chunks) memory.drop(chunk, true)
}

describe("a pipe read into slabs", () => {
  it.live("every byte once and in order, then the close; the slab reads went into is let go at the close", () =>
    Effect.scoped(Effect.gen(function*() {
      const { content, path } = yield* randomFile(4 * 1024 * 1024)
      const pipe = yield* onePipe
      const memory = new OutputMemory("always")
      spawnInto(pipe, ["cat", path])
      const read = reading((handlers) => readDescriptor(pipe.takeReadEnd(), memory.pipe(), handlers))
      yield* awaitClose(read)
      assert.isTrue(Buffer.concat(read.chunks).equals(content), "the bytes cat wrote")
      assert.deepStrictEqual(read.events.indexOf("close"), read.events.length - 1, "the close comes last, once")
      assert.isTrue(read.chunks.slice(-1).every((chunk) => memory.holds(chunk)), "large output lands in slabs")
      dropAll(memory, read.chunks)
      assert.strictEqual(memory.slabCount, 0, "no slab held once every chunk was let go")
    })))

  it.live("Node's socket pair of a child: its handle taken over, read into slabs the same way", () =>
    Effect.scoped(Effect.gen(function*() {
      const { content, path } = yield* randomFile(4 * 1024 * 1024)
      const memory = new OutputMemory("always")
      const child = NodeChildProcess.spawn("cat", [path], { stdio: ["ignore", "pipe", "ignore"] })
      const read = reading((handlers) => readPipe(child.stdout!, memory.pipe(), handlers))
      yield* awaitClose(read)
      assert.isTrue(Buffer.concat(read.chunks).equals(content), "the bytes cat wrote")
      assert.deepStrictEqual(read.events.indexOf("close"), read.events.length - 1, "the close comes last, once")
      assert.isTrue(read.chunks.slice(-1).every((chunk) => memory.holds(chunk)), "through onread, into slabs")
      dropAll(memory, read.chunks)
      assert.strictEqual(memory.slabCount, 0, "no slab held once every chunk was let go")
      assert.deepStrictEqual(yield* exitOf(child), { code: 0, signal: null })
    })))

  it.live("Node's socket pair read by a slow consumer: its larger reads join up to one read buffer, never more", () =>
    Effect.scoped(Effect.gen(function*() {
      const total = 16 * 1024 * 1024
      const largest = yield* largestJoined(Effect.gen(function*() {
        const memory = new OutputMemory("always")
        const child = NodeChildProcess.spawn("head", ["-c", String(total), "/dev/zero"], {
          stdio: ["ignore", "pipe", "ignore"]
        })
        // 2 ms of work a chunk: the socket is full at each read, which takes more than a pipe would hold
        const read = reading((handlers) => readPipe(child.stdout!, memory.pipe(), handlers), () => {
          const until = performance.now() + 2
          while (performance.now() < until) {
            // a consumer busy with what it got
          }
        })
        yield* awaitClose(read)
        assert.strictEqual(read.chunks.reduce((n, chunk) => n + chunk.length, 0), total)
        return read.chunks
      }))
      assert.strictEqual(largest, Defaults.pipes.readBufferBytes, "reads joined up to one read buffer exactly")
    })))

  it.live("Node's socket of a child that exited: its reads stay paused (Node resumes a child's stdio at its exit)", () =>
    Effect.scoped(Effect.gen(function*() {
      const memory = new OutputMemory("always")
      // the child exits at once; what it left in the background writes on, to the same socket
      const script = "printf x; (sleep 0.2; head -c 1048576 /dev/zero) & exit 0"
      const child = NodeChildProcess.spawn("sh", ["-c", script], { stdio: ["ignore", "pipe", "ignore"] })
      const read = reading((handlers) => readPipe(child.stdout!, memory.pipe(), handlers), (_, read) => {
        if (read.chunks.length === 1) read.reader.pause()
      })
      assert.deepStrictEqual(yield* exitOf(child), { code: 0, signal: null })
      // the background writer is at work by now, and would be read were the socket not paused
      yield* realTime(1_000)
      assert.strictEqual(read.chunks.length, 1, "no chunk read while paused")
      read.reader.resume()
      yield* awaitClose(read)
      assert.strictEqual(Buffer.concat(read.chunks).length, 1 + 1024 * 1024, "then every byte")
    })))
})

describe("a stream that cannot be taken over is read through its data events", () => {
  it.live("a Node socket that already holds bytes: none of them lost", () =>
    Effect.scoped(Effect.gen(function*() {
      const memory = new OutputMemory("always")
      // writes, then waits for its stdin to end before it writes again
      const child = NodeChildProcess.spawn("sh", ["-c", "printf early; read line; printf late"], {
        stdio: ["pipe", "pipe", "ignore"]
      })
      const stdout = child.stdout!
      const deadline = Date.now() + 10_000
      while (stdout.readableLength === 0 && Date.now() < deadline) yield* realTime(10)
      assert.strictEqual(stdout.readableLength, "early".length, "Node read the first bytes into the socket")
      const read = reading((handlers) => readPipe(stdout, memory.pipe(), handlers))
      child.stdin!.end("\n")
      yield* awaitClose(read)
      assert.strictEqual(Buffer.concat(read.chunks).toString(), "earlylate")
      assert.isFalse(read.chunks.some((chunk) => memory.holds(chunk)), "Node's own chunks")
    })))

  it.live("a Node socket without a handle (no stream of libuv's under it)", () =>
    Effect.scoped(Effect.gen(function*() {
      const memory = new OutputMemory("always")
      const socket = new Net.Socket()
      const read = reading((handlers) => readPipe(socket, memory.pipe(), handlers))
      socket.push("pushed")
      socket.push(null)
      yield* awaitClose(read)
      assert.strictEqual(Buffer.concat(read.chunks).toString(), "pushed")
    })))

  it.live("its pause, resume and destroy are the stream's; an error ends it like a close", () =>
    Effect.scoped(Effect.gen(function*() {
      const memory = new OutputMemory("always")
      const stream = new PassThrough()
      const read = reading((handlers) => readPipe(stream, memory.pipe(), handlers))
      read.reader.pause()
      stream.write("held")
      yield* realTime(50)
      assert.deepStrictEqual(read.chunks, [], "nothing while paused")
      read.reader.resume()
      yield* realTime(50)
      assert.strictEqual(Buffer.concat(read.chunks).toString(), "held")
      read.reader.destroy()
      yield* awaitClose(read)
      assert.isTrue(stream.destroyed)
      // a stream that fails: no unhandled error, the close is handed on
      const failing = new PassThrough()
      const failed = reading((handlers) => readPipe(failing, memory.pipe(), handlers))
      failing.destroy(new Error("gone"))
      yield* awaitClose(failed)
    })))

  it.live("a stream that is no socket", () =>
    Effect.scoped(Effect.gen(function*() {
      const memory = new OutputMemory("always")
      const stream: Readable = new PassThrough()
      const read = reading((handlers) => readPipe(stream, memory.pipe(), handlers))
      ;(stream as PassThrough).write("one ")
      ;(stream as PassThrough).end("two")
      yield* awaitClose(read)
      assert.strictEqual(Buffer.concat(read.chunks).toString(), "one two")
      assert.deepStrictEqual(read.events.at(-1), "close")
      assert.strictEqual(memory.slabCount, 0)
    })))
})

describe("flow control and destroy act on the pipe", () => {
  // paused between reads (as when the held chunk goes on a turn after its read), not inside a read's callback
  it.live("paused after a chunk: nothing more is read until resumed, then the rest", () =>
    Effect.scoped(Effect.gen(function*() {
      const { content, path } = yield* randomFile(16 * 1024 * 1024)
      const pipe = yield* onePipe
      const memory = new OutputMemory("always")
      const child = spawnInto(pipe, ["cat", path])
      // as the log's flow control does when the first chunk fills it
      let atPause: number | undefined
      const read = reading(
        (handlers) => readDescriptor(pipe.takeReadEnd(), memory.pipe(), handlers),
        (_, read) => {
          if (atPause !== undefined) return
          atPause = -1
          setImmediate(() => {
            read.reader.pause()
            // a chunk held for the reads that may join it goes on within two turns: it was read before the pause
            afterTurns(4, () => (atPause = read.chunks.length))
          })
        }
      )
      const deadline = Date.now() + 10_000
      while ((atPause === undefined || atPause < 0) && Date.now() < deadline) yield* realTime(10)
      yield* realTime(300)
      assert.strictEqual(read.chunks.length, atPause, "no chunk read while paused")
      assert.strictEqual(child.exitCode, null, "cat waits on the full pipe")
      read.reader.resume()
      yield* awaitClose(read)
      assert.isTrue(Buffer.concat(read.chunks).equals(content), "then every byte")
    })))

  it.live("paused in the handler of a chunk let go a turn after its read: the writer's next bytes wait for the resume", () =>
    Effect.scoped(Effect.gen(function*() {
      const pipe = yield* onePipe
      const memory = new OutputMemory("always")
      const { fullReadBytes } = Defaults.pipes
      // one read that fills the pipe, held for a turn (no read follows it), then more once the pause was made
      const script = `dd if=/dev/zero bs=${fullReadBytes} count=1 status=none; sleep 0.2; head -c 1048576 /dev/zero`
      spawnInto(pipe, ["sh", "-c", script])
      let atPause: number | undefined
      const read = reading(
        (handlers) => readDescriptor(pipe.takeReadEnd(), memory.pipe(), handlers),
        (_, read) => {
          if (atPause !== undefined) return
          read.reader.pause()
          // the rest of a read under way (its own bytes) may still come in this callback
          queueMicrotask(() => (atPause = read.chunks.length))
        }
      )
      const deadline = Date.now() + 10_000
      while (atPause === undefined && Date.now() < deadline) yield* realTime(10)
      // the writer is at its second part by now, and would be read were the pipe not paused
      yield* realTime(1_000)
      assert.strictEqual(read.chunks.length, atPause, "no chunk read while paused")
      read.reader.resume()
      yield* awaitClose(read)
      assert.strictEqual(Buffer.concat(read.chunks).length, fullReadBytes + 1024 * 1024, "then every byte")
    })))

  it.live("each read that filled the pipe and found nothing after it goes on a turn later, every time", () =>
    Effect.scoped(Effect.gen(function*() {
      const pipe = yield* onePipe
      const memory = new OutputMemory("always")
      const { fullReadBytes } = Defaults.pipes
      // what a pipe holds, then nothing until told (a line on stdin), twice; then what a pipe holds, and the end
      const part = `dd if=/dev/zero bs=${fullReadBytes} count=1 status=none`
      const child = NodeChildProcess.spawn("sh", ["-c", `${part}; read a; ${part}; read b; ${part}`], {
        stdio: ["pipe", pipe.writeFd, "ignore"]
      })
      pipe.closeWriteEnd()
      const read = reading((handlers) => readDescriptor(pipe.takeReadEnd(), memory.pipe(), handlers))
      const received = () => read.chunks.reduce((n, chunk) => n + chunk.length, 0)
      for (const part of [1, 2]) {
        const deadline = Date.now() + 10_000
        while (received() < part * fullReadBytes && Date.now() < deadline) yield* realTime(10)
        assert.strictEqual(received(), part * fullReadBytes, `part ${part} arrived while the writer waits`)
        child.stdin!.write("\n")
      }
      yield* awaitClose(read)
      assert.strictEqual(received(), 3 * fullReadBytes, "and the last, which the close may find held")
      dropAll(memory, read.chunks)
      assert.strictEqual(memory.slabCount, 0)
    })))

  it.live("destroy closes the read end: the writer is told (SIGPIPE), and the close is handed on", () =>
    Effect.scoped(Effect.gen(function*() {
      const pipe = yield* onePipe
      const memory = new OutputMemory("always")
      const child = spawnInto(pipe, ["yes"])
      const read = reading(
        (handlers) => readDescriptor(pipe.takeReadEnd(), memory.pipe(), handlers),
        (_, read) => read.reader.destroy()
      )
      yield* awaitClose(read)
      assert.deepStrictEqual(yield* exitOf(child), { code: null, signal: "SIGPIPE" })
      assert.deepStrictEqual(read.events.at(-1), "close")
      dropAll(memory, read.chunks)
      assert.strictEqual(memory.slabCount, 0, "no slab held once every chunk was let go")
    })))

  it.live("chunks of a writer that is ahead join, up to one read buffer", () =>
    Effect.scoped(Effect.gen(function*() {
      const { content, path } = yield* randomFile(8 * 1024 * 1024)
      const largest = yield* largestJoined(Effect.gen(function*() {
        const pipe = yield* onePipe
        const memory = new OutputMemory("always")
        const read = reading((handlers) => readDescriptor(pipe.takeReadEnd(), memory.pipe(), handlers))
        spawnInto(pipe, ["cat", path])
        yield* awaitClose(read)
        assert.isTrue(Buffer.concat(read.chunks).equals(content))
        return read.chunks
      }))
      assert.isAbove(largest, Defaults.pipes.fullReadBytes, "reads joined")
      assert.strictEqual(largest, Defaults.pipes.readBufferBytes, "up to one read buffer exactly")
    })))
})
