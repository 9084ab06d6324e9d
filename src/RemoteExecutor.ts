/**
 * The `Executor` contract as a client of an exec-server (ours or Codex's):
 * connects lazily, initializes a session, maps JSON-RPC errors to typed
 * reasons, routes notifications by `processId` into per-process event logs,
 * and when the link drops reconnects and resumes the session, retrying the
 * calls that are safe to repeat (`read` is: it names its cursor).
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Schedule from "effect/Schedule"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import WebSocket from "ws"
import { ChangeSignal } from "./internal/changeSignal.ts"
import { PushedOutput } from "./internal/pushedOutput.ts"
import {
  ConnectionLost,
  Executor,
  ExecutorError,
  type ExecutorErrorReason,
  InvalidRequest,
  type ProcessEvent,
  ProcessIdInUse,
  ServerError,
  SpawnFailed,
  UnknownProcess,
  Unsupported
} from "./Executor.ts"
import { ErrorCode, fromWebSocket, makeClient, type Client, RpcError, type Transport, TransportClosed } from "./JsonRpc.ts"
import * as Protocol from "./Protocol.ts"

/**
 * How to reach an exec-server.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** How long connecting and initializing may take (default 10 s). */
  readonly connectTimeout?: Duration.Input
  /**
   * How long an answer may take beyond a read's own `waitMs` (default 30 s);
   * past it the link counts as lost: a server that stopped answering without
   * closing the connection cannot hang a call.
   */
  readonly requestTimeout?: Duration.Input
  /** Sent in `initialize` (default `effect-exec`). */
  readonly clientName?: string
}

/**
 * Options of a WebSocket exec-server.
 *
 * @category options
 * @since 0.1.0
 */
export interface WebSocketOptions extends Options {
  /** `ws://HOST:PORT` of the server. */
  readonly url: string
  /** Sent as `Authorization: Bearer …`. */
  readonly token?: Redacted.Redacted<string> | undefined
}

/**
 * Opens a WebSocket to an exec-server.
 *
 * @category transports
 * @since 0.1.0
 */
export const connectWebSocket = (options: WebSocketOptions): Effect.Effect<Transport, ConnectionLost> =>
  Effect.callback<Transport, ConnectionLost>((resume) => {
    const headers: Record<string, string> = options.token === undefined
      ? {}
      : { Authorization: `Bearer ${Redacted.value(options.token)}` }
    const socket = new WebSocket(options.url, { headers, maxPayload: 64 * 1024 * 1024 })
    const lost = (description: string) => resume(Effect.fail(new ConnectionLost({ description })))
    socket.once("open", () => {
      socket.removeAllListeners("error")
      resume(Effect.succeed(fromWebSocket(socket)))
    })
    socket.once("unexpected-response", (_request, response) => {
      lost(
        response.statusCode === 401
          ? `${options.url} refused the connection: 401 Unauthorized (wrong or missing token)`
          : `${options.url} refused the WebSocket upgrade: HTTP ${response.statusCode}`
      )
      socket.terminate()
    })
    socket.once("error", (error) => lost(`cannot connect to ${options.url}: ${error.message}`))
    return Effect.sync(() => socket.terminate())
  })

/** Maps a JSON-RPC error answer to a typed reason (Codex's messages, and ours). */
const reasonOf = (processId: string, error: RpcError): ExecutorErrorReason => {
  const message = error.message
  if (error.code === ErrorCode.invalidRequest && message.startsWith("unknown process id")) {
    return new UnknownProcess({ processId })
  }
  if (error.code === ErrorCode.invalidRequest && message.endsWith("already exists")) {
    return new ProcessIdInUse({ processId })
  }
  if (error.code === ErrorCode.invalidParams || error.code === ErrorCode.invalidRequest) {
    return new InvalidRequest({ description: message })
  }
  if (error.code === ErrorCode.methodNotFound) return new Unsupported({ feature: message })
  return new ServerError({ code: error.code, description: message })
}

const spawnReason = (command: string, error: ServerError): ExecutorErrorReason => {
  const text = error.description
  const kind = /working directory/i.test(text)
    ? "CwdNotFound"
    : /command not found|no such file/i.test(text)
    ? "CommandNotFound"
    : /permission denied/i.test(text)
    ? "PermissionDenied"
    : "Other"
  return new SpawnFailed({ kind, command, description: text })
}

/** Output kept per process from notifications for `events`, as the Codex client keeps it (oldest dropped). */
const notifiedOutputBytes = 1024 * 1024

/** Pushed output cached per streamed process: the server's window is 1 MiB, so more means nobody reads. */
const maxCachedBytesPerProcess = 4 * 1024 * 1024

/** Streamed processes cached at once; the one read least recently falls back to plain reads. */
const maxStreamed = 64

/** What this client knows of one process from notifications, in seq order. */
class NotifiedEvents {
  readonly events: Array<ProcessEvent> = []
  private outputBytes = 0
  private readonly changes = new ChangeSignal()
  add(event: ProcessEvent) {
    let index = this.events.length
    while (index > 0 && this.events[index - 1]!.seq > event.seq) index--
    if (this.events[index - 1]?.seq === event.seq) return
    this.events.splice(index, 0, event)
    if (event._tag === "Output") {
      this.outputBytes += event.chunk.length
      while (this.outputBytes > notifiedOutputBytes) {
        const oldest = this.events.findIndex((e) => e._tag === "Output")
        this.outputBytes -= (this.events[oldest] as { chunk: Uint8Array }).chunk.length
        this.events.splice(oldest, 1)
      }
    }
    this.changes.notify()
  }
  after(seq: number) {
    return this.events.filter((event) => event.seq > seq)
  }
  /** Completes once an event after `seq` arrived. */
  untilAfter(seq: number): Effect.Effect<void> {
    return this.changes.until(() => this.events.some((event) => event.seq > seq))
  }
}

const decode = <S extends Schema.Top>(schema: S) => {
  const run = Schema.decodeUnknownEffect(schema as unknown as Schema.Codec<S["Type"], unknown>)
  return (value: unknown) =>
    run(value).pipe(
      Effect.mapError((error) =>
        new ExecutorError({
          reason: new ServerError({ code: ErrorCode.internalError, description: `unexpected answer: ${error.message}` })
        })
      )
    )
}
const decodeStartResult = decode(Protocol.StartResult)
const decodeReadResult = decode(Protocol.ReadResult)
const decodeWriteResult = decode(Protocol.WriteResult)
const decodeTerminateResult = decode(Protocol.TerminateResult)
const decodeInitializeResult = decode(Protocol.InitializeResult)
const encodeStart = Schema.encodeSync(Protocol.StartParams)
const encodeWrite = Schema.encodeSync(Protocol.WriteParams)
const decodeOutput = Schema.decodeUnknownOption(Protocol.OutputNotification)
const decodeExited = Schema.decodeUnknownOption(Protocol.ExitedNotification)
const decodeClosed = Schema.decodeUnknownOption(Protocol.ClosedNotification)

/**
 * Builds a remote executor over transports opened by `connect`, in the current
 * scope (closing it closes the link).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: Options = {}
) {
  const connectTimeout = Duration.fromInputUnsafe(options.connectTimeout ?? "10 seconds")
  const requestTimeout = Duration.toMillis(Duration.fromInputUnsafe(options.requestTimeout ?? "30 seconds"))
  const clientName = options.clientName ?? "effect-exec"
  const notified = new Map<string, NotifiedEvents>()
  /** Processes whose output the server pushes for our reads (see `streams`). */
  const pushed = new Map<string, PushedOutput>()
  /** Processes whose pushed events `events` should show (started without `outputNotifications: false`). */
  const notifiedOutput = new Set<string>()
  const connecting = yield* Semaphore.make(1)
  const scope = yield* Effect.scope
  let current: Client | undefined
  let sessionId: string | undefined
  let serverCwd: string | undefined
  let serverCapabilities: ReadonlyArray<string> = []

  const eventsOf = (processId: string) => {
    let events = notified.get(processId)
    if (events === undefined) {
      events = new NotifiedEvents()
      notified.set(processId, events)
    }
    return events
  }

  /** Histories of closed processes, oldest first: at most `keptHistories` stay for `events`. */
  const closedHistories = new Set<string>()
  const keptHistories = 1024
  const record = (processId: string, event: ProcessEvent) => {
    const cache = pushed.get(processId)
    if (cache !== undefined) {
      cache.add(event)
      // nobody reads it any more (the loop gave up on a pipe held open): stop caching, reads ask the server
      if (cache.bytes > maxCachedBytesPerProcess) pushed.delete(processId)
    }
    if (event._tag !== "Output" || notifiedOutput.has(processId)) eventsOf(processId).add(event)
    if (event._tag === "Closed") {
      closedHistories.add(processId)
      if (closedHistories.size > keptHistories) {
        const oldest = closedHistories.values().next().value!
        closedHistories.delete(oldest)
        notified.delete(oldest)
        notifiedOutput.delete(oldest)
      }
    }
  }

  const onNotification = (method: string, params: unknown) => {
    if (method === "process/output") {
      const output = decodeOutput(params)
      if (Option.isSome(output)) {
        const { chunk, processId, seq, stream } = output.value
        record(processId, { _tag: "Output", seq, stream, chunk })
      }
    } else if (method === "process/exited") {
      const exited = decodeExited(params)
      if (Option.isSome(exited)) {
        const { exitCode, processId, seq, signal } = exited.value
        record(processId, { _tag: "Exited", seq, exitCode, signal: signal ?? null })
      }
    } else if (method === "process/closed") {
      const closed = decodeClosed(params)
      if (Option.isSome(closed)) record(closed.value.processId, { _tag: "Closed", seq: closed.value.seq })
    }
  }

  const lost = (error: TransportClosed | ConnectionLost) =>
    new ExecutorError({
      reason: error._tag === "ConnectionLost" ? error : new ConnectionLost({ description: error.reason })
    })

  /** A live, initialized client: the current one, or a new one that resumes the session. */
  const client = connecting.withPermits(1)(Effect.suspend(() => {
    if (current !== undefined) return Effect.succeed(current)
    return Effect.gen(function*() {
      const transport = yield* connect
      const rpc = makeClient(transport, onNotification)
      const initialize = (resumeSessionId: string | undefined) =>
        rpc.request("initialize", resumeSessionId === undefined ? { clientName } : { clientName, resumeSessionId })
      const result = yield* initialize(sessionId).pipe(
        // the server may not have seen our old connection go yet: it will shortly
        Effect.retry({
          while: (error) => error._tag === "RpcError" && error.code === ErrorCode.sessionAlreadyAttached,
          schedule: Schedule.spaced("100 millis")
        }),
        // a session that expired cannot be resumed: start a new one
        Effect.catchTag("RpcError", (error) =>
          sessionId !== undefined && error.message.startsWith("unknown session id") ? initialize(undefined) : Effect.fail(error)),
        Effect.flatMap(decodeInitializeResult),
        Effect.tap(() => rpc.notify("initialized", {})),
        // a link that failed to become a session must not stay open (the server would count it as attached)
        Effect.onError(() => transport.close)
      )
      sessionId = result.sessionId
      serverCwd = result.environmentInfo?.cwd
      serverCapabilities = result.capabilities ?? []
      current = rpc
      yield* Effect.forkDetach(Effect.andThen(Deferred.await(rpc.closed), Effect.sync(() => {
        if (current === rpc) current = undefined
      })))
      return rpc
    }).pipe(
      Effect.timeoutOrElse({
        duration: connectTimeout,
        orElse: () => Effect.fail(new ConnectionLost({ description: `no answer within ${Duration.format(connectTimeout)}` }))
      }),
      Effect.mapError((error) =>
        error._tag === "ExecutorError"
          ? error
          : error._tag === "RpcError"
          ? new ExecutorError({ reason: new ServerError({ code: error.code, description: error.message }) })
          : lost(error)
      )
    )
  }))

  /**
   * Sends a request; a lost link becomes `ConnectionLost` (and the next call
   * connects anew), an error answer a typed reason.
   */
  const call = (processId: string, method: string, params: unknown, waitMs = 0) =>
    Effect.flatMap(client, (rpc) =>
      rpc.request(method, params).pipe(
        Effect.timeoutOrElse({
          duration: requestTimeout + waitMs,
          orElse: () =>
            Effect.andThen(
              rpc.close,
              Effect.fail(new TransportClosed({ reason: `no answer to ${method} within ${requestTimeout + waitMs} ms` }))
            )
        }),
        Effect.mapError((error) => {
          if (error._tag === "RpcError") return new ExecutorError({ reason: reasonOf(processId, error) })
          if (current === rpc) current = undefined
          return lost(error)
        })
      ))

  /** Like `call`, but reconnects once and repeats the request after a lost link. */
  const callIdempotent = (processId: string, method: string, params: unknown, waitMs = 0) =>
    call(processId, method, params, waitMs).pipe(
      Effect.catchIf(
        (error) => error.reason._tag === "ConnectionLost",
        () => call(processId, method, params, waitMs)
      )
    )

  yield* Effect.addFinalizer(() => current === undefined ? Effect.void : current.close)

  const serverRead = (request: Protocol.ReadParams) =>
    Effect.flatMap(
      callIdempotent(request.processId, "process/read", {
        processId: request.processId,
        afterSeq: request.afterSeq ?? null,
        maxBytes: request.maxBytes ?? null,
        waitMs: request.waitMs ?? null
      }, request.waitMs ?? 0),
      decodeReadResult
    )

  /** Tells the server a reader has everything up to `afterSeq`, without waiting (it lets a paused process go on). */
  const acknowledge = (processId: string, afterSeq: number) =>
    current === undefined
      ? Effect.void
      : Effect.asVoid(Effect.forkIn(Effect.ignore(current.notify("process/acknowledge", { processId, afterSeq })), scope))

  /**
   * A read of a process whose output the server pushes: answered from what
   * arrived when the next chunks are there (no round trip), from the server
   * otherwise. Either way the server learns the cursor, which moves its window.
   */
  const streamedRead = (request: Protocol.ReadParams, cache: PushedOutput) =>
    Effect.gen(function*() {
      const afterSeq = request.afterSeq ?? 0
      const maxBytes = request.maxBytes ?? null
      cache.trim(afterSeq)
      if (afterSeq > cache.acknowledged) {
        cache.acknowledged = afterSeq
        yield* acknowledge(request.processId, afterSeq)
      }
      const local = cache.read(afterSeq, maxBytes)
      if (local !== undefined) return local
      // Nothing yet: the next output is most likely on its way, so wait for the
      // push (within waitMs) rather than ask for a second copy of it. What is
      // not output (the exit, the close) and what a reconnection lost come
      // from the server.
      const waitMs = request.waitMs ?? 0
      if (waitMs > 0 && !cache.knowsNext(afterSeq) && current !== undefined) {
        const link = current
        const fromPush = Effect.map(cache.untilNext(afterSeq), () => cache.read(afterSeq, maxBytes))
        // a lost link pushes nothing more: ask the server (reconnecting) at once
        const linkLost = Effect.as(Deferred.await(link.closed), undefined)
        const answer = yield* Effect.timeoutOption(Effect.raceFirst(fromPush, linkLost), waitMs)
        if (Option.isSome(answer) && answer.value !== undefined) return answer.value
      }
      const result = yield* serverRead(request)
      if (Protocol.isDrained(result)) pushed.delete(request.processId)
      return result
    })

  return Executor.of({
    start: (request) =>
      Effect.gen(function*() {
        yield* client
        // With our server, a process read under backpressure streams: the
        // server pushes its output within the window, and reads mostly find
        // it here. A Codex server would ignore both fields.
        const streams = request.backpressure === true && serverCapabilities.includes("process/acknowledge")
        if (request.outputNotifications !== false) notifiedOutput.add(request.processId)
        if (streams) {
          pushed.set(request.processId, new PushedOutput())
          if (pushed.size > maxStreamed) pushed.delete(pushed.keys().next().value!)
        }
        const params = streams ? { ...request, outputNotifications: true } : request
        const answer = yield* call(request.processId, "process/start", encodeStart(params)).pipe(
          Effect.mapError((error) =>
            error.reason._tag === "ServerError"
              ? new ExecutorError({ reason: spawnReason(request.argv[0] ?? "", error.reason) })
              : error
          ),
          Effect.tapError(() =>
            Effect.sync(() => {
              pushed.delete(request.processId)
              notified.delete(request.processId)
              notifiedOutput.delete(request.processId)
            })
          )
        )
        return yield* decodeStartResult(answer)
      }),
    read: (request) => {
      const cache = pushed.get(request.processId)
      if (cache === undefined) return serverRead(request)
      // most recently read last, so that eviction takes the one read least recently
      pushed.delete(request.processId)
      pushed.set(request.processId, cache)
      return streamedRead(request, cache)
    },
    // a write carries an id the server de-duplicates by, so it too may be repeated after a lost link
    write: (request) =>
      callIdempotent(request.processId, "process/write", encodeWrite({ ...request, writeId: request.writeId ?? crypto.randomUUID() })).pipe(
        Effect.flatMap(decodeWriteResult),
        Effect.map((result) => result.status)
      ),
    terminate: (processId) =>
      Effect.flatMap(callIdempotent(processId, "process/terminate", { processId }), decodeTerminateResult),
    signal: (processId, signal) => Effect.asVoid(callIdempotent(processId, "process/signal", { processId, signal })),
    defaultCwd: Effect.map(client, () => serverCwd ?? "/"),
    events: (processId, options) =>
      Stream.paginate(options?.afterSeq ?? 0, (cursor) =>
        Effect.gen(function*() {
          const log = eventsOf(processId)
          let batch = log.after(cursor)
          while (batch.length === 0) {
            if (current === undefined) yield* client
            yield* Effect.raceFirst(log.untilAfter(cursor), Effect.flatMap(client, (rpc) => Deferred.await(rpc.closed)))
            batch = log.after(cursor)
          }
          const last = batch[batch.length - 1]!
          return [batch, last._tag === "Closed" ? Option.none() : Option.some(last.seq)] as const
        }))
  })
})

/**
 * A remote executor talking to the exec-server at `url` over WebSocket.
 * Nothing connects until the first call.
 *
 * @example
 * ```ts
 * Exec.run({ command: ["uname", "-a"] }).pipe(
 *   Effect.provide(Environment.fromExecutor({ _tag: "Remote", url })),
 *   Effect.provide(RemoteExecutor.layer({ url, token: Redacted.make(token) }))
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: WebSocketOptions): Layer.Layer<Executor> =>
  Layer.effect(Executor, make(connectWebSocket(options), options))

/**
 * A remote executor over a transport of your own (for example an exec-server
 * child process speaking newline-delimited JSON on its stdio).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerTransport = (
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: Options = {}
): Layer.Layer<Executor> => Layer.effect(Executor, make(connect, options))

