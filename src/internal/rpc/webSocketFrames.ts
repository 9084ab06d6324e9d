/**
 * WebSocket frames (RFC 6455) as a client sees them: `FrameReader` takes a
 * server's frames in from the bytes of each read, checked as `ws` checks them
 * (unmasked, no extension bits, known opcodes, whole control frames, a message
 * within its limit in bytes and fragments), a whole binary frame's payload
 * written into the listener's memory; `maskedFrame` builds the frames a client
 * sends, masked as a client's must be.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import type { BinaryMemory } from "./transport.ts"

/** The most frames one message may come in: empty fragments cost memory too. */
export const maxFragments = 4096
/** A frame over this size is taken in as it arrives rather than into memory of its claimed size. */
const largeFrameBytes = 1024 * 1024
export const opcodes = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const

/** A close code a peer may send (RFC 6455 7.4: 1004–1006 and 1015 never go on the wire; 3000–4999 are free). */
export const isCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)

/** A violation of the protocol by the server: the close code it earns, and what to say. */
export class FrameError {
  readonly code: number
  readonly description: string
  constructor(code: number, description: string) {
    this.code = code
    this.description = description
  }
}

/** Random mask keys, drawn 4 KiB at a time. */
const masks = {
  pool: Buffer.alloc(4096),
  used: 4096,
  next(): Buffer {
    if (this.used === this.pool.length) {
      Crypto.randomFillSync(this.pool)
      this.used = 0
    }
    this.used += 4
    return this.pool.subarray(this.used - 4, this.used)
  }
}

/** A masked frame of `payloadLength` bytes, its payload written by `fill` at the offset it is given. */
export const maskedFrame = (
  opcode: number,
  payloadLength: number,
  fill: (frame: Buffer, offset: number) => void
): Buffer => {
  const lengthBytes = payloadLength < 126 ? 0 : payloadLength < 65536 ? 2 : 8
  const offset = 2 + lengthBytes + 4
  const frame = Buffer.allocUnsafe(offset + payloadLength)
  frame[0] = 0x80 | opcode
  if (lengthBytes === 0) frame[1] = 0x80 | payloadLength
  else if (lengthBytes === 2) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(payloadLength, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(payloadLength), 2)
  }
  const key = masks.next()
  key.copy(frame, offset - 4)
  fill(frame, offset)
  for (let i = 0; i < payloadLength; i++) frame[offset + i]! ^= key[i & 3]!
  return frame
}

/** The parts of a frame header read so far, and the message being assembled. */
export class FrameReader {
  /** The header's bytes (2 to 14). */
  private readonly head = Buffer.alloc(14)
  private headLength = 0
  /** The header's full length, once its second byte is known. */
  private headNeeded = 2
  private opcode = 0
  private fin = false
  /** Whether the header is whole and the payload is being read. */
  private inPayload = false
  private payloadLength = 0
  private payloadFilled = 0
  /** The current frame's payload, in memory of its size. */
  private payload: Buffer | undefined
  /**
   * A large frame's payload, copied piece by piece as it arrives: what it
   * holds follows what the server sent, not what its header claimed.
   */
  private pieces: Array<Buffer> | undefined
  /** A fragmented message: its opcode and the payloads of its frames so far. */
  private fragments: { readonly opcode: number; readonly parts: Array<Buffer>; bytes: number } | undefined
  private readonly maxPayload: number
  private readonly onMessage: (opcode: number, payload: Buffer) => void
  /** Where an unfragmented binary frame's payload goes, once the listener says. */
  binaryMemory: BinaryMemory | undefined
  /** While a payload is read: whether it is the listener's memory (given back if the frame is cut off). */
  private borrowed = false

  constructor(maxPayload: number, onMessage: (opcode: number, payload: Buffer) => void) {
    this.maxPayload = maxPayload
    this.onMessage = onMessage
  }

  /** Nothing more is taken in (the server closed, or broke the protocol): what follows in a read is dropped. */
  stopped = false

  /** Takes in `bytes` (valid only during this call); throws a `FrameError` at a violation. */
  push(bytes: Buffer): void {
    let at = 0
    while (at < bytes.length && !this.stopped) {
      if (!this.inPayload) {
        // the header, byte by byte until its length is known, then the rest at once
        const take = Math.min(this.headNeeded - this.headLength, bytes.length - at)
        bytes.copy(this.head, this.headLength, at, at + take)
        this.headLength += take
        at += take
        if (this.headLength === 2) this.headNeeded = this.headBytes()
        if (this.headLength === this.headNeeded) this.startPayload()
        continue
      }
      const take = Math.min(this.payloadLength - this.payloadFilled, bytes.length - at)
      if (this.pieces !== undefined) this.pieces.push(Buffer.copyBytesFrom(bytes, at, take))
      else bytes.copy(this.payload!, this.payloadFilled, at, at + take)
      at += take
      this.filled(take)
    }
    // a frame without payload ends with its header
    if (this.inPayload && this.payloadLength === 0 && !this.stopped) this.endFrame()
  }

  /** The header's length, from its first two bytes, after their checks. */
  private headBytes(): number {
    const [first, second] = [this.head[0]!, this.head[1]!]
    this.fin = (first & 0x80) !== 0
    this.opcode = first & 0x0f
    if ((first & 0x70) !== 0) {
      throw new FrameError(1002, "invalid WebSocket frame: RSV bits set (no extension was agreed)")
    }
    if ((second & 0x80) !== 0) throw new FrameError(1002, "invalid WebSocket frame: the server masked it")
    const control = this.opcode >= 0x8
    if (control) {
      if (this.opcode > opcodes.pong) throw new FrameError(1002, `invalid WebSocket frame: opcode ${this.opcode}`)
      if (!this.fin) throw new FrameError(1002, "invalid WebSocket frame: a fragmented control frame")
      if ((second & 0x7f) > 125) throw new FrameError(1002, "invalid WebSocket frame: a control frame over 125 bytes")
    } else if (this.opcode > opcodes.binary) {
      throw new FrameError(1002, `invalid WebSocket frame: opcode ${this.opcode}`)
    } else if (this.opcode === opcodes.continuation && this.fragments === undefined) {
      throw new FrameError(1002, "invalid WebSocket frame: a continuation with no message to continue")
    } else if (this.opcode !== opcodes.continuation && this.fragments !== undefined) {
      throw new FrameError(1002, "invalid WebSocket frame: a new message inside a fragmented one")
    }
    const length = second & 0x7f
    return length === 126 ? 4 : length === 127 ? 10 : 2
  }

  /** The header is whole: checks the length and makes room for the payload. */
  private startPayload(): void {
    const short = this.head[1]! & 0x7f
    let length = short
    if (short === 126) length = this.head.readUInt16BE(2)
    // past 2^53 the number is not exact, but it is far over any limit: too big (1009), as ws says it (the top bit too)
    else if (short === 127) length = Number(this.head.readBigUInt64BE(2))
    const message = length + (this.opcode < 0x8 ? this.fragments?.bytes ?? 0 : 0)
    if (message > this.maxPayload) {
      throw new FrameError(1009, `a WebSocket message of ${message} bytes, over the limit of ${this.maxPayload}`)
    }
    this.inPayload = true
    this.payloadLength = length
    this.payloadFilled = 0
    // a large frame piece by piece; a whole binary frame into the listener's memory; anything else into a buffer of
    // its own size (`allocUnsafe` takes Node's shared pool only under 4 KiB, so a larger one pins nothing else)
    const whole = this.opcode === opcodes.binary && this.fin && this.binaryMemory !== undefined
    this.borrowed = whole && length <= largeFrameBytes
    if (length > largeFrameBytes) this.pieces = []
    else if (whole) this.payload = this.binaryMemory!.reserve(length)
    else this.payload = Buffer.allocUnsafe(length)
  }

  /**
   * Room the next read may fill in place, so that its bytes are not copied:
   * the rest of the payload under way when it goes into memory of its own
   * size (not a large frame taken in piece by piece) and at least `minBytes`
   * of it are missing; `undefined` otherwise. What a read put there is given
   * to `filled`, not to `push`.
   */
  room(minBytes: number): Buffer | undefined {
    if (!this.inPayload || this.payload === undefined || this.stopped) return undefined
    const missing = this.payloadLength - this.payloadFilled
    return missing >= minBytes ? this.payload.subarray(this.payloadFilled, this.payloadLength) : undefined
  }

  /**
   * `bytes` more of the payload are in (read into the room `room` gave, or
   * copied by `push`); the frame ends with its last byte. Throws a
   * `FrameError` at a violation.
   */
  filled(bytes: number): void {
    this.payloadFilled += bytes
    if (this.payloadFilled === this.payloadLength) this.endFrame()
  }

  /** Whether a frame's header is expected next (none of it read yet). */
  get betweenFrames(): boolean {
    return !this.inPayload && this.headLength === 0
  }

  /** The connection ended (nothing is read after): a frame cut off gives the listener's memory back. */
  abandon(): void {
    if (this.inPayload && this.borrowed) this.binaryMemory?.release(this.payload!)
    this.payload = undefined
    this.pieces = undefined
  }

  private endFrame(): void {
    const payload = this.pieces !== undefined ? Buffer.concat(this.pieces, this.payloadLength) : this.payload!
    this.payload = undefined
    this.pieces = undefined
    this.inPayload = false
    this.headLength = 0
    this.headNeeded = 2
    if (this.opcode >= 0x8) return this.onMessage(this.opcode, payload)
    if (this.fin && this.fragments === undefined) return this.onMessage(this.opcode, payload)
    const fragments = this.fragments ?? (this.fragments = { opcode: this.opcode, parts: [], bytes: 0 })
    fragments.parts.push(payload)
    fragments.bytes += payload.length
    if (fragments.parts.length > maxFragments) {
      throw new FrameError(1009, `a WebSocket message in over ${maxFragments} fragments`)
    }
    if (!this.fin) return
    this.fragments = undefined
    this.onMessage(fragments.opcode, Buffer.concat(fragments.parts, fragments.bytes))
  }
}
