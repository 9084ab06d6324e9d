/**
 * Bounded byte buffers for captured output: keep the head (Codex's "shell
 * tool" rule), keep everything, or keep the head and the tail and count what
 * was cut between them. Memory is bounded by the caps, never by the output,
 * and follows the bytes kept, never the number of chunks they came in.
 *
 * Also the Codex rule that combines capped stdout and stderr into one
 * `aggregated` buffer.
 *
 * @since 0.1.0
 */
import { ByteBlocks, ByteRing } from "./internal/bytes.ts"

/**
 * What a capture kept of one stream, and what it saw.
 *
 * @category models
 * @since 0.1.0
 */
export interface Captured {
  /** The kept bytes: the head, or head then tail (without any marker). */
  readonly bytes: Uint8Array
  /** The kept bytes as UTF-8 text; a cut is marked `[… N bytes omitted …]`. */
  readonly text: string
  /** Every byte the stream produced, kept or not. */
  readonly totalBytes: number
  /** Bytes not kept. */
  readonly droppedBytes: number
  /** For a head-and-tail capture that cut: where the cut is in `bytes`, and how much it removed. */
  readonly omitted: { readonly atByte: number; readonly bytes: number } | undefined
}

/**
 * How much of a stream to keep.
 *
 * @category models
 * @since 0.1.0
 */
export type Limit =
  | { readonly _tag: "Head"; readonly maxBytes: number }
  | { readonly _tag: "Unlimited" }
  | { readonly _tag: "HeadTail"; readonly headBytes: number; readonly tailBytes: number }

/**
 * A growing capture of one stream. `append` never holds more than the limit.
 *
 * @category models
 * @since 0.1.0
 */
export interface CappedBuffer {
  readonly append: (chunk: Uint8Array) => void
  readonly snapshot: () => Captured
}

const decoder = new TextDecoder()

/**
 * Length of `bytes` without an incomplete UTF-8 sequence at its end, so a cut
 * never splits a character.
 *
 * @category utils
 * @since 0.1.0
 */
export const utf8CompleteLength = (bytes: Uint8Array): number => {
  const end = bytes.length
  for (let back = 1; back <= Math.min(3, end); back++) {
    const byte = bytes[end - back]!
    if ((byte & 0xc0) === 0x80) continue // continuation byte: keep looking for the lead
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1
    return needed > back ? end - back : end
  }
  return end
}

/** Index of the first byte that starts a character (skips leading continuation bytes). */
const utf8StartIndex = (bytes: Uint8Array): number => {
  let start = 0
  while (start < Math.min(3, bytes.length) && (bytes[start]! & 0xc0) === 0x80) start++
  return start
}

const concat = (chunks: ReadonlyArray<Uint8Array>, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}

/**
 * Keeps bytes up to `maxBytes` (Infinity for all), copied into blocks: what it
 * holds follows the bytes kept, never the number of chunks (an empty chunk
 * costs nothing).
 */
const headKeeper = (maxBytes: number) => {
  const blocks = new ByteBlocks()
  return {
    append(chunk: Uint8Array): number {
      // what fits: all of it, part, or nothing (which the blocks take for free)
      const kept = chunk.subarray(0, Math.max(0, maxBytes - blocks.length))
      blocks.append(kept)
      return kept.length
    },
    bytes: () => blocks.bytes()
  }
}

/**
 * Creates an empty capture with the given limit.
 *
 * @example
 * ```ts
 * import { CappedBuffer } from "effect-exec"
 *
 * const buffer = CappedBuffer.make({ _tag: "HeadTail", headBytes: 4, tailBytes: 4 })
 * buffer.append(new TextEncoder().encode("0123456789"))
 * buffer.snapshot().text // => "0123\n[… 2 bytes omitted …]\n6789"
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (limit: Limit): CappedBuffer => {
  let total = 0
  const head = headKeeper(
    limit._tag === "Head" ? limit.maxBytes : limit._tag === "HeadTail" ? limit.headBytes : Infinity
  )
  // the last bytes, in one ring of their size
  const tail = limit._tag === "HeadTail" ? new ByteRing(limit.tailBytes) : undefined
  return {
    append(chunk) {
      total += chunk.length
      const keptInHead = head.append(chunk)
      // the rest, empty while the head has room (which the ring takes for free)
      tail?.append(chunk.subarray(keptInHead))
    },
    snapshot() {
      const headBytes = head.bytes()
      if (tail === undefined) {
        const cut = total > headBytes.length
        return {
          bytes: headBytes,
          text: decoder.decode(cut ? headBytes.subarray(0, utf8CompleteLength(headBytes)) : headBytes),
          totalBytes: total,
          droppedBytes: total - headBytes.length,
          omitted: undefined
        }
      }
      const tailBytes = tail.bytes()
      const omittedBytes = total - headBytes.length - tailBytes.length
      const bytes = concat([headBytes, tailBytes], headBytes.length + tailBytes.length)
      if (omittedBytes === 0) {
        return { bytes, text: decoder.decode(bytes), totalBytes: total, droppedBytes: 0, omitted: undefined }
      }
      const text = decoder.decode(headBytes.subarray(0, utf8CompleteLength(headBytes))) +
        `\n[… ${omittedBytes} bytes omitted …]\n` +
        decoder.decode(tailBytes.subarray(utf8StartIndex(tailBytes)))
      return {
        bytes,
        text,
        totalBytes: total,
        droppedBytes: omittedBytes,
        omitted: { atByte: headBytes.length, bytes: omittedBytes }
      }
    }
  }
}

/**
 * The Codex rule for the combined output. Under the cap (or without one):
 * stdout then stderr. Over it: stdout gets at most a third of the cap, stderr
 * the rest, and room stderr leaves unused goes back to stdout. Each side keeps
 * its head.
 *
 * @example
 * ```ts
 * import { CappedBuffer } from "effect-exec"
 *
 * const a = new Uint8Array(10).fill(97), b = new Uint8Array(10).fill(98)
 * CappedBuffer.aggregate(a, b, 9).length // => 9 (3 × "a", then 6 × "b")
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const aggregate = (stdout: Uint8Array, stderr: Uint8Array, maxBytes: number | undefined): Uint8Array => {
  // under the cap, or without one, the split keeps both whole
  const cap = maxBytes ?? Infinity
  const stderrTake = Math.min(stderr.length, cap - Math.min(stdout.length, Math.floor(cap / 3)))
  const stdoutTake = Math.min(stdout.length, cap - stderrTake)
  return concat([stdout.subarray(0, stdoutTake), stderr.subarray(0, stderrTake)], stdoutTake + stderrTake)
}

/**
 * Captures of two streams folded into the `aggregated` capture by {@link aggregate}.
 *
 * @category combinators
 * @since 0.1.0
 */
export const aggregateCaptured = (stdout: Captured, stderr: Captured, maxBytes: number | undefined): Captured => {
  const bytes = aggregate(stdout.bytes, stderr.bytes, maxBytes)
  const totalBytes = stdout.totalBytes + stderr.totalBytes
  const cut = bytes.length < stdout.bytes.length + stderr.bytes.length
  return {
    bytes,
    text: cut ? decoder.decode(bytes) : stdout.text + stderr.text,
    totalBytes,
    droppedBytes: totalBytes - bytes.length,
    omitted: undefined
  }
}
