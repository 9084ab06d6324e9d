/**
 * What a `process/start` may ask of this machine, checked before anything is
 * spawned: no NUL byte where the OS takes a C string (Node would throw), no
 * argv or environment larger than `exec` takes, and an environment policy
 * within the bounds that keep its cost linear in the request. Each check reads
 * the request once. Then, on the machine, its working directory must be a
 * directory (`checkCwd`, the same for a child on pipes or on a terminal).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import { InvalidRequest, SpawnFailed, type StartRequest } from "../../Executor.ts"
import * as Defaults from "../defaults.ts"

const refuse = (description: string) => new InvalidRequest({ description, invalidParams: true })

/** The first problem of `request`, or `undefined` when it may be spawned. */
export const startProblem = (
  request: StartRequest,
  limits: typeof Defaults.spawn = Defaults.spawn
): InvalidRequest | undefined => {
  let total = 0
  /** Counts one string handed to `exec` (`parts` joined, and `extraBytes`: `=` and the NUL); names it when it cannot be. */
  const check = (label: string, parts: ReadonlyArray<string>, extraBytes: number): InvalidRequest | undefined => {
    let bytes = extraBytes
    for (const part of parts) {
      if (part.includes("\0")) return refuse(`${label} contains a NUL byte`)
      bytes += Buffer.byteLength(part)
    }
    total += bytes
    if (bytes > limits.maxStringBytes) {
      return refuse(`${label} is ${bytes} bytes: longer than exec accepts (${limits.maxStringBytes})`)
    }
    return undefined
  }
  const checkEnvironment = (label: string, env: Readonly<Record<string, string>>) => {
    for (const name in env) {
      // NAME=value and its NUL
      const problem = check(`${label} ${JSON.stringify(name.slice(0, 64))}`, [name, env[name]!], 2)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  if (request.cwd.includes("\0")) return refuse("cwd contains a NUL byte")
  if (request.arg0 !== undefined && request.arg0 !== null && request.arg0.includes("\0")) {
    return refuse("arg0 contains a NUL byte")
  }
  for (let i = 0; i < request.argv.length; i++) {
    const problem = check(`argv[${i}]`, [request.argv[i]!], 1)
    if (problem !== undefined) return problem
  }
  const problem = checkEnvironment("env", request.env) ??
    (request.envPolicy ? checkEnvironment("envPolicy.set", request.envPolicy.set) : undefined)
  if (problem !== undefined) return problem
  if (total > limits.maxTotalBytes) {
    return refuse(
      `argv and environment hold ${total} bytes: more than exec accepts (${limits.maxTotalBytes}, argument list too long)`
    )
  }
  const policy = request.envPolicy
  if (policy) {
    for (const [field, patterns] of [["exclude", policy.exclude], ["includeOnly", policy.includeOnly]] as const) {
      if (patterns.length > limits.maxEnvPatterns) {
        return refuse(`envPolicy.${field} has ${patterns.length} patterns: at most ${limits.maxEnvPatterns}`)
      }
      const chars = patterns.reduce((sum, pattern) => sum + pattern.length, 0)
      if (chars > limits.maxEnvPatternChars) {
        return refuse(`envPolicy.${field} has ${chars} characters of patterns: at most ${limits.maxEnvPatternChars}`)
      }
    }
  }
  return undefined
}

/** Fails with `CwdNotFound` unless `cwd` is a directory. */
export const checkCwd = (command: string, cwd: string) =>
  Effect.callback<void, SpawnFailed>((resume) => {
    NodeFs.stat(cwd, (error, stats) => {
      if (error === null && stats.isDirectory()) return resume(Effect.void)
      resume(Effect.fail(
        new SpawnFailed({
          kind: "CwdNotFound",
          command,
          description: error === null
            ? `working directory is not a directory: ${cwd}`
            : `working directory does not exist: ${cwd}`
        })
      ))
    })
  })
