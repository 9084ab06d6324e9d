/**
 * A read of a process whose output the server pushes (our extension, with
 * backpressure): answered from what arrived when the next chunks are there,
 * without a round trip; from the server otherwise. Either way the server
 * learns the reader's cursor, which moves its window. `lent`: the reader
 * copies what it keeps before it reads again (`ReadOptions.lent`).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { ExecutorError } from "../../Executor.ts"
import type * as Protocol from "../../Protocol.ts"
import type { Link } from "./link.ts"
import type { PushedOutput } from "./pushedOutput.ts"

export const streamedRead = (
  link: Link,
  cache: PushedOutput,
  request: Protocol.ReadParams,
  serverRead: (request: Protocol.ReadParams) => Effect.Effect<Protocol.ReadResult, ExecutorError>,
  lent: boolean
): Effect.Effect<Protocol.ReadResult, ExecutorError> =>
  Effect.gen(function*() {
    const afterSeq = request.afterSeq ?? 0
    const maxBytes = request.maxBytes ?? null
    cache.trim(afterSeq)
    const local = cache.read(afterSeq, maxBytes, lent)
    yield* acknowledge(link, cache, request.processId, afterSeq)
    if (local !== undefined) return yield* acknowledgeEnd(link, cache, request, local, serverRead)
    // Nothing yet: the next output is most likely on its way, so wait for the
    // push (within waitMs) rather than ask for a second copy of it. What a
    // reconnection lost, or an end the push cannot tell, comes from the server.
    const waitMs = request.waitMs ?? 0
    const rpc = link.live
    if (waitMs > 0 && rpc !== undefined) {
      // a lost link pushes nothing more (the records wake every cache then): ask the server, reconnecting, at once
      yield* cache.untilNext(afterSeq, () => link.live !== rpc, waitMs)
      // whatever ended the wait, output that follows the cursor without a gap is the answer: the same bytes the
      // server would send, whichever connection pushed them
      const answer = cache.read(afterSeq, maxBytes, lent)
      if (answer !== undefined) return yield* acknowledgeEnd(link, cache, request, answer, serverRead)
    }
    return yield* serverRead(request)
  })

/**
 * Tells the server how far the reader got, without waiting: once per quarter
 * of its window (it lets a paused process go on), never backwards.
 */
const acknowledge = (link: Link, cache: PushedOutput, processId: string, afterSeq: number, force = false) => {
  if (afterSeq <= cache.acknowledged || !(force || cache.acknowledgementDue)) return Effect.void
  cache.acknowledged = afterSeq
  cache.takenSinceAcknowledged = 0
  return link.notify("process/acknowledge", { processId, afterSeq })
}

/**
 * An answer from pushed output that reaches the close: the server is told the
 * reader saw the end (as a read of its own answering `closed` would), so that
 * it forgets this process before the ones still being read; while the link is
 * down, by the server's read itself.
 */
const acknowledgeEnd = (
  link: Link,
  cache: PushedOutput,
  request: Protocol.ReadParams,
  answer: Protocol.ReadResult,
  serverRead: (request: Protocol.ReadParams) => Effect.Effect<Protocol.ReadResult, ExecutorError>
) => {
  if (!answer.closed) return Effect.succeed(answer)
  // with the link down a notification goes nowhere: the server's own read (which reconnects) learns the end instead
  if (link.live === undefined) return serverRead(request)
  return Effect.as(acknowledge(link, cache, request.processId, answer.nextSeq - 1, true), answer)
}
