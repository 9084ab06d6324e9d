/**
 * Reads one of a child's output pipes into memory of ours, Node's `onread`
 * way: each read takes whatever the pipe holds, up to 512 KiB, into the
 * buffer `PipeMemory` gives (a slab of reused memory for a large output, a
 * scratch buffer copied out for a small one). Node's own reading allocates 64
 * KiB for every read, whatever it holds: a fast writer costs an allocation
 * (and its garbage) per 64 KiB at most; here a busy reader takes what piled
 * up in one go, and a stream that is read as it goes allocates nothing.
 *
 * `onread` is an option of sockets Node creates. A pipe of `outputPipes` is
 * read through a socket made of its read end; a child's stdio socket of
 * Node's own (where no such pipe could be made) already is one: the reader
 * takes over its handle, as Node's `child_process` makes the socket from it. Where the
 * handle is not one (another runtime, another kind of stream), it reads the
 * stream's `data` events instead.
 *
 * @internal
 */
import * as Net from "node:net"
import type { Readable } from "node:stream"
import * as Defaults from "../defaults.ts"
import type { PipeMemory } from "../outputMemory.ts"

/** What flow control and cleanup ask of a pipe being read. */
export interface PipeReader {
  pause(): void
  resume(): void
  destroy(): void
}

/** Where a pipe's bytes and end go. */
export interface PipeHandlers {
  /** A chunk the reader owns from now on. */
  readonly onChunk: (chunk: Buffer) => void
  /** The pipe closed (its end, or an error). */
  readonly onClose: () => void
}

/** The part of a libuv stream handle the takeover needs. */
interface StreamHandle {
  readonly useUserBuffer: (buffer: Uint8Array) => void
  readonly readStart: () => number
}

const isStreamHandle = (handle: unknown): handle is StreamHandle =>
  typeof handle === "object" && handle !== null &&
  typeof (handle as Partial<StreamHandle>).useUserBuffer === "function" &&
  typeof (handle as Partial<StreamHandle>).readStart === "function"

/** Reads `readable` (a child's stdout or stderr, before any of it was read) into `memory`. */
export const readPipe = (readable: Readable, memory: PipeMemory, handlers: PipeHandlers): PipeReader => {
  const owner = readable as Readable & { _handle?: unknown }
  const handle = owner._handle
  if (!(readable instanceof Net.Socket) || !isStreamHandle(handle) || readable.readableLength > 0) {
    return readEvents(readable, handlers)
  }
  // the original socket lets the handle go: nothing it does later (Node resumes a child's stdio at its exit) can
  // start reads that flow control stopped, or close the handle under the new socket
  owner._handle = null
  // `handle` is how Node's child_process builds a stdio socket; @types/node does not list it
  return readSocket({ handle } as Net.SocketConstructorOpts, memory, handlers)
}

/** Reads the pipe whose read end is `fd` (ours from now on: closed at its end or by `destroy`) into `memory`. */
export const readDescriptor = (fd: number, memory: PipeMemory, handlers: PipeHandlers): PipeReader =>
  readSocket({ fd }, memory, handlers)

/**
 * Reads the socket made of `source` (a handle or a descriptor) with `onread`,
 * into `memory`'s buffers. A read that filled the pipe (its writer is ahead,
 * more is coming) is held and the next reads join it, as long as they fill
 * the pipe too and land right after it, up to one read buffer (512 KiB, so
 * that a chunk is no larger than a read could be): one chunk instead of
 * several, so everything done per chunk downstream (a log entry, a frame to
 * a client) is done less often. A held chunk goes on at the
 * first read that does not fill the pipe, or one turn of the event loop
 * after the last read (the loop does not wait for I/O while it is held).
 */
const readSocket = (source: Net.SocketConstructorOpts, memory: PipeMemory, handlers: PipeHandlers): PipeReader => {
  let paused = false
  let held: Buffer | undefined
  /** A read joined the held chunk since the last check. */
  let joined = false
  let checking = false
  const deliver = () => {
    const chunk = held
    held = undefined
    if (chunk !== undefined) handlers.onChunk(chunk)
  }
  const check = () => {
    if (joined && held !== undefined) {
      joined = false
      setImmediate(check)
      return
    }
    checking = false
    deliver()
  }
  const socket = new Net.Socket({
    ...source,
    readable: true,
    writable: false,
    onread: {
      // while a chunk is held, a read takes no more than it has room for: a chunk is never larger than a read
      buffer: () => {
        const buffer = memory.readBuffer()
        return held === undefined
          ? buffer
          : buffer.subarray(0, Math.min(buffer.length, Defaults.pipes.readBufferBytes - held.length))
      },
      callback: (bytes, into) => {
        const buffer = into as Buffer
        const extended = held === undefined ? undefined : memory.extend(held, buffer, bytes)
        if (extended === undefined) {
          deliver()
          held = memory.take(buffer, bytes)
        } else {
          held = extended
        }
        const { fullReadBytes, readBufferBytes } = Defaults.pipes
        if (bytes < fullReadBytes || held.length + fullReadBytes > readBufferBytes || paused) {
          deliver()
        } else {
          joined = true
          if (!checking) {
            checking = true
            setImmediate(check)
          }
        }
        // false stops reading at once: flow control paused during this chunk
        return !paused
      }
    }
  })
  socket.on("error", () => {})
  socket.on("close", () => {
    deliver()
    memory.close()
    handlers.onClose()
  })
  return {
    pause: () => {
      paused = true
      socket.pause()
    },
    resume: () => {
      paused = false
      socket.resume()
    },
    destroy: () => void socket.destroy()
  }
}

/** The plain way: the stream's `data` events, each chunk Node's own (no read goes into a `PipeMemory`'s buffers). */
const readEvents = (readable: Readable, handlers: PipeHandlers): PipeReader => {
  readable.on("data", handlers.onChunk)
  readable.on("error", () => {})
  readable.on("close", handlers.onClose)
  return {
    pause: () => void readable.pause(),
    resume: () => void readable.resume(),
    destroy: () => void readable.destroy()
  }
}
