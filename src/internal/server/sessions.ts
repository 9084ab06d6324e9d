/**
 * The server's sessions: created by `initialize`, attached to one connection
 * at a time, detached when it closes and kept for a resume until their TTL
 * ends, then ended with their processes. When every slot is taken, the
 * oldest detached session gives way to a new client (ended as at its TTL), so
 * sessions nobody uses cannot lock live clients out; one address may hold
 * only so many attached sessions. Also the process counters every
 * `process/start` must pass (per session and per server).
 *
 * @internal
 */
import type * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Semaphore from "effect/Semaphore"
import type { Executor } from "../../Executor.ts"
import { type Envelope, ErrorCode } from "../../JsonRpc.ts"
import { ChangeSignal } from "../changeSignal.ts"
import type { OutputChunk, PushedProcess } from "./outputPush.ts"
import { limitReached, type Reply, reply } from "./reply.ts"

/** Where a session's answers and notifications go. */
export interface Connection {
  /** Sends an answer; completes once the OS took it. */
  readonly send: (message: Envelope) => Effect.Effect<void>
  /** Sends an answer already serialized to JSON (its text, or its UTF-8 bytes). */
  readonly sendJson: (json: string | Uint8Array) => Effect.Effect<void>
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
  /** The client's IP address, when the transport has one (per-address limits). */
  readonly address?: string | undefined
}

/** The limits a server enforces. */
export interface Limits {
  readonly processes: number
  readonly processesPerSession: number
  readonly concurrentRequests: number
  readonly queuedRequests: number
  /** Process starts of one session under way at once; more wait their turn. */
  readonly startsPerSession: number
  /**
   * Bytes of one connection's requests in flight (received, not yet
   * answered) past which its socket is no longer read until answers free room.
   */
  readonly pendingRequestBytes: number
  /** Sessions kept at once; detached ones give way to new clients. */
  readonly sessions: number
  /** Sessions attached at once to connections from one IP address. */
  readonly sessionsPerAddress: number
}

/** A process of a session: the executor's id for it. */
export interface SessionProcess {
  readonly internalId: string
  /** Set once its close was seen: its id is the executor's to give again (its notifier may still be finishing). */
  closed: boolean
}

/** One client's session: its processes (by the client's ids) and its connection, if any. */
export class Session {
  readonly id: string = crypto.randomUUID()
  /** The client's process ids, each with the executor's id for it. */
  readonly processes = new Map<string, SessionProcess>()
  attached: Connection | undefined
  expiry: Fiber.Fiber<void> | undefined
  /** Processes started and not yet closed. */
  live = 0
  /** Set once the session is gone (its TTL ended, or the server stops). */
  ended = false
  /** Tells notifiers that the session was attached or ended. */
  readonly changes = new ChangeSignal()
  /** Turns of its process starts: the spawns of one client cannot crowd out another's. */
  readonly starts: Semaphore.Semaphore
  /**
   * Starts received and not yet answered, by the client's process id, each
   * done once answered: a later request for that process waits for them, as
   * it would behind a server that serves one request at a time.
   */
  readonly startsUnderWay = new Map<string, Set<Deferred.Deferred<void>>>()

  constructor(concurrentStarts: number) {
    this.starts = Semaphore.makeUnsafe(concurrentStarts)
  }

  /** The executor's id for a client's process: process ids are scoped to a session. */
  internalIdOf(processId: string): string {
    return `${this.id}/${processId}`
  }
}

/** Every session of a server, and the executor they share. */
export class SessionRegistry {
  readonly sessions = new Map<string, Session>()
  /** Detached sessions, oldest detach first: the first to give way when slots run out. */
  private readonly detached = new Map<string, Session>()
  /** Attached sessions per client address. */
  private readonly attachedPerAddress = new Map<string, number>()
  /** Processes started and not yet closed, over all sessions. */
  live = 0
  readonly executor: Executor["Service"]
  /** Fibers that outlive a request: notifiers, expiries. Interrupted with the server. */
  readonly fibers: FiberSet.FiberSet<unknown, unknown>
  readonly sessionTtl: Duration.Duration
  readonly limits: Limits

  constructor(options: {
    readonly executor: Executor["Service"]
    readonly fibers: FiberSet.FiberSet<unknown, unknown>
    readonly sessionTtl: Duration.Duration
    readonly limits: Limits
  }) {
    this.executor = options.executor
    this.fibers = options.fibers
    this.sessionTtl = options.sessionTtl
    this.limits = options.limits
  }

  /**
   * A new session attached to `connection`. When the server keeps as many as
   * it may, the oldest detached one is ended to make room; when every one is
   * attached, or the client's address holds its share, the client is refused.
   */
  create(connection: Connection): Effect.Effect<Session, Reply> {
    return Effect.gen({ self: this }, function*() {
      yield* this.checkAddress(connection)
      if (this.sessions.size >= this.limits.sessions) {
        const oldest = this.detached.values().next()
        if (oldest.done === true) {
          return yield* limitReached(
            "sessions",
            `too many sessions: this server keeps ${this.sessions.size} attached (the limit); try again later`
          )
        }
        yield* Effect.logWarning(
          `ending detached session ${oldest.value.id} before its TTL: all ${this.limits.sessions} session slots ` +
            `are taken and a new client needs one`
        )
        yield* this.evict(oldest.value)
      }
      const session = new Session(this.limits.startsPerSession)
      this.sessions.set(session.id, session)
      this.attach(session, connection)
      return session
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
      yield* this.checkAddress(connection)
      if (session.expiry !== undefined) yield* Fiber.interrupt(session.expiry)
      session.expiry = undefined
      this.attach(session, connection)
      return session
    })
  }

  /** Refuses a client whose address already has its share of attached sessions. */
  private checkAddress(connection: Connection): Effect.Effect<void, Reply> {
    const address = connection.address
    if (address === undefined) return Effect.void
    const attached = this.attachedPerAddress.get(address) ?? 0
    return attached < this.limits.sessionsPerAddress ? Effect.void : limitReached(
      "sessionsPerAddress",
      `too many sessions from ${address}: ${attached} attached (the limit per address); close some first`
    )
  }

  private attach(session: Session, connection: Connection): void {
    this.detached.delete(session.id)
    session.attached = connection
    const address = connection.address
    if (address !== undefined) this.attachedPerAddress.set(address, (this.attachedPerAddress.get(address) ?? 0) + 1)
    session.changes.notify()
  }

  /** Forgets which connection `session` had (its address's share is free again). */
  private release(session: Session): void {
    const address = session.attached?.address
    session.attached = undefined
    if (address === undefined) return
    const attached = (this.attachedPerAddress.get(address) ?? 1) - 1
    if (attached === 0) this.attachedPerAddress.delete(address)
    else this.attachedPerAddress.set(address, attached)
  }

  /** Ends a detached session before its TTL, as its expiry would. */
  private evict(session: Session): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const expiry = session.expiry
      session.expiry = undefined
      if (expiry !== undefined) yield* Fiber.interrupt(expiry)
      yield* this.end(session)
    })
  }

  /**
   * Detaches `session` from `connection` (if still attached to it): its
   * processes keep running for `sessionTtl`, then the session ends.
   */
  detach(session: Session, connection: Connection): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      if (session.attached !== connection) return
      this.release(session)
      this.detached.set(session.id, session)
      // a resume interrupts this before it attaches the session: at its end, the session is still detached
      session.expiry = yield* FiberSet.run(
        this.fibers,
        Effect.andThen(Effect.sleep(this.sessionTtl), this.end(session))
      )
    })
  }

  /** Forgets `session` and terminates its processes. */
  end(session: Session): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      this.sessions.delete(session.id)
      this.detached.delete(session.id)
      this.release(session)
      session.ended = true
      session.changes.notify()
      for (const process of session.processes.values()) {
        yield* Effect.ignore(this.executor.terminate(process.internalId))
      }
    })
  }

  /** Ends every session (the server stops). */
  endAll(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      for (const session of [...this.sessions.values()]) yield* this.end(session)
    })
  }

  /**
   * Takes a process slot in `session` and in the server, or refuses when
   * either is full; the slot is taken before the spawn, so racing starts
   * cannot pass a limit together. Returns what gives the slot back.
   */
  reserveProcess(session: Session): Effect.Effect<Effect.Effect<void>, Reply> {
    return Effect.suspend(() => {
      if (session.live >= this.limits.processesPerSession) {
        return limitReached(
          "processesPerSession",
          `too many processes: this session already runs ${session.live} (the limit); wait for some to close`
        )
      }
      if (this.live >= this.limits.processes) {
        return limitReached(
          "processes",
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
