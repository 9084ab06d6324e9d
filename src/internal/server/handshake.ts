/**
 * One connection's handshake: `initialize` creates a session or resumes one,
 * `initialized` opens the session's methods; anything else before them is
 * refused with Codex's messages.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { SandboxSupport } from "../../Executor.ts"
import { ErrorCode } from "../../JsonRpc.ts"
import * as Protocol from "../../Protocol.ts"
import { environmentInfo } from "./environmentInfo.ts"
import { type Reply, reply } from "./reply.ts"
import type { NotificationHandlers, RequestHandlers } from "./router.ts"
import type { Connection, Session, SessionRegistry } from "./sessions.ts"

/** What a session serves once the handshake is done. */
export interface SessionMethods {
  readonly requests: RequestHandlers
  readonly notifications: NotificationHandlers
}

/** What the connection's transport can carry beyond JSON text. */
export interface TransportFeatures {
  /** Binary frames (WebSocket): the server offers binary output frames. */
  readonly binaryOutput: boolean
}

/** Builds what `session` serves, knowing what the executor says of sandboxes. */
export type MethodsOf = (session: Session, sandbox: SandboxSupport) => SessionMethods

export class Handshake {
  private requested = false
  private initialized = false
  /** The session, once `initialize` succeeded. */
  session: Session | undefined
  /** Whether the client asked for output as binary frames (and the transport carries them). */
  binaryOutput = false
  private methods: SessionMethods | undefined
  /**
   * Done once the `initialize` under way is answered: a request pipelined
   * behind it (sent without waiting for its answer) waits for it, since the
   * answer asks the executor (its sandbox support) before the methods exist.
   */
  private settling: Deferred.Deferred<void> | undefined
  private readonly registry: SessionRegistry
  private readonly connection: Connection
  private readonly methodsOf: MethodsOf
  private readonly features: TransportFeatures

  constructor(registry: SessionRegistry, connection: Connection, methodsOf: MethodsOf, features: TransportFeatures) {
    this.registry = registry
    this.connection = connection
    this.methodsOf = methodsOf
    this.features = features
  }

  /** The extensions this connection offers: the sandbox where it is enforced, binary frames where they travel. */
  private capabilities(sandbox: boolean): ReadonlyArray<string> {
    return [
      ...Protocol.capabilities,
      ...(sandbox ? [Protocol.sandboxCapability] : []),
      ...(this.features.binaryOutput ? [Protocol.binaryOutputCapability] : [])
    ]
  }

  /** Answers `initialize`: a new session, or the one named by `resumeSessionId`. */
  initialize(request: Protocol.ParamsOf<"initialize">): Effect.Effect<Protocol.ResultOf<"initialize">, Reply> {
    return Effect.suspend(() => {
      if (this.requested) return reply(ErrorCode.invalidRequest, "initialize may only be sent once per connection")
      this.requested = true
      const settled = Deferred.makeUnsafe<void>()
      this.settling = settled
      return Effect.ensuring(this.open(request), Deferred.done(settled, Exit.void))
    })
  }

  /** A new session, or the one named by `resumeSessionId`, and its methods. */
  private open(request: Protocol.ParamsOf<"initialize">): Effect.Effect<Protocol.ResultOf<"initialize">, Reply> {
    return Effect.gen({ self: this }, function*() {
      const resumeId = request.resumeSessionId
      const session = yield* (resumeId === undefined || resumeId === null
        ? this.registry.create(this.connection)
        : this.registry.resume(resumeId, this.connection)).pipe(
          // a refused initialize may be tried again
          Effect.tapError(() => Effect.sync(() => (this.requested = false)))
        )
      this.session = session
      const cwd = yield* this.registry.executor.defaultCwd.pipe(Effect.orElseSucceed(() => "/"))
      const sandbox = yield* this.registry.executor.sandboxSupport.pipe(
        Effect.orElseSucceed((): SandboxSupport => ({ available: false, reason: "the executor could not say" }))
      )
      this.methods = this.methodsOf(session, sandbox)
      return {
        sessionId: session.id,
        environmentInfo: environmentInfo(cwd),
        // "sandbox" only where sandboxed starts are enforced: elsewhere they are refused
        capabilities: this.capabilities(sandbox.available)
      }
    })
  }

  /**
   * The `initialized` notification: it counts once `initialize` succeeded.
   * Its `binaryOutput: true` (our extension) asks for output as binary
   * frames, which only a transport that carries them grants; anything else in
   * its params is ignored, as Codex ignores them.
   */
  markInitialized(params: unknown): void {
    if (this.session === undefined) return
    this.initialized = true
    this.binaryOutput = this.features.binaryOutput && typeof params === "object" && params !== null &&
      (params as { readonly binaryOutput?: unknown }).binaryOutput === true
  }

  /**
   * The session's methods when `method` may be called now, or the answer Codex
   * gives when it is too early (naming the method's family, as Codex does).
   */
  ready(method: Protocol.RequestMethod): Effect.Effect<SessionMethods, Reply> {
    const family = method.startsWith("fs/") ? "filesystem" : "exec"
    const settled = Effect.suspend(() => this.settling === undefined ? Effect.void : Deferred.await(this.settling))
    return Effect.andThen(settled, () => {
      if (this.methods === undefined) {
        return reply(ErrorCode.invalidRequest, `client must call initialize before using ${family} methods`)
      }
      if (!this.initialized) {
        return reply(ErrorCode.invalidRequest, `client must send initialized before using ${family} methods`)
      }
      return Effect.succeed(this.methods)
    })
  }

  /** The session's methods once `initialized` came, for notifications (which nothing answers). */
  get readyMethods(): SessionMethods | undefined {
    return this.initialized ? this.methods : undefined
  }
}
