/**
 * A transport of newline-delimited JSON over a pair of streams (a child's
 * stdio, or this process's).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { type Transport, TransportClosed } from "./transport.ts"

/**
 * A transport of newline-delimited JSON over a pair of streams (a child's
 * stdio, or this process's).
 *
 * @category transports
 * @since 0.1.0
 */
export const fromStreams = (input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Transport => {
  let closedReason: string | undefined
  return {
    send: (frame) =>
      Effect.callback<void, TransportClosed>((resume) => {
        if (closedReason !== undefined) return resume(Effect.fail(new TransportClosed({ description: closedReason })))
        output.write(frame + "\n", (error) =>
          resume(error ? Effect.fail(new TransportClosed({ description: error.message })) : Effect.void))
      }),
    listen: ({ onClose, onFrame }) => {
      let pending = ""
      input.setEncoding?.("utf8")
      input.on("data", (data: string) => {
        pending += data
        let newline = pending.indexOf("\n")
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
