/**
 * Serves any `Executor` to exec-server clients (Codex-compatible JSON-RPC) over
 * WebSocket or newline-delimited JSON on stdio: the handshake, sessions that
 * detach on disconnect and resume within a TTL, every method of
 * `Protocol.requests` (the `fs/*` methods serve this host's files), and
 * `process/output` / `process/exited` / `process/closed` notifications.
 *
 * The roles live under `internal/server/`: `sessions` (registry, resume,
 * expiry, process slots), `handshake` and `environmentInfo`, `router` (the
 * method table), `processHandlers`, `fileSystemHandlers` (over
 * `internal/fs/`), `notifier`, and `connection` (the frame loop, request turns
 * and answers).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import { Executor, type SandboxSupport } from "./Executor.ts"
import * as Defaults from "./internal/defaults.ts"
import { HostFileSystem } from "./internal/fs/hostFileSystem.ts"
import * as Connection from "./internal/server/connection.ts"
import { fileSystemHandlers } from "./internal/server/fileSystemHandlers.ts"
import type { SessionMethods } from "./internal/server/handshake.ts"
import { processHandlers } from "./internal/server/processHandlers.ts"
import { type Session, SessionRegistry } from "./internal/server/sessions.ts"
import { fromStreams, type Transport } from "./JsonRpc.ts"
import * as Protocol from "./Protocol.ts"

/**
 * How a server behaves. Every default is in {@link defaults}. Whether a
 * sandbox is required is the executor's to say (`LocalExecutor`'s
 * `sandbox.required`): the server then refuses the `fs/*` calls that would
 * touch files unconfined, as the executor refuses such starts.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** How long a disconnected session keeps its processes for a resume. */
  readonly sessionTtl?: Duration.Input
  /** Processes not yet closed, over all sessions. */
  readonly maxProcesses?: number
  /** Processes not yet closed in one session. */
  readonly maxProcessesPerSession?: number
  /** Requests of one connection served at once; more wait their turn. */
  readonly maxConcurrentRequests?: number
  /** Requests of one connection waiting for a turn before new ones are refused. */
  readonly maxQueuedRequests?: number
  /** Process starts of one session under way at once; more wait their turn. */
  readonly maxConcurrentStartsPerSession?: number
  /**
   * Bytes of one connection's requests in flight past which its socket is not
   * read until answers free room (default 16 MiB).
   */
  readonly maxPendingRequestBytes?: number
  /** Sessions kept at once, attached or waiting for a resume; the oldest detached one gives way to a new client. */
  readonly maxSessions?: number
  /** Sessions attached at once to connections from one IP address. */
  readonly maxSessionsPerAddress?: number
  /** The largest file `fs/readFile` returns or `fs/writeFile` writes (default 64 MiB); larger ones are refused. */
  readonly maxFileBytes?: number
}

/**
 * The server's defaults (limits, TTLs, frame and buffer sizes), which the CLI's
 * flags and help show too.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults = { ...Defaults.server, maxFileBytes: Defaults.fileSystem.maxFileBytes } as const

/**
 * The extensions this server offers, named in the `initialize` result.
 *
 * @category constants
 * @since 0.1.0
 */
export const capabilities: ReadonlyArray<string> = Protocol.capabilities

/**
 * This library's version, as servers report it.
 *
 * @category constants
 * @since 0.1.0
 */
export const version: string = Defaults.version

/**
 * The server's state: its sessions and the executor they share. One registry
 * serves every connection of a server.
 *
 * @category models
 * @since 0.1.0
 */
export interface Registry {
  readonly sessions: SessionRegistry
  /** This host's files, as the `fs/*` methods serve them. */
  readonly files: HostFileSystem
}

/**
 * Creates a registry in the current scope; closing it terminates every
 * process of every session.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeRegistry = (options: Options = {}): Effect.Effect<Registry, never, Executor | Scope.Scope> =>
  Effect.gen(function*() {
    const sessions = new SessionRegistry({
      executor: yield* Executor,
      fibers: yield* FiberSet.make(),
      sessionTtl: Duration.fromInputUnsafe(options.sessionTtl ?? defaults.sessionTtlMillis),
      limits: {
        processes: options.maxProcesses ?? defaults.maxProcesses,
        processesPerSession: options.maxProcessesPerSession ?? defaults.maxProcessesPerSession,
        concurrentRequests: options.maxConcurrentRequests ?? defaults.maxConcurrentRequests,
        queuedRequests: options.maxQueuedRequests ?? defaults.maxQueuedRequests,
        startsPerSession: options.maxConcurrentStartsPerSession ?? defaults.maxConcurrentStartsPerSession,
        pendingRequestBytes: options.maxPendingRequestBytes ?? defaults.maxPendingRequestBytes,
        sessions: options.maxSessions ?? defaults.maxSessions,
        sessionsPerAddress: options.maxSessionsPerAddress ?? defaults.maxSessionsPerAddress
      }
    })
    yield* Effect.addFinalizer(() => sessions.endAll())
    return {
      sessions,
      files: new HostFileSystem({ maxFileBytes: options.maxFileBytes ?? defaults.maxFileBytes })
    }
  })

/**
 * Everything a session serves: one entry per method of the table; the `fs/*`
 * calls require a sandbox when the executor requires one for its starts.
 */
const methodsOf = (registry: Registry) => (session: Session, sandbox: SandboxSupport): SessionMethods => {
  const process = processHandlers(registry.sessions, session)
  return {
    requests: {
      ...process.requests,
      ...fileSystemHandlers(registry.files, { requireSandbox: sandbox.required === true })
    },
    notifications: process.notifications
  }
}

/**
 * Serves one client connection until it closes; then its session is detached
 * (kept for `sessionTtl` for a resume, after which its processes are killed).
 *
 * @category serving
 * @since 0.1.0
 */
export const serveConnection = (registry: Registry, transport: Transport): Effect.Effect<string> =>
  Connection.serveConnection(registry.sessions, transport, methodsOf(registry))

/**
 * Serves one client on a pair of streams (newline-delimited JSON), for
 * example this process's stdin and stdout, until the input ends; then
 * terminates the session's processes.
 *
 * @category serving
 * @since 0.1.0
 */
export const serveStdio = (
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  options: Options = {}
): Effect.Effect<string, never, Executor> =>
  Effect.scoped(Effect.flatMap(makeRegistry(options), (registry) =>
    serveConnection(
      registry,
      // the bounds of a WebSocket client: one that leaves too much unread, or takes nothing, is dropped
      fromStreams(input, output, {
        maxBufferedBytes: defaults.maxBufferedBytes,
        stallTimeoutMillis: defaults.stallTimeoutMillis,
        maxFrameBytes: defaults.maxFrameBytes
      })
    )))
