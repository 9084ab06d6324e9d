/**
 * The binary frame of one `process/output` (our extension, negotiated in the
 * handshake): a fixed header naming the process, the seq and the stream, then
 * the chunk's raw bytes, so output crosses the wire without base64 or JSON.
 *
 * Layout (big-endian):
 *
 * | offset  | bytes | field                                                      |
 * |---------|-------|------------------------------------------------------------|
 * | 0       | 1     | kind: `0x01`, process output (no JSON text starts with it) |
 * | 1       | 1     | stream: 0 `stdout`, 1 `stderr`, 2 `pty`                    |
 * | 2       | 8     | seq, an unsigned integer below 2^53                        |
 * | 10      | 2     | n, the byte length of the process id                       |
 * | 12      | n     | the process id, UTF-8                                      |
 * | 12 + n  | rest  | the chunk                                                  |
 *
 * @internal
 */
import type * as Protocol from "../../Protocol.ts"

/** The first byte of an output frame. */
export const outputFrameKind = 0x01

/** Bytes of the header before the process id. */
export const fixedHeaderBytes = 12

/** The longest process id a frame can name, in UTF-8 bytes; a longer one's output goes as JSON. */
export const maxProcessIdBytes = 0xffff

const streams: ReadonlyArray<Protocol.OutputStream> = ["stdout", "stderr", "pty"]
const streamCode: Record<Protocol.OutputStream, number> = { stdout: 0, stderr: 1, pty: 2 }
const twoTo32 = 2 ** 32

/** One decoded output frame; `chunk` is a view into the frame, not a copy. */
export interface OutputFrame {
  readonly processId: string
  readonly seq: number
  readonly stream: Protocol.OutputStream
  readonly chunk: Uint8Array
}

/** The header of one process's frames, its id encoded once. */
export class OutputFrameHeader {
  /** The process id in UTF-8. */
  readonly processId: Buffer

  constructor(processId: string) {
    this.processId = Buffer.from(processId, "utf8")
  }

  /** Whether the id fits a frame's header. */
  get fits(): boolean {
    return this.processId.length <= maxProcessIdBytes
  }

  /** Bytes of the header. */
  get bytes(): number {
    return fixedHeaderBytes + this.processId.length
  }

  /** Writes the header of a frame for `seq` and `stream` at the start of `target`; returns its length. */
  write(target: Buffer, seq: number, stream: Protocol.OutputStream): number {
    target[0] = outputFrameKind
    target[1] = streamCode[stream]
    target.writeUInt32BE(Math.floor(seq / twoTo32), 2)
    target.writeUInt32BE(seq >>> 0, 6)
    target.writeUInt16BE(this.processId.length, 10)
    this.processId.copy(target, fixedHeaderBytes)
    return this.bytes
  }

  /** The whole frame of one chunk, in a new buffer. */
  encode(seq: number, stream: Protocol.OutputStream, chunk: Uint8Array): Buffer {
    const frame = Buffer.allocUnsafe(this.bytes + chunk.length)
    frame.set(chunk, this.write(frame, seq, stream))
    return frame
  }
}

/** Whether `frame` is an output frame rather than JSON sent as binary. */
export const isOutputFrame = (frame: Uint8Array): boolean => frame.length > 0 && frame[0] === outputFrameKind

/**
 * Decodes an output frame, or says what is wrong with it. The chunk is a view
 * into `frame`.
 */
export const decodeOutputFrame = (frame: Uint8Array): OutputFrame | string => {
  if (frame.length < fixedHeaderBytes) return `an output frame of ${frame.length} bytes is shorter than its header`
  if (frame[0] !== outputFrameKind) return `unknown frame kind ${frame[0]}`
  const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.length)
  const stream = streams[bytes[1]!]
  if (stream === undefined) return `unknown stream code ${bytes[1]}`
  const high = bytes.readUInt32BE(2)
  // 2^53 - 1 is the largest seq: the high word holds at most 21 bits
  if (high >= 2 ** 21) return "a seq of 2^53 or more"
  const seq = high * twoTo32 + bytes.readUInt32BE(6)
  const idBytes = bytes.readUInt16BE(10)
  const chunkStart = fixedHeaderBytes + idBytes
  if (chunkStart > bytes.length) return `a process id of ${idBytes} bytes runs past the frame's end`
  return {
    processId: bytes.toString("utf8", fixedHeaderBytes, chunkStart),
    seq,
    stream,
    chunk: frame.subarray(chunkStart)
  }
}
