/**
 * The `Executor` contract as a client of an exec-server (ours or Codex's):
 * connects lazily, initializes a session, maps JSON-RPC errors to typed
 * reasons, routes notifications by `processId` into per-process records, and
 * when the link drops reconnects and resumes the session, retrying the calls
 * that are safe to repeat (`read` is: it names its cursor; `write` is: the
 * server de-duplicates by its `writeId`).
 *
 * `makeEnvironment` adds Effect's `FileSystem` over the server's `fs/*`
 * methods, on the same link.
 *
 * The roles live under `internal/remote/`: `link` (connect, initialize and
 * resume, typed calls with timeouts), `processRecords` (what notifications
 * told of each process), `pushedOutput` and `streamedRead` (reads answered
 * from pushed output), `fileSystem` and `platformError` (the file system).
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type WebSocket from "ws"
import { ConnectionLost, Executor, ExecutorError, ProtocolViolation, Unsupported } from "./Executor.ts"
import * as Defaults from "./internal/defaults.ts"
import { makeFileSystem } from "./internal/remote/fileSystem.ts"
import { FootprintProbe } from "./internal/remote/footprint.ts"
import { Link } from "./internal/remote/link.ts"
import { ProcessRecords } from "./internal/remote/processRecords.ts"
import { isExitCode, isSignalName, readAnswerViolation } from "./internal/remote/serverAnswers.ts"
import { streamedRead } from "./internal/remote/streamedRead.ts"
import { decodeOutputFrame, isOutputFrame } from "./internal/rpc/outputFrame.ts"
import { fromWebSocket, type Transport } from "./JsonRpc.ts"
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
  /** The largest file the file system reads or writes (default 64 MiB); larger ones are refused. */
  readonly maxFileBytes?: number
  /**
   * Whether to ask for pushed output as binary frames where the server offers
   * them and the transport carries them (default true); false keeps every
   * frame JSON text, as a Codex client gets it.
   */
  readonly binaryOutput?: boolean
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
  // ws (and Node's http, tls and zlib under it) loads on the first connection, not with this module
  Effect.flatMap(Effect.promise(() => import("ws")), ({ default: WebSocket }) =>
    Effect.callback<Transport, ConnectionLost>((resume) => {
      const headers: Record<string, string> = options.token === undefined
        ? {}
        : { Authorization: `Bearer ${Redacted.value(options.token)}` }
      const socketOptions: WebSocket.ClientOptions & { readonly closeTimeout: number } = {
        headers,
        maxPayload: Defaults.client.maxFrameBytes,
        // ws 8.23's own option (its types lag): a server that never answers our
        // close cannot keep this process alive for ws's default 30 s
        closeTimeout: Defaults.client.closeTimeoutMillis
      }
      const lost = (description: string) =>
        resume(Effect.fail(new ConnectionLost({ description })))
      let socket: WebSocket
      try {
        socket = new WebSocket(options.url, socketOptions)
      } catch (error) {
        // a URL ws cannot use ("", "ws://"): the same typed failure as an unreachable one, not a defect
        return lost(`cannot connect to ${JSON.stringify(options.url)}: ${(error as Error).message}`)
      }
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
    }))

const decodeOutput = Schema.decodeUnknownOption(Protocol.OutputNotification)
const decodeExited = Schema.decodeUnknownOption(Protocol.ExitedNotification)
const decodeClosed = Schema.decodeUnknownOption(Protocol.ClosedNotification)

/**
 * Routes a server notification into the records. One that does not decode, or
 * whose exit code or signal no process can have, is dropped (a read answer
 * with them is a protocol violation).
 */
const recordNotification = (records: ProcessRecords) => (method: string, params: unknown): void => {
  if (method === "process/output") {
    const output = decodeOutput(params)
    if (Option.isSome(output)) {
      const { chunk, processId, seq, stream } = output.value
      records.add(processId, { _tag: "Output", seq, stream, chunk })
    }
  } else if (method === "process/exited") {
    const exited = decodeExited(params)
    if (Option.isSome(exited) && isExitCode(exited.value.exitCode) && isSignalName(exited.value.signal)) {
      const { exitCode, processId, sandboxDenied, seq, signal } = exited.value
      records.add(processId, {
        _tag: "Exited",
        seq,
        exitCode,
        signal: signal ?? null,
        sandboxDenied: sandboxDenied ?? false
      })
    }
  } else if (method === "process/closed") {
    const closed = decodeClosed(params)
    if (Option.isSome(closed)) records.add(closed.value.processId, { _tag: "Closed", seq: closed.value.seq })
  }
}

/**
 * Routes a binary output frame into the records (claimed: it is output, taken
 * in or dropped). A malformed one is dropped, as an unparsable JSON frame is; a
 * binary frame that is not an output frame is left to be read as JSON.
 */
const recordOutputFrame = (records: ProcessRecords) => (frame: Uint8Array): boolean => {
  if (!isOutputFrame(frame)) return false
  const output = decodeOutputFrame(frame)
  if (typeof output !== "string") {
    records.add(output.processId, { _tag: "Output", seq: output.seq, stream: output.stream, chunk: output.chunk })
  }
  return true
}

/**
 * What runs on an exec-server's host: its processes and its files, over one
 * connection.
 *
 * @category models
 * @since 0.1.0
 */
export interface RemoteEnvironment {
  readonly executor: Executor["Service"]
  /**
   * Effect's `FileSystem` over the server's `fs/*` methods: absolute paths are
   * the server host's, relative ones are resolved against the server's working
   * directory; what the protocol cannot do (`rename`, `chmod`, `watch`, a
   * `mode`, …) fails with a `BadArgument`.
   */
  readonly fileSystem: FileSystem.FileSystem
}

/**
 * Builds a remote executor and file system sharing one link over transports
 * opened by `connect`, in the current scope (closing it closes the link).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeEnvironment = Effect.fnUntraced(function*(
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: Options = {}
) {
  const records = new ProcessRecords()
  const link = new Link(connect, {
    onNotification: recordNotification(records),
    onBinaryFrame: recordOutputFrame(records),
    onLost: () => records.linkLost()
  }, {
    clientName: options.clientName ?? "effect-exec",
    binaryOutput: options.binaryOutput ?? true,
    connectTimeout: Duration.fromInputUnsafe(options.connectTimeout ?? Defaults.client.connectTimeoutMillis),
    requestTimeoutMillis: Duration.toMillis(
      Duration.fromInputUnsafe(options.requestTimeout ?? Defaults.client.requestTimeoutMillis)
    ),
    scope: yield* Effect.scope
  })

  yield* Effect.addFinalizer(() => link.close)
  // tests measure what the client holds through this (nothing listens otherwise)
  const probe = yield* FootprintProbe
  if (probe !== undefined) probe(() => records.footprint())

  /** A read answered by the server, checked: output only forwards, no more than asked for, real exit codes. */
  const serverRead = (request: Protocol.ReadParams) =>
    link.callIdempotent("process/read", {
      processId: request.processId,
      afterSeq: request.afterSeq ?? null,
      maxBytes: request.maxBytes ?? null,
      waitMs: request.waitMs ?? null
    }, { processId: request.processId, waitMs: request.waitMs ?? 0 }).pipe(
      Effect.flatMap((result) => {
        const violation = readAnswerViolation(request, result)
        if (violation !== undefined) {
          return Effect.fail(new ExecutorError({ reason: new ProtocolViolation({ description: violation }) }))
        }
        if (Protocol.isDrained(result)) records.drained(request.processId)
        return Effect.succeed(result)
      })
    )

  const start = Effect.fn("RemoteExecutor.start")(function*(request: Protocol.StartParams) {
    yield* link.client
    // With our server, a process read under backpressure streams: the server
    // pushes its output within the window, and reads mostly find it here. A
    // Codex server would ignore both fields.
    const streams = request.backpressure === true && (link.server.capabilities ?? []).includes("process/acknowledge")
    records.starting(request.processId, { showsOutput: request.outputNotifications !== false, streams })
    const started = yield* link.call(
      "process/start",
      streams ? { ...request, outputNotifications: true } : request,
      { processId: request.processId, command: request.argv[0] ?? "" }
    ).pipe(Effect.tapError(() => Effect.sync(() => records.forget(request.processId))))
    // the window tells the streamed reads how often to acknowledge
    const pushed = records.pushedFor(request.processId)
    if (pushed !== undefined && started.windowBytes !== undefined) pushed.windowBytes = started.windowBytes
    return started
  })

  const events = (processId: string, options?: { readonly afterSeq?: number }) =>
    Stream.paginate(options?.afterSeq ?? 0, (cursor) =>
      Effect.gen(function*() {
        const log = records.of(processId).events
        let batch = log.after(cursor)
        while (batch.length === 0) {
          if (link.live === undefined) yield* link.client
          yield* Effect.raceFirst(
            log.untilAfter(cursor),
            Effect.flatMap(link.client, (rpc) => Deferred.await(rpc.closed))
          )
          batch = log.after(cursor)
        }
        const last = batch[batch.length - 1]!
        return [batch, last._tag === "Closed" ? Option.none() : Option.some(last.seq)] as const
      }))

  const executor = Executor.of({
    start,
    read: Effect.fn("RemoteExecutor.read")(function*(request: Protocol.ReadParams) {
      const cache = records.pushedFor(request.processId)
      return yield* (cache === undefined ? serverRead(request) : streamedRead(link, cache, request, serverRead))
    }),
    write: Effect.fn("RemoteExecutor.write")(function*(request: Protocol.WriteParams) {
      const params = { ...request, writeId: request.writeId ?? crypto.randomUUID() }
      const result = yield* link.callIdempotent("process/write", params, { processId: request.processId })
      return result.status
    }),
    terminate: Effect.fn("RemoteExecutor.terminate")(function*(processId: string) {
      return yield* link.callIdempotent("process/terminate", { processId }, { processId })
    }),
    signal: Effect.fn("RemoteExecutor.signal")(function*(processId: string, signal: Protocol.SignalName) {
      yield* link.callIdempotent("process/signal", { processId, signal }, { processId })
    }),
    resize: Effect.fn("RemoteExecutor.resize")(function*(processId: string, size: Protocol.TerminalSize) {
      yield* link.client
      // Codex 0.169 has no process/resize (it answers -32601): say so without asking
      if (!(link.server.capabilities ?? []).includes("process/resize")) {
        return yield* Effect.fail(
          new ExecutorError({ reason: new Unsupported({ feature: "terminal resize (process/resize)" }) })
        )
      }
      yield* link.callIdempotent("process/resize", { processId, size }, { processId })
    }),
    closeStdin: Effect.fn("RemoteExecutor.closeStdin")(function*(processId: string) {
      yield* link.client
      // Codex 0.169 cannot end a pipe's input: say so without asking
      if (!(link.server.capabilities ?? []).includes("process/closeStdin")) {
        return yield* Effect.fail(
          new ExecutorError({ reason: new Unsupported({ feature: "ending a command's stdin (process/closeStdin)" }) })
        )
      }
      const result = yield* link.callIdempotent("process/closeStdin", { processId }, { processId })
      return result.status
    }),
    defaultCwd: Effect.map(link.client, () => link.server.cwd ?? "/"),
    // only our servers say: a Codex server names no such capability (it sandboxes where its platform can)
    sandboxSupport: Effect.map(link.client, () =>
      (link.server.capabilities ?? []).includes(Protocol.sandboxCapability)
        ? { available: true as const }
        : {
          available: false as const,
          reason: `the exec-server does not name the ${Protocol.sandboxCapability} capability`
        }),
    events
  })
  const fileSystem = makeFileSystem(
    link,
    options.maxFileBytes === undefined ? {} : { maxFileBytes: options.maxFileBytes }
  )
  return { executor, fileSystem } satisfies RemoteEnvironment
})

/**
 * Builds a remote executor over transports opened by `connect`, in the current
 * scope (closing it closes the link).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  connect: Effect.Effect<Transport, ConnectionLost>,
  options: Options = {}
): Effect.Effect<Executor["Service"], never, Scope.Scope> =>
  Effect.map(makeEnvironment(connect, options), (environment) => environment.executor)

/**
 * A remote executor talking to the exec-server at `url` over WebSocket.
 * Nothing connects until the first call.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Environment, Exec, OutputSink, RemoteExecutor } from "effect-exec"
 *
 * const url = "ws://127.0.0.1:4000"
 * const program = Exec.run({ command: ["uname", "-a"] }).pipe(
 *   Effect.provide(Environment.fromExecutor({ _tag: "Remote", url })),
 *   Effect.provide(RemoteExecutor.layer({ url, token: Redacted.make("secret") })),
 *   Effect.provide(OutputSink.layerDiscard)
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
