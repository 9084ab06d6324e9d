/**
 * How a connection pushes one `process/output`: as a binary frame (header and
 * raw bytes, our extension) when its client asked for them in `initialized`
 * and its transport carries binary frames, as JSON text otherwise (what a
 * Codex client gets).
 *
 * Binary frames are written into buffers taken from a pool and given back
 * once the OS took them: a stream of output costs no allocation per chunk,
 * and so no garbage for the collector to find.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { OutputFrameHeader } from "../rpc/outputFrame.ts"
import type { Transport } from "../rpc/transport.ts"

/** One chunk of a process's output, as the notifier pushes it. */
export interface OutputChunk {
  readonly seq: number
  readonly stream: Protocol.OutputStream
  readonly chunk: Uint8Array
}

/** A process whose output is pushed: its id, and its frame header (the id encoded once). */
export class PushedProcess {
  readonly processId: string
  readonly header: OutputFrameHeader
  constructor(processId: string) {
    this.processId = processId
    this.header = new OutputFrameHeader(processId)
  }
}

/**
 * Buffers of one size, reused: taken for a frame, given back once it is
 * written. At most `kept` wait in the pool; more in use at once are allocated
 * and left to the collector when given back.
 */
export class FramePool {
  private readonly free: Array<Buffer> = []
  readonly bufferBytes: number
  private readonly kept: number

  constructor(bufferBytes: number, kept: number) {
    this.bufferBytes = bufferBytes
    this.kept = kept
  }

  /** A buffer of `bufferBytes`. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes)
  }

  give(buffer: Buffer): void {
    if (this.free.length < this.kept) this.free.push(buffer)
  }
}

/** The pool every connection of this process shares. */
const sharedPool = new FramePool(Defaults.outputFrames.bufferBytes, Defaults.outputFrames.pooledBuffers)

/**
 * Pushes output on `transport`: binary frames once `binaryWanted()` says the
 * client asked for them, JSON `process/output` notifications before that, on
 * a transport without binary frames, and for an id too long for a header.
 * Like any notification it is queued, not awaited; a client that leaves too
 * much unread is dropped by the transport.
 */
export const makeOutputPush = (transport: Transport, binaryWanted: () => boolean, pool: FramePool = sharedPool) => {
  const postBinary = transport.postBinary
  /** A binary frame queued at once: false when output goes as JSON here. */
  const pushBinary = (process: PushedProcess, output: OutputChunk): boolean => {
    const { header } = process
    if (postBinary === undefined || !header.fits || !binaryWanted()) return false
    const length = header.bytes + output.chunk.length
    if (length > pool.bufferBytes) {
      postBinary(header.encode(output.seq, output.stream, output.chunk), () => {})
      return true
    }
    const buffer = pool.take()
    buffer.set(output.chunk, header.write(buffer, output.seq, output.stream))
    // a refused frame (the link is gone) is dropped as a lost notification is: the client resumes and reads
    postBinary(buffer.subarray(0, length), () => pool.give(buffer))
    return true
  }
  return {
    pushBinary,
    /** One `process/output`, binary or JSON. */
    push: (process: PushedProcess, output: OutputChunk): Effect.Effect<void> =>
      Effect.suspend(() =>
        pushBinary(process, output)
          ? Effect.void
          : Effect.ignore(transport.post(Protocol.outputNotificationJson(process.processId, output)))
      )
  }
}
