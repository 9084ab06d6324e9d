/**
 * An environment's executor that tells the environment's health what its
 * calls show: a lost connection marks it unhealthy; a start that got an
 * answer marks it healthy.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { Executor, ExecutorError } from "../../Executor.ts"
import type { HealthBook } from "./health.ts"

const isLost = (error: ExecutorError) => error.reason._tag === "ConnectionLost"

/** `executor`, reporting to `health` as environment `id`. */
export const observed = (executor: Executor["Service"], id: string, health: HealthBook): Executor["Service"] => {
  const lost = (error: ExecutorError) => isLost(error) ? health.unhealthy(id, error.message) : Effect.void
  const watch = <A, R>(effect: Effect.Effect<A, ExecutorError, R>) => Effect.tapError(effect, lost)
  return {
    start: (request) =>
      watch(executor.start(request)).pipe(
        Effect.tap(() => health.of(id)._tag === "Healthy" ? Effect.void : health.healthy(id))
      ),
    read: (request, options) => watch(executor.read(request, options)),
    // the optional method, where the executor has it: a server acknowledges
    ...(executor.acknowledge === undefined ? {} : {
      acknowledge: (processId, afterSeq) => watch(executor.acknowledge!(processId, afterSeq))
    }),
    write: (request) => watch(executor.write(request)),
    closeStdin: (processId) => watch(executor.closeStdin(processId)),
    terminate: (processId) => watch(executor.terminate(processId)),
    signal: (processId, signal) => watch(executor.signal(processId, signal)),
    resize: (processId, size) => watch(executor.resize(processId, size)),
    events: (processId, options) => Stream.tapError(executor.events(processId, options), lost),
    defaultCwd: watch(executor.defaultCwd),
    sandboxSupport: watch(executor.sandboxSupport)
  }
}
