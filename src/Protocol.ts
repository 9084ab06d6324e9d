/**
 * Schemas for every message of the exec-server wire protocol (the Codex
 * exec-server protocol, see `shared/protocol.md`), plus our optional
 * extensions.
 *
 * Each schema decodes the wire shape into the value the `Executor` contract
 * works with: chunks are standard base64 on the wire and `Uint8Array` inside,
 * `cwd` is a `file://` URI or a plain path on the wire and a plain path inside.
 * Encoding produces the shape the Codex 0.169 exec-server accepts.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SchemaGetter from "effect/SchemaGetter"
import * as SchemaIssue from "effect/SchemaIssue"
import * as NodeOs from "node:os"
import { isAbsolute } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import {
  ExecutorErrorReason,
  FileSystemFailure,
  FileTooLarge,
  InvalidRequest,
  PathAccessDenied,
  PathNotFound,
  ProcessIdInUse,
  SandboxRefused,
  ServerError,
  SpawnFailed,
  UnknownProcess,
  Unsupported
} from "./Executor.ts"
import { errnoCode } from "./internal/fs/osError.ts"
import { parsePathUri, toPathUri } from "./internal/fs/pathUri.ts"
import { ErrorCode } from "./JsonRpc.ts"

// =============================================================================
// Shared pieces
// =============================================================================

/**
 * The output stream a chunk came from.
 *
 * @category models
 * @since 0.1.0
 */
export const OutputStream = Schema.Literals(["stdout", "stderr", "pty"])

/**
 * @category models
 * @since 0.1.0
 */
export type OutputStream = typeof OutputStream.Type

/** Decodes standard base64 with Node's native codec, refusing anything that is not base64. */
const decodeBase64 = (wire: string): Effect.Effect<Uint8Array, SchemaIssue.Issue> => {
  const bytes = Buffer.from(wire, "base64")
  // Buffer skips characters outside the alphabet: a decoded length short of
  // what the text's length implies betrays them, without a scan in JavaScript
  // (and a text whose length is no multiple of 4 implies no whole length)
  const padding = wire.endsWith("==") ? 2 : wire.endsWith("=") ? 1 : 0
  return bytes.length === (wire.length / 4) * 3 - padding
    ? Effect.succeed(bytes)
    : Effect.fail(new SchemaIssue.InvalidValue({ message: "invalid base64: expected standard base64 with padding" }))
}

const encodeBase64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

/**
 * Raw bytes, carried as standard base64 (with padding) on the wire. Uses
 * Node's native codec: chunks are the bulk of the traffic.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Bytes = Schema.String.pipe(
  Schema.decodeTo(Schema.Uint8Array, {
    decode: SchemaGetter.transformEffect(decodeBase64),
    encode: SchemaGetter.transform(encodeBase64)
  })
)

/**
 * A sequence number: per process, starting at 1, shared by output, exit and close.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Seq = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const parseCwd = (wire: string): Option.Option<string> => {
  if (!wire.startsWith("file:")) return wire.startsWith("/") ? Option.some(wire) : Option.none()
  try {
    return Option.some(fileURLToPath(wire))
  } catch {
    return Option.none()
  }
}

/**
 * A working directory: an absolute path, or a `file://` URI on the wire (the
 * Codex 0.169 shape, which is also what encoding produces). Encoding refuses a
 * relative path: it would be made absolute against this process's directory,
 * which is not the server's.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Cwd = Schema.String.pipe(
  Schema.decodeTo(Schema.String, {
    decode: SchemaGetter.transformEffect((wire: string) => {
      const path = parseCwd(wire)
      return Option.isSome(path)
        ? Effect.succeed(path.value)
        : Effect.fail(
          new SchemaIssue.InvalidValue({
            message: `invalid URI: cwd must be an absolute path or a file:// URI, got ${JSON.stringify(wire)}`
          })
        )
    }),
    encode: SchemaGetter.transformEffect((path: string) =>
      isAbsolute(path)
        ? Effect.succeed(pathToFileURL(path).href)
        : Effect.fail(
          new SchemaIssue.InvalidValue({
            message: `cwd must be an absolute path: the server cannot tell what ${JSON.stringify(path)} is relative to`
          })
        )
    )
  })
)

/**
 * A path of the `fs/*` methods: a `file:` URI on the wire (as Codex 0.169
 * requires: a plain path is refused with `-32602`), an absolute path inside.
 * Decoding reads URIs as Codex does (`file:/a`, `file://localhost/a`, `%XX`
 * decoded, `..` resolved, a trailing slash dropped); encoding refuses a
 * relative path, which names no place on its own.
 *
 * @category schemas
 * @since 0.1.0
 */
export const PathUri = Schema.String.pipe(
  Schema.decodeTo(Schema.String, {
    decode: SchemaGetter.transformEffect((wire: string) => {
      const parsed = parsePathUri(wire)
      return parsed.ok
        ? Effect.succeed(parsed.path)
        : Effect.fail(new SchemaIssue.InvalidValue({ message: parsed.message }))
    }),
    encode: SchemaGetter.transformEffect((path: string) => {
      const uri = toPathUri(path)
      return uri === undefined
        ? Effect.fail(new SchemaIssue.InvalidValue({ message: `not an absolute path: ${JSON.stringify(path)}` }))
        : Effect.succeed(uri)
    })
  })
)

/**
 * How a server builds a child's environment from its own (Codex's shell
 * environment policy). Without a policy the child gets exactly `env`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const EnvPolicy = Schema.Struct({
  inherit: Schema.Literals(["all", "core", "none"]),
  ignoreDefaultExcludes: Schema.Boolean,
  exclude: Schema.Array(Schema.String),
  set: Schema.Record(Schema.String, Schema.String),
  includeOnly: Schema.Array(Schema.String)
})

/**
 * @category models
 * @since 0.1.0
 */
export type EnvPolicy = typeof EnvPolicy.Type

/**
 * Output lost to retention before a reader saw it (our extension).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Dropped = Schema.Struct({
  bytes: Schema.Int,
  chunks: Schema.Int
})

/**
 * @category models
 * @since 0.1.0
 */
export type Dropped = typeof Dropped.Type

// =============================================================================
// Handshake
// =============================================================================

/**
 * @category schemas
 * @since 0.1.0
 */
export const InitializeParams = Schema.Struct({
  clientName: Schema.String,
  resumeSessionId: Schema.optionalKey(Schema.NullOr(Schema.String))
})

/**
 * What a server says of the host it runs on, in Codex 0.169's shape and key
 * order (Codex also sends `providerId`, a build stamp, and `prependPathDirs`,
 * where its bundled tools live). `shell` is the user's login shell (`name` is
 * its kind: `bash`, `zsh`, `sh`, `powershell` or `cmd`); directories are
 * `file://` URIs on the wire; `capabilities` says which optional Codex
 * features the server offers (its client calls `fs/watchMissing` and
 * `environmentConfig/read` only when they are true).
 *
 * @category schemas
 * @since 0.1.0
 */
export const EnvironmentInfo = Schema.Struct({
  shell: Schema.optionalKey(Schema.Struct({ name: Schema.String, path: Schema.String })),
  executorVersion: Schema.optionalKey(Schema.String),
  cwd: Schema.optionalKey(Cwd),
  userHomeDir: Schema.optionalKey(Cwd),
  platformOs: Schema.optionalKey(Schema.String),
  temporaryDirectories: Schema.optionalKey(Schema.Array(Cwd)),
  tempDir: Schema.optionalKey(Cwd),
  capabilities: Schema.optionalKey(Schema.Record(Schema.String, Schema.Boolean))
})

/**
 * @category models
 * @since 0.1.0
 */
export type EnvironmentInfo = typeof EnvironmentInfo.Type

/**
 * @category schemas
 * @since 0.1.0
 */
export const InitializeResult = Schema.Struct({
  sessionId: Schema.String,
  environmentInfo: Schema.optionalKey(EnvironmentInfo),
  /** Our extensions the server offers (ours only; a Codex server sends none). */
  capabilities: Schema.optionalKey(Schema.Array(Schema.String))
})

/**
 * Parameters of the `initialized` notification: Codex sends `{}`;
 * `binaryOutput` is our extension (see {@link binaryOutputCapability}).
 *
 * @category schemas
 * @since 0.1.0
 */
export const InitializedParams = Schema.Struct({
  binaryOutput: Schema.optionalKey(Schema.Boolean)
})

// =============================================================================
// Terminals
// =============================================================================

/** A terminal dimension: Codex carries rows and columns as `u16`; zero cells is no terminal. */
const Cells = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65_535 }))

/**
 * A terminal's size in character cells, in the shape Codex gives it
 * (`TerminalSize` of its `command/exec`, and the `size` of the early
 * exec-server's `process/resize`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const TerminalSize = Schema.Struct({
  rows: Cells,
  cols: Cells
})

/**
 * @category models
 * @since 0.1.0
 */
export type TerminalSize = typeof TerminalSize.Type

// =============================================================================
// Sandbox policies (Codex's `sandbox` value of process/start and fs/*)
// =============================================================================

/**
 * A path the platform or the request names (Codex's `FileSystemSpecialPath`):
 * `root` is `/`; `minimal` the system's read set (`/bin`, `/usr`, `/etc`,
 * `/lib`…); `project_roots` each workspace root, joined with a relative
 * `subpath` (`current_working_directory` is its older name); `tmpdir` the
 * command's `$TMPDIR`; `slash_tmp` `/tmp`; `unknown` a newer Codex's kind,
 * kept so that such a policy still decodes.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxSpecialPath = Schema.Union([
  Schema.Struct({ kind: Schema.Literal("root") }),
  Schema.Struct({ kind: Schema.Literal("minimal") }),
  Schema.Struct({ kind: Schema.Literal("current_working_directory") }),
  Schema.Struct({
    kind: Schema.Literal("project_roots"),
    subpath: Schema.optionalKey(Schema.NullOr(Schema.String))
  }),
  Schema.Struct({ kind: Schema.Literal("tmpdir") }),
  Schema.Struct({ kind: Schema.Literal("slash_tmp") }),
  Schema.Struct({
    kind: Schema.Literal("unknown"),
    path: Schema.String,
    subpath: Schema.optionalKey(Schema.NullOr(Schema.String))
  })
])

/**
 * @category models
 * @since 0.1.0
 */
export type SandboxSpecialPath = typeof SandboxSpecialPath.Type

/**
 * What a policy entry applies to: an absolute path, a glob pattern, or a
 * special path.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxPath = Schema.Union([
  Schema.Struct({ type: Schema.Literal("path"), path: PathUri }),
  Schema.Struct({ type: Schema.Literal("glob_pattern"), pattern: Schema.String }),
  Schema.Struct({ type: Schema.Literal("special"), value: SandboxSpecialPath })
])

/**
 * @category models
 * @since 0.1.0
 */
export type SandboxPath = typeof SandboxPath.Type

/**
 * Access an entry grants: `deny` hides a path (`none` is its older name).
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxAccess = Schema.Literals(["read", "write", "deny", "none"])

/**
 * One entry of a restricted file system policy. Where entries overlap, the
 * most specific path wins; on a tie, `deny` beats `write`, which beats `read`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxEntry = Schema.Struct({
  path: SandboxPath,
  access: SandboxAccess,
  missing_path_behavior: Schema.optionalKey(Schema.NullOr(Schema.Literal("skip")))
})

/**
 * @category models
 * @since 0.1.0
 */
export type SandboxEntry = typeof SandboxEntry.Type

/**
 * The file system part of a managed profile.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxFileSystem = Schema.Union([
  Schema.Struct({
    type: Schema.Literal("restricted"),
    entries: Schema.Array(SandboxEntry),
    glob_scan_max_depth: Schema.optionalKey(Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))))
  }),
  Schema.Struct({ type: Schema.Literal("unrestricted") })
])

/**
 * @category models
 * @since 0.1.0
 */
export type SandboxFileSystem = typeof SandboxFileSystem.Type

/**
 * Network access: `restricted` (none) or `enabled`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxNetwork = Schema.Literals(["restricted", "enabled"])

/**
 * @category models
 * @since 0.1.0
 */
export type SandboxNetwork = typeof SandboxNetwork.Type

/**
 * Codex's permission profile: `managed` (a file system policy and a network
 * policy to enforce), `disabled` (no sandbox), or `external` (another sandbox
 * confines the file system; only the network policy is ours).
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxPermissions = Schema.Union([
  Schema.Struct({ type: Schema.Literal("managed"), file_system: SandboxFileSystem, network: SandboxNetwork }),
  Schema.Struct({ type: Schema.Literal("disabled") }),
  Schema.Struct({ type: Schema.Literal("external"), network: SandboxNetwork })
])

/**
 * @category models
 * @since 0.1.0
 */
export type SandboxPermissions = typeof SandboxPermissions.Type

/**
 * The `sandbox` value of `process/start` (and of each `fs/*` call), Codex's
 * `FileSystemSandboxContext`: the permissions, and what they are read
 * against. The context's own fields are camelCase, the permissions'
 * snake_case, as Codex sends them. Fields for Windows are accepted and
 * ignored on other platforms.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SandboxContext = Schema.Struct({
  permissions: SandboxPermissions,
  windowsSandboxLevel: Schema.Literals(["disabled", "restricted-token", "elevated", "mxc"]),
  /** The directory the policy is read against (default: the process's cwd). */
  cwd: Schema.optionalKey(Schema.NullOr(PathUri)),
  /** What `project_roots` means; none: `project_roots` grants nothing. */
  workspaceRoots: Schema.optionalKey(Schema.NullOr(Schema.Array(PathUri))),
  /** `fs/*` calls carry the policy's cwd and roots here too. */
  policyContext: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    cwd: Schema.optionalKey(Schema.NullOr(PathUri)),
    workspaceRoots: Schema.optionalKey(Schema.NullOr(Schema.Array(PathUri)))
  }))),
  userHomeDir: Schema.optionalKey(Schema.NullOr(PathUri)),
  temporaryDirectories: Schema.optionalKey(Schema.NullOr(Schema.Array(PathUri))),
  windowsSandboxPrivateDesktop: Schema.optionalKey(Schema.Boolean),
  windowsSandboxProxySettingsMode: Schema.optionalKey(Schema.Literals(["reconcile", "preserve"])),
  useLegacyLandlock: Schema.optionalKey(Schema.Boolean)
})

/**
 * @category models
 * @since 0.1.0
 */
export type SandboxContext = typeof SandboxContext.Type

/**
 * How a process was confined, as `process/start` answers it: `none` when it
 * runs unconfined, `linuxSeccomp` for Linux's sandbox (namespaces, mounts and
 * a seccomp filter; the name is Codex's).
 *
 * @category models
 * @since 0.1.0
 */
export type SandboxType = "none" | "linuxSeccomp" | "macosSeatbelt" | "windowsRestrictedToken"

/**
 * The capability a server names in `initialize` when it enforces `sandbox`
 * policies; without it, sandboxed starts are refused.
 *
 * @category methods
 * @since 0.1.0
 */
export const sandboxCapability = "sandbox"

/**
 * The capability a server names in `initialize` when it can push
 * `process/output` as binary frames (our extension; WebSocket only). A client
 * that wants them says so in `initialized` (`{binaryOutput: true}`), and only
 * to a server that named this: a Codex peer never sees either. From then on,
 * every `process/output` on that connection is one binary frame (its layout
 * is in the README's protocol section); everything else stays JSON text.
 *
 * @category methods
 * @since 0.1.0
 */
export const binaryOutputCapability = "binaryOutput"

// =============================================================================
// process/start
// =============================================================================

/**
 * Parameters of `process/start`. `sandbox` asks for a confined process
 * (`null` or absent: none); `enforceManagedNetwork` and `managedNetwork` ask
 * for Codex's network proxy. Three extensions a Codex server ignores:
 * `backpressure` (the server stops reading the child's pipes while a full
 * retention window is unread, instead of dropping the oldest output),
 * `outputNotifications: false` (a client that pulls output with `process/read`
 * needs no `process/output` copy of it; exit and close are still notified),
 * and `size`, the initial size of a `tty` process's terminal (Codex 0.169
 * always opens 24 × 80, our default too).
 *
 * @category schemas
 * @since 0.1.0
 */
export const StartParams = Schema.Struct({
  processId: Schema.NonEmptyString,
  argv: Schema.Array(Schema.String),
  cwd: Cwd,
  env: Schema.Record(Schema.String, Schema.String),
  tty: Schema.Boolean,
  pipeStdin: Schema.optionalKey(Schema.Boolean),
  arg0: Schema.optionalKey(Schema.NullOr(Schema.String)),
  envPolicy: Schema.optionalKey(Schema.NullOr(EnvPolicy)),
  sandbox: Schema.optionalKey(Schema.NullOr(SandboxContext)),
  enforceManagedNetwork: Schema.optionalKey(Schema.Boolean),
  managedNetwork: Schema.optionalKey(Schema.NullOr(Schema.Unknown)),
  backpressure: Schema.optionalKey(Schema.Boolean),
  outputNotifications: Schema.optionalKey(Schema.Boolean),
  size: Schema.optionalKey(Schema.NullOr(TerminalSize))
})

/**
 * @category models
 * @since 0.1.0
 */
export type StartParams = typeof StartParams.Type

/**
 * Result of `process/start`. `windowBytes` is our extension, for a process
 * started with `backpressure`: the unread output at which the server pauses
 * it (it goes on once half of that is read). A reader of pushed output that
 * acknowledges at least every quarter of it keeps the process going without
 * acknowledging every read.
 *
 * @category schemas
 * @since 0.1.0
 */
export const StartResult = Schema.Struct({
  processId: Schema.String,
  sandboxType: Schema.optionalKey(Schema.String),
  windowBytes: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))
})

/**
 * @category models
 * @since 0.1.0
 */
export type StartResult = typeof StartResult.Type

// =============================================================================
// process/read
// =============================================================================

/**
 * @category schemas
 * @since 0.1.0
 */
export const ReadParams = Schema.Struct({
  processId: Schema.String,
  afterSeq: Schema.optionalKey(Schema.NullOr(Seq)),
  maxBytes: Schema.optionalKey(Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))),
  waitMs: Schema.optionalKey(Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))))
})

/**
 * @category models
 * @since 0.1.0
 */
export type ReadParams = typeof ReadParams.Type

/**
 * One retained output chunk.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ProcessChunk = Schema.Struct({
  seq: Seq,
  stream: OutputStream,
  chunk: Bytes
})

/**
 * @category models
 * @since 0.1.0
 */
export type ProcessChunk = typeof ProcessChunk.Type

/**
 * Result of `process/read`. `signal` and `dropped` are our extensions.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ReadResult = Schema.Struct({
  chunks: Schema.Array(ProcessChunk),
  nextSeq: Seq,
  exited: Schema.Boolean,
  exitCode: Schema.NullOr(Schema.Int),
  closed: Schema.Boolean,
  failure: Schema.NullOr(Schema.String),
  signal: Schema.optionalKey(Schema.NullOr(Schema.String)),
  dropped: Schema.optionalKey(Dropped),
  sandboxDenied: Schema.optionalKey(Schema.Boolean)
})

/**
 * @category models
 * @since 0.1.0
 */
export type ReadResult = typeof ReadResult.Type

/**
 * Whether a reader has everything: the process is closed and a read found
 * nothing more (a server may say `closed` while `maxBytes` held chunks back).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isDrained = (result: ReadResult): boolean => result.closed && result.chunks.length === 0

/**
 * The JSON text of a read result, as `Schema.encode(ReadResult)` then
 * `JSON.stringify` would give it, built without the generic passes: read
 * results carry nearly all the bytes, and base64, seqs and stream names need
 * no escaping.
 *
 * @category encoding
 * @since 0.1.0
 */
export const readResultJson = (result: ReadResult): string =>
  readResultJsonPieces(result).map((piece) => typeof piece === "string" ? piece : encodeBase64(piece)).join("")

/**
 * The JSON text of a read result (as {@link readResultJson}) in pieces: text,
 * and each chunk's bytes, which stand for their standard base64. A server
 * writes the pieces into one buffer, so a large answer is never also a large
 * string.
 *
 * @category encoding
 * @since 0.1.0
 */
export const readResultJsonPieces = (result: ReadResult): ReadonlyArray<string | Uint8Array> => {
  const { chunks, ...rest } = result
  const pieces: Array<string | Uint8Array> = ["{\"chunks\":["]
  chunks.forEach((chunk, i) => {
    pieces.push(`${i === 0 ? "" : ","}{"seq":${chunk.seq},"stream":"${chunk.stream}","chunk":"`, chunk.chunk, "\"}")
  })
  pieces.push(`],${JSON.stringify(rest).slice(1)}`)
  return pieces
}

/**
 * The JSON text of a whole `process/output` notification, built the same way
 * as {@link readResultJson}.
 *
 * @category encoding
 * @since 0.1.0
 */
export const outputNotificationJson = (processId: string, chunk: ProcessChunk): string =>
  `{"method":"process/output","params":{"processId":${JSON.stringify(processId)},"seq":${chunk.seq},` +
  `"stream":"${chunk.stream}","chunk":"${encodeBase64(chunk.chunk)}"}}`

// =============================================================================
// process/write, process/terminate, process/signal
// =============================================================================

/**
 * @category schemas
 * @since 0.1.0
 */
export const WriteParams = Schema.Struct({
  processId: Schema.String,
  chunk: Bytes,
  writeId: Schema.optionalKey(Schema.String)
})

/**
 * @category models
 * @since 0.1.0
 */
export type WriteParams = typeof WriteParams.Type

/**
 * What became of a write: never an error for a missing or closed target.
 *
 * @category schemas
 * @since 0.1.0
 */
export const WriteStatus = Schema.Literals(["accepted", "unknownProcess", "stdinClosed", "starting"])

/**
 * @category models
 * @since 0.1.0
 */
export type WriteStatus = typeof WriteStatus.Type

/**
 * @category schemas
 * @since 0.1.0
 */
export const WriteResult = Schema.Struct({ status: WriteStatus })

/**
 * @category schemas
 * @since 0.1.0
 */
export const TerminateParams = Schema.Struct({ processId: Schema.String })

/**
 * @category schemas
 * @since 0.1.0
 */
export const TerminateResult = Schema.Struct({ running: Schema.Boolean })

/**
 * Our extension, a notification: a reader of pushed output has everything up
 * to `afterSeq` (what a `process/read` at that cursor would say).
 *
 * @category schemas
 * @since 0.1.0
 */
export const AcknowledgeParams = Schema.Struct({
  processId: Schema.String,
  afterSeq: Seq
})

/**
 * @category schemas
 * @since 0.1.0
 */
export const SignalParams = Schema.Struct({
  processId: Schema.String,
  signal: Schema.Literals(["interrupt"])
})

/**
 * @category models
 * @since 0.1.0
 */
export type SignalName = typeof SignalParams.Type["signal"]

/**
 * Our extension (Codex 0.169 has no such method and answers `-32601`): the
 * new size of a `tty` process's terminal, in the shape Codex's own resize
 * requests use (`{processId, size: {rows, cols}}`, answered with `{}`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const ResizeParams = Schema.Struct({
  processId: Schema.String,
  size: TerminalSize
})

/**
 * Parameters of `process/closeStdin` (our extension): ends the stdin of a
 * process started with `pipeStdin`, after every write accepted before it, so
 * the command reads end-of-file. Codex has no way to end a pipe's input.
 * Answers with a {@link WriteStatus}: `accepted` once it is closed,
 * `stdinClosed` when it was closed already (or the process has exited).
 *
 * @category schemas
 * @since 0.1.0
 */
export const CloseStdinParams = Schema.Struct({ processId: Schema.String })

// =============================================================================
// Notifications (server → client)
// =============================================================================

/**
 * @category schemas
 * @since 0.1.0
 */
export const OutputNotification = Schema.Struct({
  processId: Schema.String,
  seq: Seq,
  stream: OutputStream,
  chunk: Bytes
})

/**
 * @category schemas
 * @since 0.1.0
 */
export const ExitedNotification = Schema.Struct({
  processId: Schema.String,
  seq: Seq,
  exitCode: Schema.Int,
  signal: Schema.optionalKey(Schema.NullOr(Schema.String)),
  sandboxDenied: Schema.optionalKey(Schema.Boolean)
})

/**
 * @category schemas
 * @since 0.1.0
 */
export const ClosedNotification = Schema.Struct({
  processId: Schema.String,
  seq: Seq
})

// =============================================================================
// fs/* (Codex's file methods)
// =============================================================================

/**
 * The `sandbox` of an `fs/*` call: absent or `null` runs the call without a
 * sandbox; a policy confines what the call may read and write, as it would a
 * process's.
 */
const FsSandbox = Schema.optionalKey(Schema.NullOr(SandboxContext))

/**
 * @category schemas
 * @since 0.1.0
 */
export const PathParams = Schema.Struct({ path: PathUri, sandbox: FsSandbox })

/**
 * Result of `fs/getMetadata`: the link's target's type, size and times
 * (milliseconds since the epoch, `createdAtMs` 0 where the OS keeps no birth
 * time); `isSymlink` of the path itself.
 *
 * @category schemas
 * @since 0.1.0
 */
export const GetMetadataResult = Schema.Struct({
  isDirectory: Schema.Boolean,
  isFile: Schema.Boolean,
  isSymlink: Schema.Boolean,
  size: Schema.Int,
  createdAtMs: Schema.Int,
  modifiedAtMs: Schema.Int
})

/**
 * @category models
 * @since 0.1.0
 */
export type GetMetadataResult = typeof GetMetadataResult.Type

/**
 * Parameters of `fs/readFile`. `maxBytes` is our extension: the client's own
 * limit, which the server applies as well as its own (a Codex server ignores
 * it).
 *
 * @category schemas
 * @since 0.1.0
 */
export const ReadFileParams = Schema.Struct({
  path: PathUri,
  sandbox: FsSandbox,
  maxBytes: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))
})

/**
 * @category schemas
 * @since 0.1.0
 */
export const ReadFileResult = Schema.Struct({ dataBase64: Bytes })

/**
 * Parameters of `fs/writeFile`. The data stays base64 text here: the server
 * checks its size before decoding it, and answers bad base64 with `-32600`,
 * as Codex does.
 *
 * @category schemas
 * @since 0.1.0
 */
export const WriteFileParams = Schema.Struct({ path: PathUri, dataBase64: Schema.String, sandbox: FsSandbox })

/**
 * Parameters of `fs/createDirectory`: `recursive` absent or `null` means true.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CreateDirectoryParams = Schema.Struct({
  path: PathUri,
  recursive: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  sandbox: FsSandbox
})

/**
 * Parameters of `fs/remove`: `recursive` and `force` absent or `null` mean true.
 *
 * @category schemas
 * @since 0.1.0
 */
export const RemoveParams = Schema.Struct({
  path: PathUri,
  recursive: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  force: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  sandbox: FsSandbox
})

/**
 * One entry of `fs/readDirectory`, typed through its link.
 *
 * @category schemas
 * @since 0.1.0
 */
export const DirectoryEntry = Schema.Struct({
  fileName: Schema.String,
  isDirectory: Schema.Boolean,
  isFile: Schema.Boolean
})

/**
 * @category schemas
 * @since 0.1.0
 */
export const ReadDirectoryResult = Schema.Struct({ entries: Schema.Array(DirectoryEntry) })

/**
 * @category models
 * @since 0.1.0
 */
export type ReadDirectoryResult = typeof ReadDirectoryResult.Type

/**
 * Parameters of `fs/copy`: `recursive` is required (a directory needs it).
 *
 * @category schemas
 * @since 0.1.0
 */
export const CopyParams = Schema.Struct({
  sourcePath: PathUri,
  destinationPath: PathUri,
  recursive: Schema.Boolean,
  sandbox: FsSandbox
})

/**
 * Result of `fs/canonicalize`: the path with every link and `..` resolved.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CanonicalizeResult = Schema.Struct({ path: PathUri })

// =============================================================================
// The method table
// =============================================================================

/**
 * A schema that crosses the wire: decoding and encoding need no service.
 *
 * @category models
 * @since 0.1.0
 */
export type WireSchema = Schema.Codec<any, any, never, never>

/**
 * A request: its params and its result.
 *
 * @category models
 * @since 0.1.0
 */
export interface RequestSpec<Params extends WireSchema = WireSchema, Result extends WireSchema = WireSchema> {
  readonly _tag: "Request"
  readonly params: Params
  readonly result: Result
  /** Ours, not Codex's: named in `capabilities`, so a client uses it only with a server that offers it. */
  readonly extension: boolean
}

/**
 * A notification: its params.
 *
 * @category models
 * @since 0.1.0
 */
export interface NotificationSpec<Params extends WireSchema = WireSchema> {
  readonly _tag: "Notification"
  readonly params: Params
  readonly extension: boolean
}

const request = <Params extends WireSchema, Result extends WireSchema>(
  params: Params,
  result: Result,
  options: { readonly extension?: boolean } = {}
): RequestSpec<Params, Result> => ({ _tag: "Request", params, result, extension: options.extension ?? false })

const notification = <Params extends WireSchema>(
  params: Params,
  options: { readonly extension?: boolean } = {}
): NotificationSpec<Params> => ({ _tag: "Notification", params, extension: options.extension ?? false })

/**
 * An empty result (`{}`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const EmptyResult = Schema.Struct({})

/**
 * Every request a client may send, with its schemas. The server's router, the
 * client's typed calls, the advertised `capabilities` and the property tests
 * all read this table: adding a method is one entry here and one handler.
 *
 * @category methods
 * @since 0.1.0
 */
export const requests = {
  "initialize": request(InitializeParams, InitializeResult),
  "process/start": request(StartParams, StartResult),
  "process/read": request(ReadParams, ReadResult),
  "process/write": request(WriteParams, WriteResult),
  "process/terminate": request(TerminateParams, TerminateResult),
  "process/signal": request(SignalParams, EmptyResult, { extension: true }),
  "process/resize": request(ResizeParams, EmptyResult, { extension: true }),
  "process/closeStdin": request(CloseStdinParams, WriteResult, { extension: true }),
  "fs/getMetadata": request(PathParams, GetMetadataResult),
  "fs/readFile": request(ReadFileParams, ReadFileResult),
  "fs/writeFile": request(WriteFileParams, EmptyResult),
  "fs/createDirectory": request(CreateDirectoryParams, EmptyResult),
  "fs/remove": request(RemoveParams, EmptyResult),
  "fs/readDirectory": request(PathParams, ReadDirectoryResult),
  "fs/copy": request(CopyParams, EmptyResult),
  "fs/canonicalize": request(PathParams, CanonicalizeResult)
} as const

/**
 * Every notification a client may send.
 *
 * @category methods
 * @since 0.1.0
 */
export const clientNotifications = {
  "initialized": notification(InitializedParams),
  "process/acknowledge": notification(AcknowledgeParams, { extension: true })
} as const

/**
 * Every notification a server may send.
 *
 * @category methods
 * @since 0.1.0
 */
export const serverNotifications = {
  "process/output": notification(OutputNotification),
  "process/exited": notification(ExitedNotification),
  "process/closed": notification(ClosedNotification)
} as const

/**
 * @category methods
 * @since 0.1.0
 */
export type RequestMethod = keyof typeof requests

/**
 * @category methods
 * @since 0.1.0
 */
export type ClientNotificationMethod = keyof typeof clientNotifications

/**
 * @category methods
 * @since 0.1.0
 */
export type ServerNotificationMethod = keyof typeof serverNotifications

/**
 * The decoded params of a request or client notification.
 *
 * @category methods
 * @since 0.1.0
 */
export type ParamsOf<M extends RequestMethod | ClientNotificationMethod> = M extends RequestMethod
  ? (typeof requests)[M]["params"]["Type"]
  : M extends ClientNotificationMethod ? (typeof clientNotifications)[M]["params"]["Type"]
  : never

/**
 * The decoded result of a request.
 *
 * @category methods
 * @since 0.1.0
 */
export type ResultOf<M extends RequestMethod> = (typeof requests)[M]["result"]["Type"]

/**
 * Whether `method` names a request of the table.
 *
 * @category methods
 * @since 0.1.0
 */
export const isRequestMethod = (method: string): method is RequestMethod => Object.hasOwn(requests, method)

/**
 * Whether `method` names a notification a client may send.
 *
 * @category methods
 * @since 0.1.0
 */
export const isClientNotificationMethod = (method: string): method is ClientNotificationMethod =>
  Object.hasOwn(clientNotifications, method)

/**
 * Our extensions that are fields of Codex's messages rather than methods: the
 * read result's `dropped` and `signal`, `process/start`'s `backpressure`,
 * `outputNotifications` and `size`, its answer's `windowBytes`, and
 * `fs/readFile`'s `maxBytes`.
 *
 * @category methods
 * @since 0.1.0
 */
export const fieldExtensions = [
  "dropped",
  "signal",
  "backpressure",
  "outputNotifications",
  "size",
  "windowBytes",
  "fs/readFile.maxBytes"
] as const

/**
 * The extensions a server of this library offers, as named in the
 * `initialize` result: the field extensions, then every method of the table
 * marked as ours.
 *
 * @category methods
 * @since 0.1.0
 */
export const capabilities: ReadonlyArray<string> = [
  ...fieldExtensions,
  ...Object.entries({ ...requests, ...clientNotifications }).flatMap(([method, spec]) => spec.extension ? [method] : [])
]

// =============================================================================
// Errors on the wire
// =============================================================================

/**
 * The server limit a request was refused for (our extension, in the `-32000`
 * answer's `data.limit`): requests in flight on the connection, processes of
 * the session or of the server, sessions, sessions of one address. Nothing
 * ran: a client may ask again once answers came or processes closed.
 *
 * @category errors
 * @since 0.1.0
 */
export type LimitName = "requests" | "processesPerSession" | "processes" | "sessions" | "sessionsPerAddress"

/**
 * The limit named by a `-32000` answer's `data`, when it names one.
 *
 * @category errors
 * @since 0.1.0
 */
export const limitOf = (error: Pick<WireError, "data">): LimitName | undefined => {
  const limit = typeof error.data === "object" && error.data !== null
    ? (error.data as { readonly limit?: unknown }).limit
    : undefined
  return limit === "requests" || limit === "processesPerSession" || limit === "processes" ||
      limit === "sessions" || limit === "sessionsPerAddress"
    ? limit
    : undefined
}

/**
 * The `error` member of a JSON-RPC answer.
 *
 * @category errors
 * @since 0.1.0
 */
export interface WireError {
  readonly code: number
  readonly message: string
  readonly data?: unknown
}

const encodeReason = Schema.encodeSync(ExecutorErrorReason)
const decodeReason = Schema.decodeUnknownExit(ExecutorErrorReason)

/** The JSON-RPC code of a reason, chosen by its tag (Codex's codes where Codex has the case). */
const codeOf = (reason: ExecutorErrorReason): number => {
  switch (reason._tag) {
    case "UnknownProcess":
    case "ProcessIdInUse":
    case "EnvironmentUnavailable":
      return ErrorCode.invalidRequest
    case "InvalidRequest":
      return reason.invalidParams === true ? ErrorCode.invalidParams : ErrorCode.invalidRequest
    case "Unsupported":
    case "SandboxRefused":
      return ErrorCode.invalidParams
    case "SpawnFailed":
    case "ConnectionLost":
    case "SessionLost":
    case "ProtocolViolation":
    case "FileSystemFailure":
      return ErrorCode.internalError
    case "ServerError":
      return reason.code
    case "PathNotFound":
      return ErrorCode.notFound
    case "PathAccessDenied":
    case "FileTooLarge":
      return ErrorCode.invalidRequest
  }
}

/**
 * The JSON-RPC error for an executor failure: the code by the reason's tag, the
 * message Codex gives for the same case, and the typed reason in `data.reason`
 * (our extension, which a Codex client ignores).
 *
 * @category errors
 * @since 0.1.0
 */
export const errorToWire = (reason: ExecutorErrorReason): WireError => ({
  code: codeOf(reason),
  // a server error relayed from further away keeps its own words
  message: reason._tag === "ServerError" ? reason.description : reason.message,
  data: { reason: encodeReason(reason) }
})

/** What a failed request was about, for peers (Codex's) that send no typed reason. */
export interface ErrorContext {
  readonly processId?: string | undefined
  /** The command of a failed `process/start`: its failure is a spawn failure. */
  readonly command?: string | undefined
  /** The path of a failed `fs/*` call: its failure is a file reason. */
  readonly path?: string | undefined
}

/**
 * A Codex server's answer to an `fs/*` call, told by code, and for some
 * answers by the words Codex writes: an OS error ends in "(os error N)".
 */
const codexFileReason = (error: WireError, path: string): ExecutorErrorReason | undefined => {
  const { code, message } = error
  // NaN, which names no code, when the message ends in no OS error
  const errno = Number(/\(os error (\d+)\)$/.exec(message)?.[1])
  const osCode = errnoCode(errno)
  if (code === ErrorCode.notFound) return new PathNotFound({ path, description: message })
  if (osCode === "EACCES" || osCode === "EPERM") return new PathAccessDenied({ path, description: message })
  const tooLarge = /^file is too large to (read|write): limit is (\d+) bytes$/.exec(message)
  if (code === ErrorCode.invalidRequest && tooLarge !== null) {
    return new FileTooLarge({ path, operation: tooLarge[1] as "read" | "write", limit: Number(tooLarge[2]) })
  }
  if (code === ErrorCode.internalError && osCode !== undefined) {
    return new FileSystemFailure({ path, code: osCode, errno, description: message })
  }
  return undefined
}

/**
 * Codex's servers send no typed reason: their answers are told apart by code
 * and by the message Codex writes for each case. This is the only place that
 * reads a message's text.
 */
const codexReason = (error: WireError, context: ErrorContext): ExecutorErrorReason => {
  const { code, message } = error
  const fileReason = context.path === undefined ? undefined : codexFileReason(error, context.path)
  if (fileReason !== undefined) return fileReason
  const processId = context.processId ?? ""
  if (code === ErrorCode.invalidRequest && message.startsWith("unknown process id")) {
    return new UnknownProcess({ processId })
  }
  if (code === ErrorCode.invalidRequest && message.endsWith("already exists")) return new ProcessIdInUse({ processId })
  if (code === ErrorCode.invalidParams && /^sandbox intent cannot be enforced|^sandbox runtime paths/.test(message)) {
    const description = message.replace(/^sandbox intent cannot be enforced on this executor:?\s*/, "")
    return new SandboxRefused({ kind: "Unavailable", description: description || "the exec-server has no sandbox" })
  }
  if (code === ErrorCode.invalidParams || code === ErrorCode.invalidRequest) {
    return new InvalidRequest({ description: message, invalidParams: code === ErrorCode.invalidParams })
  }
  if (code === ErrorCode.methodNotFound) return new Unsupported({ feature: message })
  if (code === ErrorCode.internalError && context.command !== undefined) {
    const kind = /working directory/i.test(message)
      ? "CwdNotFound"
      : /command not found|no such file/i.test(message)
      ? "CommandNotFound"
      : /permission denied/i.test(message)
      ? "PermissionDenied"
      : "Other"
    return new SpawnFailed({ kind, command: context.command, description: message })
  }
  return new ServerError({ code, description: message })
}

/**
 * The executor failure a JSON-RPC error stands for: the typed reason when the
 * server sent one (ours), else told from Codex's codes and messages. A server's
 * `ConnectionLost` (its own link to somewhere else) or `ProtocolViolation` is a
 * `ServerError` here: those reasons are this client's judgement of its own
 * link.
 *
 * @category errors
 * @since 0.1.0
 */
export const errorFromWire = (error: WireError, context: ErrorContext = {}): ExecutorErrorReason => {
  const data = error.data
  if (typeof data === "object" && data !== null && "reason" in data) {
    const decoded = decodeReason(data.reason)
    if (Exit.isSuccess(decoded)) {
      return decoded.value._tag === "ConnectionLost" || decoded.value._tag === "ProtocolViolation"
        ? new ServerError({ code: error.code, description: error.message })
        : decoded.value
    }
  }
  return codexReason(error, context)
}

// =============================================================================
// Constants
// =============================================================================

/**
 * The exit code reported for a death by `signal`: 128 + its number, as the
 * Codex 0.169 exec-server reports it (137 for SIGKILL), or -1 when unknown.
 *
 * @category constants
 * @since 0.1.0
 */
export const signaledExitCode = (signal: string | null): number => {
  const signals = NodeOs.constants.signals as Record<string, number>
  // own keys only: a peer's "constructor" or "__proto__" is no signal
  const number = signal !== null && Object.hasOwn(signals, signal) ? signals[signal] : undefined
  return number === undefined ? -1 : 128 + number
}
