/**
 * The remote executor and file system over one link, as
 * `RemoteExecutor.makeEnvironment` builds them: notifications routed into the
 * process records, reads checked, the `Executor` contract as calls on the
 * link. Also hands back a measure of what the client holds, which tests use
 * to show that no server can make it grow without bound.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type ConnectionLost, Executor, ExecutorError, ProtocolViolation, Unsupported } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import { decodeOutputFrame, isOutputFrame } from "../rpc/outputFrame.ts"
import type { Transport } from "../rpc/transport.ts"
import { makeFileSystem } from "./fileSystem.ts"
import { Link } from "./link.ts"
import { ProcessRecords, type RecordsFootprint } from "./processRecords.ts"
import { remoteEvents } from "./remoteEvents.ts"
import { isExitCode, isSignalName, readAnswerViolation } from "./serverAnswers.ts"
import { withinSession } from "./sessionLost.ts"
import { streamedRead } from "./streamedRead.ts"

/** How the client talks to its server, every default resolved. */
export interface Settings {
  readonly clientName: string
  readonly connectTimeout: Duration.Duration
  readonly requestTimeoutMillis: number
  /** Whether to ask for pushed output as binary frames where the server offers them and the transport carries them. */
  readonly binaryOutput: boolean
  /** The largest file the file system reads or writes; the file system's default when absent. */
  readonly maxFileBytes?: number | undefined
  /** Process records kept at all; `Defaults.client.maxRecords` when absent (tests lower it). */
  readonly maxRecords?: number | undefined
}

/** A remote executor and file system, and what the client holds now. */
export interface MeasuredEnvironment {
  readonly executor: Executor["Service"]
  readonly fileSystem: FileSystem.FileSystem
  readonly footprint: () => RecordsFootprint
}

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
  // a frame not taken in goes back to the frame memory (JSON in a binary frame is read before any other frame)
  if (!isOutputFrame(frame)) {
    records.releaseFrame(frame)
    return false
  }
  const output = decodeOutputFrame(frame)
  if (typeof output === "string") records.releaseFrame(frame)
  else records.add(output.processId, { _tag: "Output", seq: output.seq, stream: output.stream, chunk: output.chunk })
  return true
}

/**
 * A read answered by the server, checked: output only forwards, no more than
 * asked for, real exit codes; `SessionLost` for a process of a session the
 * server no longer has.
 */
const checkedRead = (link: Link, records: ProcessRecords) => (request: Protocol.ReadParams) =>
  withinSession(link, records)(
    request.processId,
    link.callIdempotent("process/read", {
      processId: request.processId,
      afterSeq: request.afterSeq ?? null,
      maxBytes: request.maxBytes ?? null,
      waitMs: request.waitMs ?? null
    }, { processId: request.processId, waitMs: request.waitMs ?? 0 })
  ).pipe(
    Effect.flatMap((result) => {
      const violation = readAnswerViolation(request, result)
      if (violation !== undefined) {
        return Effect.fail(new ExecutorError({ reason: new ProtocolViolation({ description: violation }) }))
      }
      if (Protocol.isDrained(result)) records.drained(request.processId)
      return Effect.succeed(result)
    })
  )

/**
 * The `Executor` contract as calls on `link`, what notifications told kept in
 * `records`. A call about a process of a session the server no longer has
 * fails with `SessionLost` (see `sessionLost.ts`).
 */
const makeExecutor = (link: Link, records: ProcessRecords): Executor["Service"] => {
  const serverRead = checkedRead(link, records)
  const aboutProcess = withinSession(link, records)

  const start = Effect.fn("RemoteExecutor.start")(function*(request: Protocol.StartParams) {
    yield* link.client
    // With our server, a process read under backpressure streams: the server
    // pushes its output within the window, and reads mostly find it here. A
    // Codex server would ignore both fields.
    const streams = request.backpressure === true && (link.server.capabilities ?? []).includes("process/acknowledge")
    const options = { showsOutput: request.outputNotifications !== false, streams, connection: link.connections }
    const call = link.call("process/start", streams ? { ...request, outputNotifications: true } : request, {
      processId: request.processId,
      command: request.argv[0] ?? ""
    })
    /**
     * The session that answered is the process's (a start that had to connect
     * anew may have begun one: the session is known once answered), and the
     * window tells the streamed reads how often to acknowledge.
     */
    const keepAnswer = (started: Protocol.StartResult) =>
      Effect.sync(() => {
        const record = records.get(request.processId)
        if (record !== undefined) record.session = link.sessions
        const pushed = records.pushedFor(request.processId)
        if (pushed !== undefined && started.windowBytes !== undefined) pushed.windowBytes = started.windowBytes
      })
    // A process of ours still runs under this id: the server refuses a second start (ProcessIdInUse), and its
    // record, which its followers and reads hold, stays as it is. Should the server accept (it forgot the first,
    // whose close we never saw), the new process gets a record of its own. Until the answer says which, the id's
    // notifications are held: they may be either's.
    if (records.isOpen(request.processId)) {
      records.startingAgain(request.processId)
      return yield* call.pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => records.startAnswered(request.processId, Exit.isSuccess(exit) ? options : undefined))
        ),
        Effect.tap(keepAnswer)
      )
    }
    // recorded before the call: the server may notify the new process's output before it answers the start
    records.starting(request.processId, options)
    return yield* call.pipe(
      Effect.tap(keepAnswer),
      Effect.tapError(() => Effect.sync(() => records.forget(request.processId)))
    )
  })

  const readAs = (request: Protocol.ReadParams, lent: boolean) =>
    Effect.suspend(() => {
      const cache = records.pushedFor(request.processId)
      if (cache === undefined) return serverRead(request)
      return Effect.map(streamedRead(link, cache, request, serverRead, lent), (result) => {
        // answered from the push or by the server: a reader with everything leaves nothing to cache
        if (Protocol.isDrained(result)) records.drained(request.processId)
        return result
      })
    })

  const tracedRead = Effect.fn("RemoteExecutor.read")(function*(request: Protocol.ReadParams) {
    return yield* readAs(request, false)
  })

  return Executor.of({
    start,
    // lent: the frames' own memory, without a span (the consume loop reads once per chunk of a large output)
    read: (request, options) => options?.lent === true ? readAs(request, true) : tracedRead(request),
    write: Effect.fn("RemoteExecutor.write")(function*(request: Protocol.WriteParams) {
      const params = { ...request, writeId: request.writeId ?? crypto.randomUUID() }
      const result = yield* aboutProcess(
        request.processId,
        link.callIdempotent("process/write", params, { processId: request.processId }),
        (answer) => answer.status === "unknownProcess"
      )
      return result.status
    }),
    terminate: Effect.fn("RemoteExecutor.terminate")(function*(processId: string) {
      return yield* aboutProcess(
        processId,
        link.callIdempotent("process/terminate", { processId }, { processId }),
        (answer) => !answer.running
      )
    }),
    signal: Effect.fn("RemoteExecutor.signal")(function*(processId: string, signal: Protocol.SignalName) {
      yield* aboutProcess(processId, link.callIdempotent("process/signal", { processId, signal }, { processId }))
    }),
    resize: Effect.fn("RemoteExecutor.resize")(function*(processId: string, size: Protocol.TerminalSize) {
      yield* link.client
      // Codex 0.169 has no process/resize (it answers -32601): say so without asking
      if (!(link.server.capabilities ?? []).includes("process/resize")) {
        return yield* Effect.fail(
          new ExecutorError({ reason: new Unsupported({ feature: "terminal resize (process/resize)" }) })
        )
      }
      yield* aboutProcess(processId, link.callIdempotent("process/resize", { processId, size }, { processId }))
    }),
    closeStdin: Effect.fn("RemoteExecutor.closeStdin")(function*(processId: string) {
      yield* link.client
      // Codex 0.169 cannot end a pipe's input: say so without asking
      if (!(link.server.capabilities ?? []).includes("process/closeStdin")) {
        return yield* Effect.fail(
          new ExecutorError({ reason: new Unsupported({ feature: "ending a command's stdin (process/closeStdin)" }) })
        )
      }
      const result = yield* aboutProcess(
        processId,
        link.callIdempotent("process/closeStdin", { processId }, { processId }),
        (answer) => answer.status === "unknownProcess"
      )
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
    events: remoteEvents(link, records, serverRead)
  })
}

/**
 * Builds a remote executor and file system sharing one link over transports
 * opened by `connect`, in the current scope (closing it closes the link).
 */
export const make = Effect.fnUntraced(function*(
  connect: Effect.Effect<Transport, ConnectionLost>,
  settings: Settings
) {
  const records = new ProcessRecords({ maxRecords: settings.maxRecords })
  const link = new Link(connect, {
    onNotification: recordNotification(records),
    onBinaryFrame: recordOutputFrame(records),
    binaryMemory: records.frameMemory,
    onLost: () => records.linkLost()
  }, {
    clientName: settings.clientName,
    binaryOutput: settings.binaryOutput,
    connectTimeout: settings.connectTimeout,
    requestTimeoutMillis: settings.requestTimeoutMillis,
    scope: yield* Effect.scope
  })
  yield* Effect.addFinalizer(() => link.close)
  return {
    executor: makeExecutor(link, records),
    fileSystem: makeFileSystem(
      link,
      settings.maxFileBytes === undefined ? {} : { maxFileBytes: settings.maxFileBytes }
    ),
    footprint: () => records.footprint()
  } satisfies MeasuredEnvironment
})
