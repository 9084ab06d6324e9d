/**
 * The memory a pipe process's output is read into. Each read lands in a scratch
 * buffer and is copied into a chunk of its own size; but where chunks are
 * lent (an exec-server's executor, a reader such as `Exec.run` that copies
 * what it keeps), a pipe that has written more than `smallOutputBytes` is
 * read straight into slabs (1 MiB each by default), a chunk being a view of
 * the slab it landed in. The remote client assembles the binary frames a
 * server pushes in slabs the same way (`reserve`), so that a stream's frames
 * leave no garbage either.
 *
 * A slab is reused only when every chunk in it was let go by its log at a
 * time when its reader had acknowledged it and every follower had taken it,
 * and nobody was ever handed a view of it to keep (`escape`). Any other end
 * of a chunk abandons its slab: it is never written again, and the collector
 * frees it once the last view is gone. So the bytes a view shows never change
 * under whoever may hold it, and an output stream that is read and
 * acknowledged as it goes (the exec-server's way) cycles through the same few
 * slabs instead of allocating, and leaving garbage, for each read.
 *
 * @internal
 */
import * as Defaults from "./defaults.ts"

/** What is known of one slab. */
export interface Slab {
  readonly bytes: Buffer
  /** Chunks taken from it and not yet released or abandoned. */
  live: number
  /** Some chunk of it may still be held: never reused. */
  abandoned: boolean
  /** The slab reads go into now: not reusable yet whatever `live` says. */
  current: boolean
}

/** Free slabs, shared by every process of this thread, bounded. */
class SlabPool {
  private readonly free: Array<Buffer> = []
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(Defaults.pipes.slabBytes)
  }
  give(bytes: Buffer): void {
    if (this.free.length < Defaults.pipes.pooledSlabs) this.free.push(bytes)
  }
}

const pool = new SlabPool()

let scratch: Buffer | undefined

/**
 * One buffer for the reads of every small output on this thread: each read's
 * bytes are copied out in its callback, before any other read can happen.
 */
const scratchBuffer = (): Buffer => (scratch ??= Buffer.allocUnsafeSlow(Defaults.pipes.readBufferBytes))

/**
 * When a process's output goes into slabs: `always` (its every reader lends,
 * as an exec-server's do), `whileLent` (until a chunk goes to someone who may
 * keep it: a reader that does not lend), or `never`.
 */
export type SlabPolicy = "always" | "whileLent" | "never"

/** The output memory of one process: the slabs its pipes are read into, while chunks of them live. */
export class OutputMemory {
  /** Slabs by their memory, while chunks of them are live (or reads go into them). */
  private readonly slabs = new Map<ArrayBufferLike, Slab>()
  private readonly policy: SlabPolicy
  /** A chunk went to someone who may keep it. */
  private kept = false

  constructor(policy: SlabPolicy) {
    this.policy = policy
  }

  /**
   * Whether large outputs go into slabs: only while chunks are lent (and so
   * come back); where chunks handed out are kept, a slab could never be
   * reused and chunks of their own size cost less.
   */
  get reuses(): boolean {
    return this.policy === "always" || (this.policy === "whileLent" && !this.kept)
  }

  /** The memory one pipe is read into (each pipe its own: a read buffer is the pipe's until its next read). */
  pipe(): PipeMemory {
    return new PipeMemory(this)
  }

  /** A slab for a pipe's reads. */
  takeSlab(): Slab {
    const bytes = pool.take()
    const slab = { bytes, live: 0, abandoned: false, current: true }
    this.slabs.set(bytes.buffer, slab)
    return slab
  }

  /** A pipe is done with `slab` (it took another, or closed). */
  leaveSlab(slab: Slab): void {
    slab.current = false
    this.recycleIfFree(slab)
  }

  /**
   * The log let `chunk` go. `reusable`: nobody can hold it any more (it was
   * acknowledged and taken by every follower); otherwise its slab is never
   * written again. A slab whose chunks are all gone is reused, or left to the
   * collector.
   */
  drop(chunk: Uint8Array, reusable: boolean): void {
    const slab = this.slabs.get(chunk.buffer)
    if (slab === undefined) return
    if (!reusable) slab.abandoned = true
    slab.live--
    this.recycleIfFree(slab)
  }

  /**
   * A view of `chunk` went to someone who may keep it: its slab is never
   * written again (and under `whileLent`, no later output goes into slabs).
   */
  escape(chunk: Uint8Array): void {
    this.kept = true
    const slab = this.slabs.get(chunk.buffer)
    if (slab !== undefined) slab.abandoned = true
  }

  /**
   * `first` and `second`, two chunks of one slab with `second` right after
   * `first`, as one chunk (counted once from now on); `undefined` where they
   * are not that.
   */
  join(first: Uint8Array, second: Uint8Array): Buffer | undefined {
    const slab = this.slabs.get(first.buffer)
    if (slab === undefined || second.buffer !== first.buffer || first.byteOffset + first.length !== second.byteOffset) {
      return undefined
    }
    slab.live--
    return Buffer.from(first.buffer, first.byteOffset, first.length + second.length)
  }

  /** Whether `chunk` is a view of one of these slabs. */
  holds(chunk: Uint8Array): boolean {
    return this.slabs.has(chunk.buffer)
  }

  /** Slabs that live chunks or reads hold (for tests). */
  get slabCount(): number {
    return this.slabs.size
  }

  private recycleIfFree(slab: Slab): void {
    if (slab.live > 0 || slab.current) return
    this.slabs.delete(slab.bytes.buffer)
    if (!slab.abandoned) pool.give(slab.bytes)
  }
}

/** Where one pipe's reads go: the scratch buffer while its output is small, then its own slabs. */
export class PipeMemory {
  private readonly memory: OutputMemory
  private current: Slab | undefined
  /** Where the next read goes in the current slab. */
  private offset = 0
  /** Bytes read so far: past `smallOutputBytes`, reads go into slabs. */
  private written = 0

  constructor(memory: OutputMemory) {
    this.memory = memory
  }

  /** The current slab, once it has `bytes` of room after `offset` (another slab when it has less). */
  private slabWithRoom(bytes: number): Slab {
    if (this.current === undefined || Defaults.pipes.slabBytes - this.offset < bytes) {
      if (this.current !== undefined) this.memory.leaveSlab(this.current)
      this.current = this.memory.takeSlab()
      this.offset = 0
    }
    return this.current
  }

  /** The buffer the next read goes into. */
  readBuffer(): Buffer {
    if (!this.memory.reuses || this.written < Defaults.pipes.smallOutputBytes) return scratchBuffer()
    const { minReadBytes, readBufferBytes, slabBytes } = Defaults.pipes
    const slab = this.slabWithRoom(minReadBytes)
    const start = this.offset
    return slab.bytes.subarray(start, start + Math.min(readBufferBytes, slabBytes - start))
  }

  /**
   * Room for `length` bytes that the caller writes (a frame arriving from a
   * server): a view of a slab, counted as a live chunk until it is dropped,
   * while the memory reuses slabs and the bytes take at most half a slab;
   * otherwise a buffer of their own.
   */
  reserve(length: number): Buffer {
    const { slabBytes } = Defaults.pipes
    if (!this.memory.reuses || length === 0 || length > slabBytes / 2) return Buffer.allocUnsafeSlow(length)
    const slab = this.slabWithRoom(length)
    const view = slab.bytes.subarray(this.offset, this.offset + length)
    slab.live++
    this.offset += length
    return view
  }

  /**
   * A read put `length` bytes at the start of `buffer` (what `readBuffer`
   * returned): the chunk that holds them, a view of the slab or a copy of its
   * own.
   */
  take(buffer: Buffer, length: number): Buffer {
    this.written += length
    const slab = this.current
    if (slab === undefined || buffer.buffer !== slab.bytes.buffer) return Buffer.copyBytesFrom(buffer, 0, length)
    slab.live++
    this.offset += length
    return buffer.subarray(0, length)
  }

  /**
   * A read put `length` bytes at the start of `buffer` right after `chunk`
   * in the same slab (what `take` returned last): `chunk` widened to end
   * after them, counted still as one chunk; `undefined` where they are not
   * adjacent (the read went elsewhere: `take` them).
   */
  extend(chunk: Buffer, buffer: Buffer, length: number): Buffer | undefined {
    const slab = this.current
    if (
      slab === undefined || buffer.buffer !== slab.bytes.buffer || chunk.buffer !== slab.bytes.buffer ||
      chunk.byteOffset + chunk.length !== buffer.byteOffset
    ) return undefined
    this.written += length
    this.offset += length
    return slab.bytes.subarray(chunk.byteOffset - slab.bytes.byteOffset, this.offset)
  }

  /** No more reads: the current slab is done with. */
  close(): void {
    if (this.current !== undefined) this.memory.leaveSlab(this.current)
    this.current = undefined
  }
}
