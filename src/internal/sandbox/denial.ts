/**
 * Whether a sandboxed process's exit looks like the sandbox's doing, by
 * Codex's rule (`is_likely_sandbox_denied`), evaluated once at the exit over
 * the output the process retained:
 *
 * 1. an exit code of 0 is never a denial;
 * 2. output (stdout, stderr, or both in order) that mentions a denial
 *    ("operation not permitted", "permission denied", "read-only file
 *    system", "seccomp", "sandbox", "landlock", "failed to write file"), in
 *    any case, is one;
 * 3. otherwise exit codes 2, 126 and 127 (usage, not executable, not found)
 *    are not;
 * 4. otherwise only a death by SIGSYS (159, a seccomp kill) is.
 *
 * Only for sandboxed processes: an unsandboxed one is never denied.
 *
 * @internal
 */
import type * as Protocol from "../../Protocol.ts"

const denialWords = [
  "operation not permitted",
  "permission denied",
  "read-only file system",
  "seccomp",
  "sandbox",
  "landlock",
  "failed to write file"
]

const quietExitCodes = new Set([2, 126, 127])

/** 128 + SIGSYS: what a process killed by a seccomp filter exits with. */
const sigsysExitCode = 159

const decoder = new TextDecoder()

const mentionsDenial = (chunks: ReadonlyArray<Protocol.ProcessChunk>): boolean => {
  if (chunks.length === 0) return false
  const text = (selected: ReadonlyArray<Protocol.ProcessChunk>) =>
    decoder.decode(Buffer.concat(selected.map((chunk) => chunk.chunk))).toLowerCase()
  const texts = [
    text(chunks.filter((chunk) => chunk.stream !== "stderr")),
    text(chunks.filter((chunk) => chunk.stream === "stderr")),
    text(chunks)
  ]
  return texts.some((output) => denialWords.some((word) => output.includes(word)))
}

/** Codex's rule over the exit code and the output retained at the exit (in seq order). */
export const isLikelySandboxDenied = (exitCode: number, retained: ReadonlyArray<Protocol.ProcessChunk>): boolean => {
  if (exitCode === 0) return false
  if (mentionsDenial(retained)) return true
  if (quietExitCodes.has(exitCode)) return false
  return exitCode === sigsysExitCode
}
