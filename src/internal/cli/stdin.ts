/**
 * The CLI's own stdin as a stream of bytes for the command: read only as fast
 * as the command takes it, ended by end-of-file (or a read error, which ends
 * the input as EOF would), and released when the stream stops — whether
 * it ended or the command no longer wants it — so a stdin that never ends
 * (`sleep 100 | effect-exec run -- true`) does not keep the CLI alive.
 *
 * @internal
 */
import * as NodeStream from "@effect/platform-node-shared/NodeStream"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as NodeFs from "node:fs"

/** The bytes of `input` (this process's stdin by default) until its end. */
export const bytes = (input: NodeJS.ReadStream = process.stdin): Stream.Stream<Uint8Array> =>
  NodeStream.fromReadable<Uint8Array>({ evaluate: () => input, closeOnDone: false }).pipe(
    Stream.ignore,
    Stream.ensuring(Effect.sync(() => {
      input.pause()
      ;(input as { unref?: () => void }).unref?.()
    }))
  )

/**
 * Whether this process's stdin is `/dev/null` (what CI and `< /dev/null`
 * give; Node also reopens a closed stdin there). Then the command gets its own
 * `/dev/null` rather than a pipe fed nothing: the same end-of-file at once,
 * also from an exec-server that cannot end a pipe's input (Codex's).
 */
export const isDevNull = (): boolean => {
  try {
    const stdin = NodeFs.fstatSync(0)
    const devNull = NodeFs.statSync("/dev/null")
    return stdin.isCharacterDevice() && stdin.rdev === devNull.rdev
  } catch {
    return false
  }
}
