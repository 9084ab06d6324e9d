/**
 * Where live output goes while a command runs: each chunk read becomes an
 * `OutputDelta`. `Exec.run` awaits `emit`, so a sink decides whether a slow
 * consumer slows the command: the queue and PubSub sinks never wait (a lagging
 * consumer loses deltas, never the command's captured output); the console
 * sink waits for the terminal, as a shell pipe would. Without a sink
 * provided, deltas are dropped (the result still holds the output), so a
 * script needs no layer for it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import type * as Protocol from "./Protocol.ts"

/**
 * One live chunk of a command's output.
 *
 * @category models
 * @since 0.1.0
 */
export interface OutputDelta {
  /** Names the `Exec.run` call (its `callId`, by default the process id). */
  readonly callId: string
  readonly stream: Protocol.OutputStream
  readonly chunk: Uint8Array
}

/**
 * Types of the {@link OutputSink} reference.
 *
 * @since 0.1.0
 */
export declare namespace OutputSink {
  /**
   * What a sink does with each delta.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Service {
    readonly emit: (delta: OutputDelta) => Effect.Effect<void>
    /**
     * Whether `emit` is done with `delta.chunk` once its effect completes (it
     * keeps nothing, or copies what it keeps). `Exec.run` may then pass it
     * memory the executor reuses; otherwise (the default) every chunk a sink
     * gets is its own to keep.
     */
    readonly borrows?: boolean | undefined
  }
}

const discard: OutputSink.Service = { emit: () => Effect.void, borrows: true }

/**
 * Receives live output deltas. A reference with a default: unless a layer
 * provides another sink, deltas are dropped.
 *
 * @category services
 * @since 0.1.0
 */
export class OutputSink extends Context.Reference<OutputSink.Service>("effect-exec/OutputSink", {
  defaultValue: () => discard
}) {}

/**
 * Drops every delta (the default): for callers that only want the final
 * result.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerDiscard: Layer.Layer<never> = Layer.succeed(OutputSink, discard)

/**
 * Offers each delta to `queue` without waiting: a full bounded queue drops the
 * new delta, a sliding queue drops its oldest.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import { Environment, Exec, OutputSink } from "effect-exec"
 *
 * const program = Effect.gen(function*() {
 *   const deltas = yield* Queue.sliding<OutputSink.OutputDelta>(1024)
 *   return yield* Exec.run({ command: ["ls", "-l"] }).pipe(
 *     Effect.provide([Environment.layerLocal, OutputSink.layerQueue(deltas)])
 *   )
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerQueue = (queue: Queue.Enqueue<OutputDelta>): Layer.Layer<never> =>
  Layer.succeed(OutputSink, OutputSink.of({ emit: (delta) => Effect.sync(() => void Queue.offerUnsafe(queue, delta)) }))

/**
 * Publishes each delta to `pubsub` without waiting, for any number of subscribers.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerPubSub = (pubsub: PubSub.PubSub<OutputDelta>): Layer.Layer<never> =>
  Layer.succeed(
    OutputSink,
    OutputSink.of({ emit: (delta) => Effect.sync(() => void PubSub.publishUnsafe(pubsub, delta)) })
  )

const writeTo = (target: NodeJS.WritableStream, chunk: Uint8Array): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (target.write(chunk)) return resume(Effect.void)
    const onDrain = () => resume(Effect.void)
    target.once("drain", onDrain)
    return Effect.sync(() => void target.removeListener("drain", onDrain))
  })

/**
 * Writes each delta's bytes to a writable stream as they come — stdout and
 * stderr deltas to `stdout` and `stderr`, a terminal's to `stdout` — waiting
 * when a stream is full, so nothing is lost or buffered without bound.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Environment, Exec, OutputSink } from "effect-exec"
 * import { createWriteStream } from "node:fs"
 *
 * const log = createWriteStream("/tmp/build.log")
 * const program = Exec.run({ command: ["make"] }).pipe(
 *   Effect.provide([Environment.layerLocal, OutputSink.layerWritable({ stdout: log, stderr: log })])
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerWritable = (targets: {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
}): Layer.Layer<never> =>
  Layer.succeed(OutputSink, {
    emit: (delta) => writeTo(delta.stream === "stderr" ? targets.stderr : targets.stdout, delta.chunk)
  })

/**
 * Writes each delta's bytes to this process's stdout or stderr as they come,
 * in the order they were read, waiting when the terminal or pipe is full (so
 * nothing is lost or buffered without bound).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConsole: Layer.Layer<never> = Layer.suspend(() =>
  layerWritable({ stdout: process.stdout, stderr: process.stderr })
)
