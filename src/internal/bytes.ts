/**
 * Byte stores whose cost follows the bytes, not the number of chunks: a
 * million one-byte (or empty) chunks hold what one chunk of a megabyte does.
 * `ByteBlocks` keeps everything appended, copied into blocks that double up
 * to a size; `ByteRing` keeps the last `capacity` bytes.
 *
 * @internal
 */

const MiB = 1024 * 1024
const empty = new Uint8Array(0)

/** Copies `parts` into one array of `length` bytes. */
const concat = (parts: ReadonlyArray<Uint8Array>, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** Every byte appended, in blocks of at most `blockBytes`: amortised O(1) a byte, one entry a block. */
export class ByteBlocks {
  private readonly sealed: Array<Uint8Array> = []
  private current: Uint8Array = empty
  private used = 0
  /** Bytes held. */
  length = 0
  private readonly blockBytes: number

  constructor(blockBytes: number = MiB) {
    this.blockBytes = blockBytes
  }

  /** Blocks allocated. */
  get blockCount(): number {
    return this.sealed.length + (this.current.length > 0 ? 1 : 0)
  }

  append(chunk: Uint8Array): void {
    let offset = 0
    while (offset < chunk.length) {
      if (this.used === this.current.length) this.grow(chunk.length - offset)
      const take = Math.min(chunk.length - offset, this.current.length - this.used)
      this.current.set(chunk.subarray(offset, offset + take), this.used)
      this.used += take
      offset += take
    }
    this.length += chunk.length
  }

  /** A full current block: doubles it, or seals it once it has `blockBytes` and starts another. */
  private grow(wanted: number): void {
    if (this.current.length === this.blockBytes) {
      this.sealed.push(this.current)
      this.current = empty
      this.used = 0
    }
    const capacity = Math.min(this.blockBytes, Math.max(256, this.current.length * 2, this.used + wanted))
    const next = new Uint8Array(capacity)
    next.set(this.current.subarray(0, this.used))
    this.current = next
  }

  bytes(): Uint8Array {
    return concat([...this.sealed, this.current.subarray(0, this.used)], this.length)
  }
}

/** The last `capacity` bytes appended, in one buffer allocated on first use. */
export class ByteRing {
  private buffer: Uint8Array = empty
  /** Where the next byte goes. */
  private end = 0
  /** Bytes held (at most `capacity`). */
  length = 0
  private readonly capacity: number

  constructor(capacity: number) {
    this.capacity = capacity
  }

  append(chunk: Uint8Array): void {
    const kept = chunk.subarray(Math.max(0, chunk.length - this.capacity))
    // nothing to keep (an empty chunk, or a ring of size 0): no buffer to allocate
    if (kept.length === 0) return
    if (this.buffer.length === 0) this.buffer = new Uint8Array(this.capacity)
    const first = Math.min(kept.length, this.capacity - this.end)
    this.buffer.set(kept.subarray(0, first), this.end)
    this.buffer.set(kept.subarray(first), 0)
    this.end = (this.end + kept.length) % this.capacity
    this.length = Math.min(this.capacity, this.length + kept.length)
  }

  bytes(): Uint8Array {
    if (this.length < this.capacity) return this.buffer.slice(this.end - this.length, this.end)
    return concat([this.buffer.subarray(this.end), this.buffer.subarray(0, this.end)], this.capacity)
  }
}
