/**
 * Where a command's program is, found once by one rule for every kind of
 * start (on pipes, in a sandbox, on a terminal), so a request that starts in
 * one mode does not fail with "command not found" in another. The rule is
 * `execvp`'s, as Node documents it for `spawn`: a command with a `/` is a path
 * from the working directory; any other is looked for in the child's `PATH`
 * (`/usr/bin:/bin` when it has none; an empty entry is the working
 * directory), and the first regular file there that may be executed wins. A
 * candidate that exists but may not be executed makes the failure "permission
 * denied" rather than "not found", as `execvp` reports it. The process is
 * then started from the path found; a spawner that cannot set `argv[0]` apart
 * from the file it runs (a terminal's fork, bubblewrap before 0.9) is given
 * the command as written instead, so that `argv[0]` stays what the request
 * said, and looks it up again by the same `PATH` (`execName`).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { accessSync, statSync } from "node:fs"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { SpawnFailed } from "../../Executor.ts"

/** The search path of a child whose environment has no `PATH` (Node's, for `spawn`). */
export const defaultSearchPath = "/usr/bin:/bin"

/** The longest file name (NAME_MAX): a longer program name is on no directory of PATH. */
const maxFileNameBytes = 255

type Candidate = "executable" | "refused" | "missing"

/** What `path` is to `execve`: a regular file it may run, one it may not (or a directory), or nothing. */
const inspect = (path: string): Effect.Effect<Candidate> =>
  Effect.promise(async (): Promise<Candidate> => {
    try {
      const stats = await NodeFs.stat(path)
      if (!stats.isFile()) return "refused"
      await NodeFs.access(path, NodeFs.constants.X_OK)
      return "executable"
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EACCES" ? "refused" : "missing"
    }
  })

/** Whether `path` is a regular file (links followed) this process may execute. */
export const isExecutableFile = (path: string): Effect.Effect<boolean> =>
  Effect.map(inspect(path), (candidate) => candidate === "executable")

/** {@link isExecutableFile}, synchronously: for a lookup made once (the login shell), never per request. */
export const isExecutableFileSync = (path: string): boolean => {
  try {
    if (!statSync(path).isFile()) return false
    accessSync(path, NodeFs.constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The candidates for `command`, in the order `execvp` tries them, each once
 * (a `PATH` that repeats a directory costs one look); none for a name no
 * directory can hold.
 */
const candidatesOf = (command: string, cwd: string, searchPath: string | undefined): ReadonlyArray<string> => {
  if (command.includes("/")) return [NodePath.resolve(cwd, command)]
  if (Buffer.byteLength(command) > maxFileNameBytes) return []
  const candidates = new Set<string>()
  for (const directory of (searchPath ?? defaultSearchPath).split(":")) {
    candidates.add(NodePath.resolve(cwd, directory, command))
  }
  return [...candidates]
}

/**
 * What to give a spawner that looks `command` up itself (`execvp`) and makes
 * it `argv[0]`: the command as written, which the child's `PATH` leads to the
 * same `program`; without a `PATH` (whose default differs between `execvp`s)
 * the path found.
 */
export const execName = (command: string, program: string, searchPath: string | undefined): string =>
  command.includes("/") || searchPath !== undefined ? command : program

/**
 * The absolute path of the program `command` runs, for a child in `cwd` whose
 * `PATH` is `searchPath`; fails as the start would (`CommandNotFound`,
 * `PermissionDenied`).
 */
export const resolveCommand = (
  command: string,
  cwd: string,
  searchPath: string | undefined
): Effect.Effect<string, SpawnFailed> =>
  Effect.gen(function*() {
    let refused = false
    if (command !== "") {
      for (const candidate of candidatesOf(command, cwd, searchPath)) {
        const found = yield* inspect(candidate)
        if (found === "executable") return candidate
        refused ||= found === "refused"
      }
    }
    return yield* Effect.fail(
      refused
        ? new SpawnFailed({ kind: "PermissionDenied", command, description: `permission denied: ${command}` })
        : new SpawnFailed({ kind: "CommandNotFound", command, description: `command not found: ${command}` })
    )
  })
