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
    ...outgoing({
      limits,
      closedReason: () => closedReason,
      buffered: () => (output as { writableLength?: number }).writableLength ?? 0,
      write: (frame, done) => output.write(frame + "\n", done),
      drop
    }),
    listen: ({ onClose, onFrame }) => {
      let pending = ""
      input.setEncoding?.("utf8")
      input.on("data", (data: string) => {
        pending += data
        let newline = pending.indexOf("\n")
        if (newline === -1 && pending.length > maxFrameBytes) {
          drop(`a line longer than ${maxFrameBytes} bytes: dropped`)
          return
        }
        while (newline !== -1) {
          const line = pending.slice(0, newline).trim()
          pending = pending.slice(newline + 1)
          if (line.length > 0) onFrame(line)
          newline = pending.indexOf("\n")
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
