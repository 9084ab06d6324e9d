/**
 * The remote client's link to its exec-server: connects on first use,
 * initializes a session (or resumes the last one after a drop), and sends
 * typed calls by the method table, each bounded by a timeout. When the link
 * is lost every pending call fails with `ConnectionLost`, and the next call
 * connects anew.
 *
 * A session the server no longer has (it expired while the client was away,
 * or the server restarted) cannot be resumed: the link then begins a new one,
 * and counts it (`sessions`), so that what was started on an earlier session
 * is known to be gone from the server (`SessionLost`).
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { ConnectionLost, ExecutorError, InvalidRequest, ProtocolViolation, ServerError } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import * as Defaults from "../defaults.ts"
import { oneLine } from "../oneLine.ts"
import { type Client, makeClient, type RpcError } from "../rpc/client.ts"
import { ErrorCode } from "../rpc/message.ts"
import { type BinaryMemory, type Transport, TransportClosed } from "../rpc/transport.ts"

/** What a call is about, for its timeout and for typing a Codex server's errors. */
export interface CallContext {
  readonly processId?: string | undefined
  /** The command of a `process/start`: its failure is a spawn failure. */
  readonly command?: string | undefined
  /** The path of an `fs/*` call: its failure is a file reason. */
  readonly path?: string | undefined
  /** The call waits this long on the server (a long-poll read) before its answer is due. */
  readonly waitMs?: number | undefined
}

/** What the server said of itself in `initialize`. */
export interface ServerInfo {
  readonly cwd: string | undefined
  /** Where its temporary files go (Codex's `environmentInfo.tempDir`). */
  readonly tempDir: string | undefined
  /** Our extensions it offers; `undefined` when it names none (a Codex server). */
  readonly capabilities: ReadonlyArray<string> | undefined
}

/**
 * A request our server refused for one of its limits that frees up as answers
 * come and processes close (requests in flight, processes): it did not run.
 */
const isLimitRefusal = (error: RpcError | TransportClosed): boolean => {
  if (error._tag !== "RpcError" || error.code !== ErrorCode.limitExceeded) return false
  const limit = Protocol.limitOf(error)
  return limit === "requests" || limit === "processesPerSession" || limit === "processes"
}

const lost = (error: TransportClosed | ConnectionLost): ExecutorError =>
  new ExecutorError({
    reason: error._tag === "ConnectionLost" ? error : new ConnectionLost({ description: error.description })
  })

/** An answer that does not match its method's schema: the server broke the protocol. */
const unexpected = (method: string) => (error: Schema.SchemaError) =>
  new ExecutorError({
    reason: new ProtocolViolation({ description: `its answer to ${method} does not fit: ${oneLine(error.message)}` })
  })

/** The link of one remote executor; see the module header. */
export class Link {
  private current: Client | undefined
  /** Connections made so far (each a session initialized or resumed): 1 while on the first. */
  private connectionCount = 0
  /** Sessions begun so far (the first, and each that replaced one the server no longer had). */
  private sessionCount = 0
  private sessionId: string | undefined
  private info: ServerInfo = { cwd: undefined, tempDir: undefined, capabilities: undefined }
  private readonly connecting = Semaphore.makeUnsafe(1)
  /** Requests in flight at once, so that a burst of calls queues here rather than being refused by the server. */
  private readonly requests = Semaphore.makeUnsafe(Defaults.client.maxRequestsInFlight)
  /**
   * Starts in flight at once, within the requests: a burst of starts queues
   * here, and cannot hold back the reads of the processes already running.
   */
  private readonly starts = Semaphore.makeUnsafe(Defaults.client.maxStartsInFlight)
  private readonly connect: Effect.Effect<Transport, ConnectionLost>
  private readonly onNotification: (method: string, params: unknown) => void
  private readonly onBinaryFrame: (frame: Uint8Array) => boolean
  private readonly binaryMemory: BinaryMemory | undefined
  private readonly onLost: () => void
  private readonly options: {
    readonly clientName: string
    /** Whether to ask for output as binary frames (where offered and carried). */
    readonly binaryOutput: boolean
    readonly connectTimeout: Duration.Duration
    readonly requestTimeoutMillis: number
    /** Where notifications run, each in a fiber of its own. */
    readonly scope: Scope.Scope
  }

  constructor(
    connect: Effect.Effect<Transport, ConnectionLost>,
    handlers: {
      /** A server notification. */
      readonly onNotification: (method: string, params: unknown) => void
      /** A binary frame: true when it was an output frame (malformed or not), false when it holds JSON. */
      readonly onBinaryFrame: (frame: Uint8Array) => boolean
      /** Where binary frames are assembled (see `Transport.listen`). */
      readonly binaryMemory?: BinaryMemory
      /** The live connection was lost (a new one will be made on the next call). */
      readonly onLost: () => void
    },
    options: Link["options"]
  ) {
    this.connect = connect
    this.onNotification = handlers.onNotification
    this.onBinaryFrame = handlers.onBinaryFrame
    this.binaryMemory = handlers.binaryMemory
    this.onLost = handlers.onLost
    this.options = options
  }

  /** How a request refused for a server limit is asked again: backing off, for at most a request's timeout. */
  private get limitBackoff() {
    return Schedule.max([
      Schedule.exponential(Defaults.client.limitRetryBaseMillis).pipe(
        Schedule.modifyDelay(({ duration }) =>
          Effect.succeed(Duration.min(duration, Duration.millis(Defaults.client.limitRetryMaxMillis)))
        ),
        Schedule.jittered
      ),
      Schedule.during(Duration.millis(this.options.requestTimeoutMillis))
    ])
  }

  /** What the server said of itself, once connected. */
  get server(): ServerInfo {
    return this.info
  }

  /**
   * How many connections were made so far: what a notification said is known
   * complete on one connection only (one written into a dying connection is
   * lost, and a resumed session does not send it again).
   */
  get connections(): number {
    return this.connectionCount
  }

  /**
   * How many sessions the link began so far: 1 on the first, one more each
   * time it could not resume the session and began a new one.
   */
  get sessions(): number {
    return this.sessionCount
  }

  /**
   * Whether session `session` (a value of `sessions`) is gone: the link began
   * another since. 0 names no session (never gone).
   */
  isLostSession(session: number): boolean {
    return session !== 0 && session !== this.sessionCount
  }

  /** The live client, if connected now. */
  get live(): Client | undefined {
    return this.current
  }

  /** A live, initialized client: the current one, or a new one that resumes the session. */
  readonly client: Effect.Effect<Client, ExecutorError> = Effect.suspend(() =>
    this.current !== undefined ? Effect.succeed(this.current) : this.connecting.withPermits(1)(this.open())
  )

  /** Connects and initializes a new client (resuming the session when there is one). */
  private open(): Effect.Effect<Client, ExecutorError> {
    return Effect.gen({ self: this }, function*() {
      if (this.current !== undefined) return this.current
      const transport = yield* this.connect
      const rpc = makeClient(transport, this.onNotification, this.onBinaryFrame, this.binaryMemory)
      const result = yield* this.initialize(rpc, this.options.binaryOutput && transport.postBinary !== undefined).pipe(
        // a link that failed to become a session must not stay open (the server would count it as attached)
        Effect.onError(() => transport.close)
      )
      // not the session asked for (none was, or the server no longer had it): a new one, without the old's processes
      if (result.sessionId !== this.sessionId) this.sessionCount++
      this.sessionId = result.sessionId
      this.info = {
        cwd: result.environmentInfo?.cwd,
        tempDir: result.environmentInfo?.tempDir,
        // a list as long as a frame would make every later lookup cost as much
        capabilities: result.capabilities?.slice(0, Defaults.client.maxCapabilities)
      }
      this.current = rpc
      this.connectionCount++
      yield* Effect.forkDetach(Effect.andThen(Deferred.await(rpc.closed), Effect.sync(() => this.dropped(rpc))))
      return rpc
    }).pipe(
      Effect.timeoutOrElse({
        duration: this.options.connectTimeout,
        orElse: () =>
          Effect.fail(
            new ConnectionLost({ description: `no answer within ${Duration.format(this.options.connectTimeout)}` })
          )
      }),
      Effect.mapError((error) =>
        error._tag === "RpcError"
          ? new ExecutorError({ reason: new ServerError({ code: error.code, description: error.message }) })
          : error._tag === "SchemaError"
          ? unexpected("initialize")(error)
          : lost(error)
      )
    )
  }

  /**
   * `initialize` (resuming the session when there is one), then `initialized`,
   * asking for output as binary frames when the transport carries them and the
   * server offers them (a Codex server never sees the request).
   */
  private initialize(rpc: Client, binaryFrames: boolean) {
    const { clientName } = this.options
    const request = (resumeSessionId: string | undefined) =>
      rpc.request("initialize", resumeSessionId === undefined ? { clientName } : { clientName, resumeSessionId })
    const sessionId = this.sessionId
    return request(sessionId).pipe(
      // the server may not have seen our old connection go yet: it will shortly
      Effect.retry({
        while: (error) => error._tag === "RpcError" && error.code === ErrorCode.sessionAlreadyAttached,
        schedule: Schedule.spaced("100 millis")
      }),
      // a session the server no longer has cannot be resumed: start a new one. Both servers (ours and Codex's)
      // refuse such a resume as an invalid request (-32600 "unknown session id …"), and refuse nothing else so on a
      // connection's first `initialize`; a refusal for a limit (-32000) says nothing of the session
      Effect.catchTag(
        "RpcError",
        (error) =>
          sessionId !== undefined && error.code === ErrorCode.invalidRequest ? request(undefined) : Effect.fail(error)
      ),
      Effect.flatMap(Schema.decodeUnknownEffect(Protocol.InitializeResult)),
      Effect.tap((result) =>
        rpc.notify(
          "initialized",
          binaryFrames && (result.capabilities ?? []).includes(Protocol.binaryOutputCapability)
            ? { binaryOutput: true }
            : {}
        )
      )
    )
  }

  private dropped(rpc: Client): void {
    if (this.current !== rpc) return
    this.current = undefined
    this.onLost()
  }

  /**
   * Sends request `method`, its params encoded and its result decoded by the
   * method table. A lost link is `ConnectionLost` (and the next call connects
   * anew); an error answer is the reason `Protocol.errorFromWire` reads in it.
   */
  call<M extends Protocol.RequestMethod>(
    method: M,
    params: Protocol.ParamsOf<M>,
    context: CallContext = {}
  ): Effect.Effect<Protocol.ResultOf<M>, ExecutorError> {
    const spec: Protocol.RequestSpec = Protocol.requests[method]
    const timeoutMillis = this.options.requestTimeoutMillis + (context.waitMs ?? 0)
    return Effect.gen({ self: this }, function*() {
      const encoded = yield* Schema.encodeUnknownEffect(spec.params)(params).pipe(
        Effect.mapError((error) => new ExecutorError({ reason: new InvalidRequest({ description: error.message }) }))
      )
      const rpc = yield* this.client
      const answer = yield* rpc.request(method, encoded).pipe(
        Effect.timeoutOrElse({
          duration: timeoutMillis,
          orElse: () =>
            Effect.andThen(
              rpc.close,
              Effect.fail(new TransportClosed({ description: `no answer to ${method} within ${timeoutMillis} ms` }))
            )
        }),
        this.requests.withPermits(1),
        method === "process/start" ? this.starts.withPermits(1) : identity,
        // refused for a limit of the server (requests in flight, processes): nothing ran, so it is asked
        // again a little later, for as long as an answer may take
        Effect.retry({ while: isLimitRefusal, schedule: this.limitBackoff }),
        Effect.mapError((error) => {
          if (error._tag === "RpcError") {
            return new ExecutorError({ reason: Protocol.errorFromWire(error, context) })
          }
          this.dropped(rpc)
          return lost(error)
        })
      )
      return yield* Effect.mapError(Schema.decodeUnknownEffect(spec.result)(answer), unexpected(method))
    })
  }

  /** Like `call`, but reconnects once and repeats the request after a lost link: for calls safe to repeat. */
  callIdempotent<M extends Protocol.RequestMethod>(
    method: M,
    params: Protocol.ParamsOf<M>,
    context: CallContext = {}
  ): Effect.Effect<Protocol.ResultOf<M>, ExecutorError> {
    return this.call(method, params, context).pipe(
      Effect.catchIf((error) => error.reason._tag === "ConnectionLost", () => this.call(method, params, context))
    )
  }

  /** Sends a notification on the live link, without waiting; nothing is sent while disconnected. */
  notify<M extends Protocol.ClientNotificationMethod>(method: M, params: Protocol.ParamsOf<M>): Effect.Effect<void> {
    const rpc = this.current
    if (rpc === undefined) return Effect.void
    const spec: Protocol.NotificationSpec = Protocol.clientNotifications[method]
    // in a fiber of its own: the caller (a read that acknowledges) goes on at once, and the encoding and the
    // write come after it
    return Effect.asVoid(Effect.forkIn(
      Effect.ignore(
        Effect.flatMap(Schema.encodeUnknownEffect(spec.params)(params), (encoded) => rpc.notify(method, encoded))
      ),
      this.options.scope
    ))
  }

  /** Closes the live link, if any. */
  readonly close: Effect.Effect<void> = Effect.suspend(() =>
    this.current === undefined ? Effect.void : this.current.close
  )
}
