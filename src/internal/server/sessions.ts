/**
 * The server's sessions: created by `initialize`, attached to one connection
 * at a time, detached when it closes and kept for a resume until their TTL
 * ends, then ended with their processes. Also the process counters every
 * `process/start` must pass (per session and per server).
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import type { Executor } from "../../Executor.ts"
import { type Envelope, ErrorCode } from "../../JsonRpc.ts"
import { ChangeSignal } from "../changeSignal.ts"
import type { OutputChunk, PushedProcess } from "./outputPush.ts"
import { type Reply, reply } from "./reply.ts"

/** Where a session's answers and notifications go. */
export interface Connection {
  /** Sends an answer; completes once the OS took it. */
  readonly send: (message: Envelope) => Effect.Effect<void>
  /** Sends an answer already serialized to JSON. */
  readonly sendJson: (json: string) => Effect.Effect<void>
  /**
   * Queues a notification already serialized to JSON without waiting for the
   * client to take it; a client that leaves too much unread is dropped.
   */
  readonly postJson: (json: string) => Effect.Effect<void>
  /**
   * Queues one `process/output`, as `postJson` does: a binary frame when the
   * client asked for them, JSON otherwise.
   */
  readonly postOutput: (process: PushedProcess, output: OutputChunk) => Effect.Effect<void>
  /**
   * Queues one `process/output` at once when it can (a binary frame to a
   * client that asked for them, once `initialize` is answered): false when it
   * must go through `postOutput`.
   */
  readonly postOutputNow: (process: PushedProcess, output: OutputChunk) => boolean
  /** Ends the connection (the session detaches, to be resumed). */
  readonly close: (reason: string) => Effect.Effect<void>
}

/** The limits a server enforces. */
export interface Limits {
  readonly processes: number
  readonly processesPerSession: number
  readonly concurrentRequests: number
  readonly queuedRequests: number
  /** Bytes of one connection's requests in flight (received, not yet answered). */
  readonly pendingRequestBytes: number
  readonly sessions: number
}

/** One client's session: its processes (by the client's ids) and its connection, if any. */
export class Session {
  readonly id: string = crypto.randomUUID()
  /** The client's process ids, each with the executor's id for it. */
  readonly processes = new Map<string, { readonly internalId: string }>()
  attached: Connection | undefined
  expiry: Fiber.Fiber<void> | undefined
  /** Processes started and not yet closed. */
  live = 0
  /** Set once the session is gone (its TTL ended, or the server stops). */
  ended = false
  /** Tells notifiers that the session was attached or ended. */
  readonly changes = new ChangeSignal()

  /** The executor's id for a client's process: process ids are scoped to a session. */
  internalIdOf(processId: string): string {
    return `${this.id}/${processId}`
  }
}

/** Every session of a server, and the executor they share. */
export class SessionRegistry {
  readonly sessions = new Map<string, Session>()
  /** Processes started and not yet closed, over all sessions. */
  live = 0
  readonly executor: Executor["Service"]
  /** Fibers that outlive a request: notifiers, expiries. Interrupted with the server. */
  readonly fibers: FiberSet.FiberSet<unknown, unknown>
  readonly sessionTtl: Duration.Duration
  readonly closedRetention: Duration.Duration
  readonly limits: Limits

  constructor(options: {
    readonly executor: Executor["Service"]
    readonly fibers: FiberSet.FiberSet<unknown, unknown>
    readonly sessionTtl: Duration.Duration
    readonly closedRetention: Duration.Duration
    readonly limits: Limits
  }) {
    this.executor = options.executor
    this.fibers = options.fibers
    this.sessionTtl = options.sessionTtl
    this.closedRetention = options.closedRetention
    this.limits = options.limits
  }

  /** A new session attached to `connection`, unless the server keeps as many as it may. */
  create(connection: Connection): Effect.Effect<Session, Reply> {
    return Effect.suspend(() => {
      if (this.sessions.size >= this.limits.sessions) {
        return reply(
          ErrorCode.limitExceeded,
          `too many sessions: this server keeps ${this.sessions.size} (the limit); try again later`
        )
      }
      const session = new Session()
      this.sessions.set(session.id, session)
      return Effect.as(this.attach(session, connection), session)
    })
  }

  /** Re-attaches a detached session to `connection`. */
  resume(sessionId: string, connection: Connection): Effect.Effect<Session, Reply> {
    return Effect.gen({ self: this }, function*() {
      const session = this.sessions.get(sessionId)
      if (session === undefined) return yield* reply(ErrorCode.invalidRequest, `unknown session id ${sessionId}`)
      if (session.attached !== undefined) {
        return yield* reply(
          ErrorCode.sessionAlreadyAttached,
          `session ${sessionId} is already attached to another connection`
        )
      }
      if (session.expiry !== undefined) yield* Fiber.interrupt(session.expiry)
      session.expiry = undefined
      yield* this.attach(session, connection)
      return session
    })
  }

  private attach(session: Session, connection: Connection): Effect.Effect<void> {
    return Effect.sync(() => {
      session.attached = connection
      session.changes.notify()
    })
  }

  /**
   * Detaches `session` from `connection` (if still attached to it): its
   * processes keep running for `sessionTtl`, then the session ends.
   */
  detach(session: Session, connection: Connection): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      if (session.attached !== connection) return
      session.attached = undefined
      session.expiry = yield* FiberSet.run(
        this.fibers,
        Effect.sleep(this.sessionTtl).pipe(
          Effect.andThen(Effect.suspend(() => session.attached === undefined ? this.end(session) : Effect.void))
        )
      )
    })
  }

  /** Forgets `session` and terminates its processes. */
  end(session: Session): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.sessions.delete(session.id)
      session.ended = true
      session.changes.notify()
      return Effect.forEach(
        session.processes.values(),
        (process) => Effect.ignore(this.executor.terminate(process.internalId)),
        { discard: true }
      )
    })
  }

  /** Ends every session (the server stops). */
  endAll(): Effect.Effect<void> {
    return Effect.forEach([...this.sessions.values()], (session) => this.end(session), { discard: true })
  }

  /**
   * Takes a process slot in `session` and in the server, or refuses when
   * either is full; the slot is taken before the spawn, so racing starts
   * cannot pass a limit together. Returns what gives the slot back.
   */
  reserveProcess(session: Session): Effect.Effect<Effect.Effect<void>, Reply> {
    return Effect.suspend(() => {
      if (session.live >= this.limits.processesPerSession) {
        return reply(
          ErrorCode.limitExceeded,
          `too many processes: this session already runs ${session.live} (the limit); wait for some to close`
        )
      }
      if (this.live >= this.limits.processes) {
        return reply(
          ErrorCode.limitExceeded,
          `too many processes: this server already runs ${this.live} (the limit); wait for some to close`
        )
      }
      session.live++
      this.live++
      let released = false
      return Effect.succeed(Effect.sync(() => {
        if (released) return
        released = true
        session.live--
        this.live--
      }))
    })
  }
}
