/**
 * What the remote client accepts from a server beyond the schemas: a read
 * answer whose output goes forwards from the cursor and fits what was asked,
 * an exit code a process can have, a signal's name. Anything else is a
 * protocol violation (a read answer), or is dropped (a notification): a server
 * that repeats output, inflates an answer or invents exit codes cannot make
 * the client print a byte twice, hold more than it asked for, or call a
 * failure a success.
 *
 * @internal
 */
import type * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"

/**
 * An exit code a server may report: 0–255 (a death by signal n is 128 + n),
 * or -1, Codex's value when it could not learn the code.
 */
export const isExitCode = (code: number): boolean => Number.isInteger(code) && code >= -1 && code <= 255

/** A signal's name as the protocol carries it (`"SIGKILL"`), or none. */
export const isSignalName = (signal: string | null | undefined): boolean =>
  signal === null || signal === undefined || /^SIG[A-Z0-9]{1,12}$/.test(signal)

/** Some of a peer's text, quoted, short whatever it sent. */
const quoted = (text: string): string => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)

/**
 * Why a read answer breaks the protocol, or `undefined` when it keeps it:
 * every chunk after the cursor and after the one before it, `nextSeq` past
 * the last chunk, no more bytes than `maxBytes` and the slack for a whole first
 * chunk (`readSlackBytes`), an exit code in range, a signal's name, no close
 * without an exit.
 */
export const readAnswerViolation = (request: Protocol.ReadParams, answer: Protocol.ReadResult): string | undefined => {
  const afterSeq = request.afterSeq ?? 0
  let previous = afterSeq
  let bytes = 0
  for (const { chunk, seq } of answer.chunks) {
    if (seq <= previous) {
      return seq <= afterSeq
        ? `a read after seq ${afterSeq} returned seq ${seq} again`
        : `a read returned seq ${seq} after seq ${previous}`
    }
    previous = seq
    bytes += chunk.length
  }
  if (answer.chunks.length > 0 && answer.nextSeq <= previous) {
    return `a read returned nextSeq ${answer.nextSeq} with a chunk of seq ${previous}`
  }
  const maxBytes = request.maxBytes ?? null
  if (maxBytes !== null && bytes > maxBytes + Defaults.client.readSlackBytes) {
    return `a read of at most ${maxBytes} bytes returned ${bytes}`
  }
  if (answer.exitCode !== null && !isExitCode(answer.exitCode)) {
    return `exit code ${answer.exitCode} is outside -1–255`
  }
  if (answer.exited && answer.exitCode === null) return "a read said exited without an exit code"
  if (answer.closed && !answer.exited) return "a read said closed without an exit"
  if (!isSignalName(answer.signal)) return `${quoted(answer.signal!)} is no signal's name`
  if (answer.dropped !== undefined && (answer.dropped.bytes < 0 || answer.dropped.chunks < 0)) {
    return `a read said it dropped ${answer.dropped.bytes} bytes in ${answer.dropped.chunks} chunks`
  }
  return undefined
}
