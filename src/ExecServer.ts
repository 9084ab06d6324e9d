/**
 * Serves any `Executor` to exec-server clients (Codex-compatible JSON-RPC) over
 * WebSocket or newline-delimited JSON on stdio: the handshake, sessions that
 * detach on disconnect and resume within a TTL, every `process/*` method, and
 * `process/output` / `process/exited` / `process/closed` notifications.
 *
 * Requests on one connection are served concurrently, so a long-poll read
 * never delays a `process/terminate` sent after it.
 *
 * @since 0.1.0
 */
import { basename } from "node:path"
import { pathToFileURL } from "node:url"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { Executor, type ExecutorError } from "./Executor.ts"
import { ChangeSignal } from "./internal/changeSignal.ts"
import { ErrorCode, type Envelope, fromStreams, parseFrame, type RequestId, type Transport } from "./JsonRpc.ts"
import * as Protocol from "./Protocol.ts"

// =============================================================================
// Options and errors
// =============================================================================

/**
 * How a server behaves.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** How long a disconnected session keeps its processes for a resume (default 30 s). */
  readonly sessionTtl?: Duration.Input
  /** How long a process's session entry outlives its close (default 30 s, as the executor's retention). */
  readonly closedRetention?: Duration.Input
  /** Processes not yet closed, over all sessions (default 4096). */
  readonly maxProcesses?: number
  /** Processes not yet closed in one session (default 1024). */
  readonly maxProcessesPerSession?: number
  /** Requests of one connection served at once (default 64); more wait their turn. */
  readonly maxConcurrentRequests?: number
  /** Requests of one connection waiting for a turn before new ones are refused (default 1024). */
  readonly maxQueuedRequests?: number
  /** Sessions kept at once, attached or waiting for a resume (default 1024). */
  readonly maxSessions?: number
}

/**
 * The extensions this server offers, named in the `initialize` result.
 *
 * @category constants
 * @since 0.1.0
 */
export const capabilities = [
  "dropped",
  "signal",
  "backpressure",
  "outputNotifications",
  "process/signal",
  "process/acknowledge"
] as const

/**
 * This library's version, as servers report it.
 *
 * @category constants
 * @since 0.1.0
 */
export const version = "0.1.0"

/** A result already serialized to JSON (the read fast path). */
class RawJson {
  readonly json: string
  constructor(json: string) {
    this.json = json
  }
}

/** A JSON-RPC error answer. */
class Reply extends Schema.TaggedError<Reply>()("Reply", { code: Schema.Int, message: Schema.String }) {}

const reply = (code: number, message: string) => Effect.fail(new Reply({ code, message }))

// =============================================================================
// Sessions
// =============================================================================

interface Connection {
  readonly send: (message: Envelope) => Effect.Effect<void>
  readonly sendJson: (json: string) => Effect.Effect<void>
}

interface Session {
  readonly id: string
  readonly processes: Map<string, { readonly internalId: string }>
  attached: Connection | undefined
  expiry: Fiber.Fiber<void> | undefined
  /** Processes started and not yet closed. */
  live: number
  /** Set once the session is gone (its TTL ended, or the server stops). */
  ended: boolean
  /** Tells notifiers that the session was attached or ended. */
  readonly changes: ChangeSignal
}

/**
 * The server's state: its sessions and the executor they share. One registry
 * serves every connection of a server.
 *
 * @category models
 * @since 0.1.0
 */
export interface Registry {
  readonly executor: Executor["Service"]
  readonly sessions: Map<string, Session>
  readonly fibers: FiberSet.FiberSet<unknown, unknown>
  readonly sessionTtl: Duration.Duration
  readonly closedRetention: Duration.Duration
  readonly limits: {
    readonly processes: number
    readonly processesPerSession: number
    readonly concurrentRequests: number
    readonly queuedRequests: number
    readonly sessions: number
  }
  /** Processes started and not yet closed, over all sessions. */
  live: number
}

/**
 * Creates a registry in the current scope; closing it terminates every
 * process of every session.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeRegistry = Effect.fnUntraced(function*(options: Options = {}) {
  const executor = yield* Executor
  const registry: Registry = {
    executor,
    sessions: new Map(),
    fibers: yield* FiberSet.make(),
    sessionTtl: Duration.fromInputUnsafe(options.sessionTtl ?? "30 seconds"),
    closedRetention: Duration.fromInputUnsafe(options.closedRetention ?? Protocol.Limits.closedRetentionMillis),
    limits: {
      processes: options.maxProcesses ?? 4096,
      processesPerSession: options.maxProcessesPerSession ?? 1024,
      concurrentRequests: options.maxConcurrentRequests ?? 64,
      queuedRequests: options.maxQueuedRequests ?? 1024,
      sessions: options.maxSessions ?? 1024
    },
    live: 0
  }
  yield* Effect.addFinalizer(() => Effect.forEach(registry.sessions.values(), (session) => endSession(registry, session)))
  return registry
})

const endSession = (registry: Registry, session: Session) =>
  Effect.gen(function*() {
    registry.sessions.delete(session.id)
    session.ended = true
    session.changes.notify()
    yield* Effect.forEach(session.processes.values(), (process) => Effect.ignore(registry.executor.terminate(process.internalId)), {
      discard: true
    })
  })

/**
 * Forwards a process's events to whichever connection its session has; while
 * the session is detached it waits (the log keeps the events), so a client
 * that resumes still hears of an exit or close that happened in between.
 * `closed` runs once the process closed.
 */
const notifyEvents = (
  registry: Registry,
  session: Session,
  processId: string,
  internalId: string,
  output: boolean,
  closed: Effect.Effect<void>
) =>
  registry.executor.events(internalId).pipe(
    Stream.runForEach((event) =>
      Effect.andThen(
        session.changes.until(() => session.attached !== undefined || session.ended),
        Effect.suspend(() => {
          const connection = session.attached
          if (connection === undefined) return Effect.void
          switch (event._tag) {
            case "Output":
              return output ? connection.sendJson(Protocol.outputNotificationJson(processId, event)) : Effect.void
            case "Exited":
              return connection.send({
                method: "process/exited",
                params: { processId, seq: event.seq, exitCode: event.exitCode, signal: event.signal, sandboxDenied: false }
              })
            case "Closed":
              return connection.send({ method: "process/closed", params: { processId, seq: event.seq } })
          }
        })
      )
    ),
    Effect.ignore,
    Effect.ensuring(closed),
    Effect.andThen(Effect.sleep(registry.closedRetention)),
    Effect.andThen(Effect.sync(() => {
      if (session.processes.get(processId)?.internalId === internalId) session.processes.delete(processId)
    }))
  )

// =============================================================================
// Dispatch
// =============================================================================

const decodeParams = <S extends Schema.Top>(schema: S, params: unknown) =>
  Schema.decodeUnknownEffect(schema as unknown as Schema.Codec<S["Type"], unknown>)(params ?? {}).pipe(
    Effect.mapError((error) => new Reply({ code: ErrorCode.invalidParams, message: `invalid params: ${error.message}` }))
  )

/** Maps an executor failure to the answer Codex gives, naming the client's id. */
const toReply = (processId: string) => (error: ExecutorError): Reply => {
  const reason = error.reason
  switch (reason._tag) {
    case "UnknownProcess":
      return new Reply({ code: ErrorCode.invalidRequest, message: `unknown process id ${processId}` })
    case "ProcessIdInUse":
      return new Reply({ code: ErrorCode.invalidRequest, message: `process ${processId} already exists` })
    case "InvalidRequest":
      return new Reply({
        code: reason.description === "argv must not be empty" ? ErrorCode.invalidParams : ErrorCode.invalidRequest,
        message: reason.description
      })
    case "Unsupported":
      return new Reply({ code: ErrorCode.invalidParams, message: reason.message })
    default:
      return new Reply({ code: ErrorCode.internalError, message: reason.message })
  }
}

/** The executor's id for a client's process: process ids are scoped to a session. */
const internalIdOf = (session: Session, processId: string) => `${session.id}/${processId}`

const processMethods = (registry: Registry, session: Session) => {
  const { executor } = registry
  return {
    "process/start": (params: unknown) =>
      Effect.gen(function*() {
        const request = yield* decodeParams(Protocol.StartParams, params)
        const { limits } = registry
        if (session.live >= limits.processesPerSession) {
          return yield* reply(
            ErrorCode.limitExceeded,
            `too many processes: this session already runs ${session.live} (the limit); wait for some to close`
          )
        }
        if (registry.live >= limits.processes) {
          return yield* reply(
            ErrorCode.limitExceeded,
            `too many processes: this server already runs ${registry.live} (the limit); wait for some to close`
          )
        }
        // the slot is taken before the spawn, so racing starts cannot pass the limit together
        session.live++
        registry.live++
        const release = Effect.sync(() => {
          session.live--
          registry.live--
        })
        const internalId = internalIdOf(session, request.processId)
        yield* executor.start({ ...request, processId: internalId }).pipe(
          Effect.mapError(toReply(request.processId)),
          Effect.onError(() => release)
        )
        session.processes.set(request.processId, { internalId })
        yield* FiberSet.run(
          registry.fibers,
          notifyEvents(registry, session, request.processId, internalId, request.outputNotifications !== false, release)
        )
        return { processId: request.processId, sandboxType: "none" }
      }),
    "process/read": (params: unknown) =>
      Effect.gen(function*() {
        const request = yield* decodeParams(Protocol.ReadParams, params)
        const result = yield* executor.read({ ...request, processId: internalIdOf(session, request.processId) }).pipe(
          Effect.mapError(toReply(request.processId))
        )
        return new RawJson(Protocol.readResultJson({ ...result, sandboxDenied: false }))
      }),
    "process/write": (params: unknown) =>
      Effect.gen(function*() {
        const request = yield* decodeParams(Protocol.WriteParams, params)
        const status = yield* executor.write({ ...request, processId: internalIdOf(session, request.processId) }).pipe(
          Effect.mapError(toReply(request.processId))
        )
        return { status }
      }),
    "process/terminate": (params: unknown) =>
      Effect.gen(function*() {
        const request = yield* decodeParams(Protocol.TerminateParams, params)
        return yield* executor.terminate(internalIdOf(session, request.processId)).pipe(
          Effect.mapError(toReply(request.processId))
        )
      }),
    /**
     * Notification `process/acknowledge {processId, afterSeq}` (our extension):
     * a client that reads pushed output says how far it got, as a read would,
     * without asking for the chunks again.
     */
    "process/acknowledge": (params: unknown) =>
      Effect.gen(function*() {
        const request = yield* decodeParams(Protocol.AcknowledgeParams, params)
        yield* executor.read({
          processId: internalIdOf(session, request.processId),
          afterSeq: request.afterSeq,
          maxBytes: 1,
          waitMs: 0
        }).pipe(Effect.mapError(toReply(request.processId)))
        return {}
      }),
    "process/signal": (params: unknown) =>
      Effect.gen(function*() {
        const request = yield* decodeParams(Protocol.SignalParams, params)
        yield* executor.signal(internalIdOf(session, request.processId), request.signal).pipe(
          Effect.mapError(toReply(request.processId))
        )
        return {}
      })
  } as const
}

type ProcessMethod = keyof ReturnType<typeof processMethods>

const isProcessMethod = (method: string): method is Exclude<ProcessMethod, "process/acknowledge"> =>
  method === "process/start" || method === "process/read" || method === "process/write" ||
  method === "process/terminate" || method === "process/signal"

// =============================================================================
// Connections
// =============================================================================

/**
 * Serves one client connection until it closes; then its session is detached
 * (kept for `sessionTtl` for a resume, after which its processes are killed).
 *
 * @category serving
 * @since 0.1.0
 */
export const serveConnection = Effect.fnUntraced(function*(registry: Registry, transport: Transport) {
  const scope = yield* Scope.make()
  const run = yield* FiberSet.makeRuntime<never>().pipe(Scope.provide(scope))
  const sendJson = (json: string) => Effect.ignore(transport.send(json))
  const send = (message: Envelope) => sendJson(JSON.stringify(message))
  const connection: Connection = { send, sendJson }
  let initializeRequested = false
  let initialized = false
  let session: Session | undefined
  let methods: ReturnType<typeof processMethods> | undefined

  const initialize = Effect.fnUntraced(function*(params: unknown) {
    if (initializeRequested) {
      return yield* reply(ErrorCode.invalidRequest, "initialize may only be sent once per connection")
    }
    initializeRequested = true
    const request = yield* decodeParams(Protocol.InitializeParams, params).pipe(
      Effect.tapError(() => Effect.sync(() => (initializeRequested = false)))
    )
    const resumeId = request.resumeSessionId
    let attached: Session
    if (resumeId !== undefined && resumeId !== null) {
      const existing = registry.sessions.get(resumeId)
      if (existing === undefined) {
        initializeRequested = false
        return yield* reply(ErrorCode.invalidRequest, `unknown session id ${resumeId}`)
      }
      if (existing.attached !== undefined) {
        initializeRequested = false
        return yield* reply(
          ErrorCode.sessionAlreadyAttached,
          `session ${resumeId} is already attached to another connection`
        )
      }
      if (existing.expiry !== undefined) yield* Fiber.interrupt(existing.expiry)
      existing.expiry = undefined
      attached = existing
    } else {
      if (registry.sessions.size >= registry.limits.sessions) {
        initializeRequested = false
        return yield* reply(
          ErrorCode.limitExceeded,
          `too many sessions: this server keeps ${registry.sessions.size} (the limit); try again later`
        )
      }
      attached = {
        id: crypto.randomUUID(),
        processes: new Map(),
        attached: undefined,
        expiry: undefined,
        live: 0,
        ended: false,
        changes: new ChangeSignal()
      }
      registry.sessions.set(attached.id, attached)
    }
    attached.attached = connection
    attached.changes.notify()
    session = attached
    methods = processMethods(registry, attached)
    const cwd = yield* registry.executor.defaultCwd.pipe(Effect.orElseSucceed(() => "/"))
    const shell = process.env.SHELL ?? "/bin/sh"
    return {
      sessionId: attached.id,
      environmentInfo: {
        shell: { name: basename(shell), path: shell },
        cwd: pathToFileURL(cwd).href,
        platformOs: process.platform,
        executorVersion: `effect-exec ${version}`
      },
      capabilities
    }
  })

  const handle = (method: string, params: unknown): Effect.Effect<unknown, Reply> => {
    if (method === "initialize") return initialize(params)
    if (isProcessMethod(method)) {
      if (session === undefined || methods === undefined) {
        return reply(ErrorCode.invalidRequest, "client must call initialize before using exec methods")
      }
      if (!initialized) return reply(ErrorCode.invalidRequest, "client must send initialized before using exec methods")
      return methods[method](params)
    }
    return reply(ErrorCode.methodNotFound, `method not found: ${method}`)
  }

  // requests run concurrently up to a limit; a bounded number wait, the rest are refused
  const turns = yield* Semaphore.make(registry.limits.concurrentRequests)
  let pending = 0
  const answer = (id: RequestId, outcome: Effect.Effect<unknown, Reply>) =>
    Effect.matchEffect(outcome, {
      onSuccess: (result) =>
        result instanceof RawJson
          ? sendJson(`{"id":${JSON.stringify(id)},"result":${result.json}}`)
          : send({ id, result }),
      onFailure: (error) => send({ id, error: { code: error.code, message: error.message } })
    })
  const overloaded = () => pending >= registry.limits.concurrentRequests + registry.limits.queuedRequests
  /** A request takes a turn until its answer is handed to the OS: answers waiting to go out are bounded too. */
  const respond = (id: RequestId, method: string, params: unknown) =>
    Effect.suspend(() => {
      if (overloaded()) {
        return answer(
          id,
          reply(
            ErrorCode.limitExceeded,
            `too many requests in flight on this connection (${pending}); wait for answers before sending more`
          )
        )
      }
      pending++
      return turns.withPermits(1)(answer(id, handle(method, params))).pipe(Effect.ensuring(Effect.sync(() => pending--)))
    })
  /** Notifications take turns as requests do; past the limit they are dropped (nothing answers them). */
  const accept = (work: Effect.Effect<unknown, Reply>) =>
    Effect.suspend(() => {
      if (overloaded()) return Effect.void
      pending++
      return turns.withPermits(1)(Effect.ignore(work)).pipe(Effect.ensuring(Effect.sync(() => pending--)))
    })

  const closed = yield* Effect.callback<string>((resume) => {
    transport.listen({
      onFrame: (frame) => {
        const parsed = parseFrame(frame)
        if (!parsed.ok) {
          run(send({ id: -1, error: { code: ErrorCode.invalidRequest, message: parsed.error } }))
          return
        }
        const { id, method, params } = parsed.message
        if (method === undefined) return // a response from the client: nothing asked for it
        if (id === undefined) {
          if (method === "initialized" && session !== undefined) initialized = true
          else if (method === "process/acknowledge" && initialized && methods !== undefined) {
            run(accept(methods["process/acknowledge"](params)))
          }
          return
        }
        run(respond(id, method, params))
      },
      onClose: (reason) => resume(Effect.succeed(reason))
    })
  })

  yield* Scope.close(scope, undefined as never).pipe(Effect.ignore)
  const detached = session
  if (detached !== undefined && detached.attached === connection) {
    detached.attached = undefined
    detached.expiry = yield* FiberSet.run(
      registry.fibers,
      Effect.sleep(registry.sessionTtl).pipe(
        Effect.andThen(Effect.suspend(() => detached.attached === undefined ? endSession(registry, detached) : Effect.void))
      )
    )
  }
  return closed
})

/**
 * Serves one client on a pair of streams (newline-delimited JSON), for
 * example this process's stdin and stdout, until the input ends; then
 * terminates the session's processes.
 *
 * @category serving
 * @since 0.1.0
 */
export const serveStdio = Effect.fnUntraced(function*(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  options: Options = {}
) {
  const registry = yield* makeRegistry(options)
  return yield* serveConnection(registry, fromStreams(input, output))
}, Effect.scoped)
