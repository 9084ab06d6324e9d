/**
 * A transport of newline-delimited JSON over a pair of streams (a child's
 * stdio, or this process's).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { outgoing, type OutgoingLimits, type Transport } from "./transport.ts"

/**
 * A transport of newline-delimited JSON over a pair of streams (a child's
 * stdio, or this process's).
 *
 * @category transports
 * @since 0.1.0
 */
export const fromStreams = (
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  limits: OutgoingLimits & {
    /** The longest line accepted; a longer one ends the link (default: no limit). */
    readonly maxFrameBytes?: number | undefined
  } = {}
): Transport => {
  let closedReason: string | undefined
  const drop = (reason: string) => {
    closedReason ??= reason
    output.end?.()
    ;(input as { destroy?: () => void }).destroy?.()
  }
  const maxFrameBytes = limits.maxFrameBytes ?? Infinity
  return {
    pause: () => input.pause(),
    resume: () => input.resume(),
    ...outgoing({
      limits,
      closedReason: () => closedReason,
      buffered: () => (output as { writableLength?: number }).writableLength ?? 0,
      write: (frame, done) => {
        if (typeof frame === "string") return output.write(frame + "\n", done)
        output.write(frame)
        output.write("\n", done)
      },
      drop
    }),
    listen: ({ onClose, onFrame }) => {
      // the unfinished line, in the pieces it arrived in: each piece is searched once, so a long line costs
      // linear time (searching the whole pending text on each arrival would be quadratic)
      let pieces: Array<string> = []
      let pendingLength = 0
      input.setEncoding?.("utf8")
      input.on("data", (data: string) => {
        let start = 0
        let newline = data.indexOf("\n")
        while (newline !== -1 && closedReason === undefined) {
          pieces.push(data.slice(start, newline))
          const line = pieces.length === 1 ? pieces[0]! : pieces.join("")
          pieces = []
          pendingLength = 0
          if (line.length > maxFrameBytes) return drop(`a line longer than ${maxFrameBytes} bytes: dropped`)
          const trimmed = line.trim()
          if (trimmed.length > 0) onFrame(trimmed)
          start = newline + 1
          newline = data.indexOf("\n", start)
        }
        if (start < data.length) {
          pieces.push(start === 0 ? data : data.slice(start))
          pendingLength += data.length - start
          if (pendingLength > maxFrameBytes) drop(`a line longer than ${maxFrameBytes} bytes: dropped`)
        }
      })
      const end = () => {
        closedReason ??= "the stream ended"
        onClose(closedReason)
      }
      input.on("end", end)
      input.on("close", end)
      output.on?.("error", () => {
        closedReason ??= "the output stream failed"
      })
    },
    close: Effect.sync(() => {
      closedReason ??= "closed by this side"
      output.end?.()
    })
  }
}
