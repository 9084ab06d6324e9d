/**
 * The `Executor` contract: processes addressed by a client-chosen `processId`,
 * each with a sequence-numbered log of output, exit and close (the Codex
 * `ExecProcess`). The local executor and the remote executor both implement
 * it, and one conformance suite checks both.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import { oneLine } from "./internal/oneLine.ts"
import type * as Protocol from "./Protocol.ts"

// =============================================================================
// Errors
// =============================================================================

/**
 * No process with this id exists in the session (never started, or forgotten
 * after its retention ended).
 *
 * @category errors
 * @since 0.1.0
 */
export class UnknownProcess extends Schema.TaggedClass<UnknownProcess>()("UnknownProcess", {
  processId: Schema.String
}) {
  get message(): string {
    return `unknown process id ${this.processId}`
  }
}

/**
 * The id is taken by a running process or by a closed one still retained.
 *
 * @category errors
 * @since 0.1.0
 */
export class ProcessIdInUse extends Schema.TaggedClass<ProcessIdInUse>()("ProcessIdInUse", {
  processId: Schema.String
}) {
  get message(): string {
    return `process ${this.processId} already exists`
  }
}

/**
 * The request is malformed (for example an empty `argv`). `invalidParams`
 * marks a request whose params are wrong, as opposed to one that is not
 * allowed in the state it came in (JSON-RPC tells the two apart).
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidRequest extends Schema.TaggedClass<InvalidRequest>()("InvalidRequest", {
  description: Schema.String,
  invalidParams: Schema.optionalKey(Schema.Boolean)
}) {
  get message(): string {
    return this.description
  }
}

/**
 * The process could not be started. `kind` says what was wrong so a caller can
 * act on it: the binary, the working directory, permissions, or something else.
 *
 * @category errors
 * @since 0.1.0
 */
export class SpawnFailed extends Schema.TaggedClass<SpawnFailed>()("SpawnFailed", {
  kind: Schema.Literals(["CommandNotFound", "CwdNotFound", "PermissionDenied", "Other"]),
  command: Schema.String,
  description: Schema.String
}) {
  get message(): string {
    return this.description
  }
}

/**
 * The executor does not offer this feature (for example a pty).
 *
 * @category errors
 * @since 0.1.0
 */
export class Unsupported extends Schema.TaggedClass<Unsupported>()("Unsupported", {
  feature: Schema.String
}) {
  get message(): string {
    return `this executor does not support ${this.feature}`
  }
}

/**
 * A sandboxed start the executor refused rather than run unconfined or
 * approximately confined. `kind` says why: no sandbox on this host
 * (`Unavailable`: no usable bubblewrap, another platform), a policy with a
 * part this executor cannot enforce faithfully (`Unsupported`), or an
 * executor that runs only sandboxed processes and was asked for an
 * unconfined one (`Required`).
 *
 * @category errors
 * @since 0.1.0
 */
export class SandboxRefused extends Schema.TaggedClass<SandboxRefused>()("SandboxRefused", {
  kind: Schema.Literals(["Unavailable", "Unsupported", "Required"]),
  description: Schema.String
}) {
  get message(): string {
    return this.kind === "Required"
      ? `this executor runs only sandboxed processes: ${this.description}`
      : `sandbox intent cannot be enforced on this executor: ${this.description}`
  }
}

/**
 * The link to a remote executor is gone.
 *
 * @category errors
 * @since 0.1.0
 */
export class ConnectionLost extends Schema.TaggedClass<ConnectionLost>()("ConnectionLost", {
  description: Schema.String
}) {
  get message(): string {
    return `connection to the exec-server lost: ${this.description}`
  }
}

/**
 * The process ran in a session its exec-server no longer has: the remote
 * client reconnected and could not resume the session (it expired while the
 * client was disconnected, or the server restarted), so it began a new one.
 * Every process of the old session is gone from the server, and what became
 * of it after the client last heard of it is unknown: it may have run on to
 * its end, or been killed with the session. Output the client received before
 * is delivered before this failure; processes started on the new session are
 * not affected.
 *
 * @category errors
 * @since 0.1.0
 */
export class SessionLost extends Schema.TaggedClass<SessionLost>()("SessionLost", {
  processId: Schema.String
}) {
  get message(): string {
    return `the exec-server no longer has the session process ${this.processId} ran in: it expired while the ` +
      `client was disconnected, or the server restarted; what became of the process is unknown`
  }
}

/**
 * No environment could serve the call (`Exec.run({ environment })` through an
 * `EnvironmentRegistry`). `kind` says why: no environment has that id
 * (`Unknown`), the configuration names no default one (`Disabled`: `default =
 * "none"`), every candidate is marked unhealthy until it answers a health
 * check again (`Unhealthy`), or no `EnvironmentRegistry` is provided
 * (`NoRegistry`). Nothing was started.
 *
 * @category errors
 * @since 0.1.0
 */
export class EnvironmentUnavailable extends Schema.TaggedClass<EnvironmentUnavailable>()("EnvironmentUnavailable", {
  kind: Schema.Literals(["Unknown", "Disabled", "Unhealthy", "NoRegistry"]),
  /** The environment asked for: an id, or the ids a choice was among. */
  environment: Schema.String,
  description: Schema.String
}) {
  get message(): string {
    return this.description
  }
}

/**
 * A remote executor answered with a JSON-RPC error we have no better reason for.
 *
 * @category errors
 * @since 0.1.0
 */
export class ServerError extends Schema.TaggedClass<ServerError>()("ServerError", {
  code: Schema.Int,
  description: Schema.String
}) {
  get message(): string {
    return `exec-server error ${this.code}: ${this.description}`
  }
}

/**
 * A remote executor broke the protocol: an answer that does not match its
 * method's schema, a read answer larger than asked for, output that repeats
 * or goes backwards, an exit code outside -1–255, … Nothing it said after
 * that is trusted: `Exec.run` ends the command as `Lost`.
 *
 * @category errors
 * @since 0.1.0
 */
export class ProtocolViolation extends Schema.TaggedClass<ProtocolViolation>()("ProtocolViolation", {
  description: Schema.String
}) {
  get message(): string {
    return `the exec-server broke the protocol: ${this.description}`
  }
}

// -----------------------------------------------------------------------------
// File reasons: the `fs/*` methods of an exec-server (Codex's codes in brackets)
// -----------------------------------------------------------------------------

/**
 * A path an `fs/*` call needs does not exist (`-32004`; `description` is the
 * OS's words, as Codex gives them: "No such file or directory (os error 2)").
 *
 * @category errors
 * @since 0.1.0
 */
export class PathNotFound extends Schema.TaggedClass<PathNotFound>()("PathNotFound", {
  path: Schema.String,
  description: Schema.String
}) {
  get message(): string {
    return this.description
  }
}

/**
 * The OS refused access to a path (`EACCES` / `EPERM`; `-32600`).
 *
 * @category errors
 * @since 0.1.0
 */
export class PathAccessDenied extends Schema.TaggedClass<PathAccessDenied>()("PathAccessDenied", {
  path: Schema.String,
  description: Schema.String
}) {
  get message(): string {
    return this.description
  }
}

/**
 * A file to read or data to write is larger than the limit of the server or
 * of the client (`-32600`). Nothing was read or written.
 *
 * @category errors
 * @since 0.1.0
 */
export class FileTooLarge extends Schema.TaggedClass<FileTooLarge>()("FileTooLarge", {
  path: Schema.String,
  operation: Schema.Literals(["read", "write"]),
  limit: Schema.Int
}) {
  get message(): string {
    return `file is too large to ${this.operation}: limit is ${this.limit} bytes`
  }
}

/**
 * Any other failure of the OS on a path: its error code (`EEXIST`,
 * `ENOTDIR`, …), number, and words (`-32603`).
 *
 * @category errors
 * @since 0.1.0
 */
export class FileSystemFailure extends Schema.TaggedClass<FileSystemFailure>()("FileSystemFailure", {
  path: Schema.String,
  code: Schema.String,
  errno: Schema.Int,
  description: Schema.String
}) {
  get message(): string {
    return this.description
  }
}

/**
 * Why a call to an execution environment failed: a process reason, or a file
 * reason (`PathNotFound`, `PathAccessDenied`, `FileTooLarge`,
 * `FileSystemFailure`) from an exec-server's `fs/*` methods, which the remote
 * file system turns into Effect's `PlatformError`.
 *
 * @category errors
 * @since 0.1.0
 */
export const ExecutorErrorReason = Schema.Union([
  UnknownProcess,
  ProcessIdInUse,
  InvalidRequest,
  SpawnFailed,
  Unsupported,
  SandboxRefused,
  ConnectionLost,
  SessionLost,
  EnvironmentUnavailable,
  ServerError,
  ProtocolViolation,
  PathNotFound,
  PathAccessDenied,
  FileTooLarge,
  FileSystemFailure
])

/**
 * @category errors
 * @since 0.1.0
 */
export type ExecutorErrorReason = typeof ExecutorErrorReason.Type

/**
 * The one error an `Executor` fails with; `reason` says why. Its `message`
 * is always one line (a server's words included: control characters are
 * spaces, and it is cut at 512 characters), so a command line can print it
 * as is.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Executor } from "effect-exec"
 *
 * const readIfKnown = Effect.gen(function*() {
 *   const executor = yield* Executor.Executor
 *   return yield* executor.read({ processId: "p1" }).pipe(
 *     Effect.catchTag("ExecutorError", (error) =>
 *       error.reason._tag === "UnknownProcess" ? Effect.succeed(undefined) : Effect.fail(error))
 *   )
 * })
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class ExecutorError extends Schema.TaggedError<ExecutorError>()("ExecutorError", {
  reason: ExecutorErrorReason
}) {
  override get message(): string {
    return oneLine(this.reason.message)
  }
}

// =============================================================================
// Models
// =============================================================================

/**
 * What to start: the decoded `process/start` parameters.
 *
 * @category models
 * @since 0.1.0
 */
export type StartRequest = Protocol.StartParams

/**
 * One entry of a process's log, in seq order.
 *
 * @category models
 * @since 0.1.0
 */
export type ProcessEvent =
  | {
    readonly _tag: "Output"
    readonly seq: number
    readonly stream: Protocol.OutputStream
    readonly chunk: Uint8Array
  }
  | {
    readonly _tag: "Exited"
    readonly seq: number
    readonly exitCode: number
    readonly signal: string | null
    /** The exit looks like the sandbox's doing (Codex's rule); always false for an unsandboxed process. */
    readonly sandboxDenied: boolean
  }
  | { readonly _tag: "Closed"; readonly seq: number }
  /**
   * Output up to `seq` was lost before this follower saw it (it fell too far
   * behind): `bytes` in `chunks` chunks. A lossless follower never sees one.
   */
  | { readonly _tag: "Dropped"; readonly seq: number; readonly bytes: number; readonly chunks: number }

/**
 * How a read's chunks may be handed over.
 *
 * @category models
 * @since 0.1.0
 */
export interface ReadOptions {
  /**
   * The caller copies what it keeps of the answer's chunks before it reads the
   * process again (as `Exec.run` does), so the executor may lend it memory it
   * reuses: each chunk stays as it is until a read (or `acknowledge`) of the
   * process presents a cursor at or past it. A large output read as it goes
   * then leaves no garbage per chunk. An executor that does not reuse memory
   * ignores it, and so does a wrapper that does not pass it on: its caller
   * gets chunks of its own, as without it.
   */
  readonly lent?: boolean | undefined
}

// =============================================================================
// Service
// =============================================================================

/**
 * Whether an executor confines the processes that ask for a sandbox, and if
 * not, why; and whether it requires one (`required`: every start that would
 * run unconfined is refused, as `LocalExecutor`'s `sandbox.required` does).
 * A server serving an executor that requires a sandbox refuses `fs/*` calls
 * that confine nothing too: one switch for the whole host.
 *
 * @category models
 * @since 0.1.0
 */
export type SandboxSupport =
  | { readonly available: true; readonly required?: boolean }
  | { readonly available: false; readonly reason: string; readonly required?: boolean }

/**
 * The contract every executor meets. Methods mirror the exec-server requests;
 * `events` streams one process's log (output, exit, close) in seq order from
 * `afterSeq` and ends after the close. A process started with `tty: true` runs
 * on a pseudo-terminal: its output (stdout and stderr as the terminal merged
 * them) is on stream `"pty"`, `write` types into the terminal, and `resize`
 * changes its size.
 *
 * @category services
 * @since 0.1.0
 */
export class Executor extends Context.Service<Executor, {
  readonly start: (request: StartRequest) => Effect.Effect<Protocol.StartResult, ExecutorError>
  readonly read: (
    request: Protocol.ReadParams,
    options?: ReadOptions
  ) => Effect.Effect<Protocol.ReadResult, ExecutorError>
  readonly write: (request: Protocol.WriteParams) => Effect.Effect<Protocol.WriteStatus, ExecutorError>
  readonly terminate: (processId: string) => Effect.Effect<{ readonly running: boolean }, ExecutorError>
  readonly signal: (processId: string, signal: Protocol.SignalName) => Effect.Effect<void, ExecutorError>
  /**
   * Sets the size of a `tty` process's terminal (the child gets `SIGWINCH`).
   * Fails with `InvalidRequest` for a process without a terminal, and with
   * `Unsupported` where the executor cannot resize (a Codex 0.169 server);
   * once the process has exited it does nothing.
   */
  readonly resize: (processId: string, size: Protocol.TerminalSize) => Effect.Effect<void, ExecutorError>
  /**
   * Optional: a reader has everything up to `afterSeq`, as a read at that
   * cursor would say, without reading (what an exec-server does with our
   * `process/acknowledge`). Without it, a server reads one byte at the cursor
   * instead.
   */
  readonly acknowledge?: ((processId: string, afterSeq: number) => Effect.Effect<void, ExecutorError>) | undefined
  /**
   * Ends the stdin of a process started with `pipeStdin`, after the writes
   * before it: the command reads end-of-file. `stdinClosed` when it was closed
   * already or the process exited. Fails with `InvalidRequest` for a `tty`
   * process (type Ctrl-D into its terminal instead), and with `Unsupported`
   * where the executor cannot (a Codex 0.169 server has no such method).
   */
  readonly closeStdin: (processId: string) => Effect.Effect<Protocol.WriteStatus, ExecutorError>
  readonly events: (
    processId: string,
    options?: { readonly afterSeq?: number }
  ) => Stream.Stream<ProcessEvent, ExecutorError>
  /** The working directory of the executor's host, for requests that name none. */
  readonly defaultCwd: Effect.Effect<string, ExecutorError>
  /** Whether a `sandbox` in a start is enforced here; when not, sandboxed starts fail with `SandboxRefused`. */
  readonly sandboxSupport: Effect.Effect<SandboxSupport, ExecutorError>
}>()("effect-exec/Executor") {}

/**
 * Fails with an `ExecutorError` of the given reason.
 *
 * @example
 * ```ts
 * import { Executor } from "effect-exec"
 *
 * const refused = Executor.failWith(new Executor.UnknownProcess({ processId: "p1" }))
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const failWith = (reason: ExecutorErrorReason): Effect.Effect<never, ExecutorError> =>
  Effect.fail(new ExecutorError({ reason }))

/**
 * The former name of {@link failWith}, which reads as `Effect.fail` when
 * imported bare.
 *
 * @deprecated Use `failWith`.
 * @category constructors
 * @since 0.1.0
 */
export const fail: (reason: ExecutorErrorReason) => Effect.Effect<never, ExecutorError> = failWith
