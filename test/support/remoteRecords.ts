/**
 * What the tests of the remote client's records (`RemoteRecords.test.ts`,
 * `RemoteFollowers.test.ts`) look for: a `process/closed` frame the proxy saw,
 * a run's value, a failure's reason.
 */
import { assert } from "@effect/vitest"
import * as Exit from "effect/Exit"
import type { ExecutorError, ProcessEvent } from "../../src/Executor.ts"
import type { ProxiedFrame } from "./webSocketProxy.ts"

/** Whether `frame` is the server's `process/closed` of `processId` on the proxy's link number `link`. */
export const closedFrame = (processId: string, link: number) => (frame: ProxiedFrame): boolean =>
  frame.link === link && frame.from === "server" && frame.message?.method === "process/closed" &&
  frame.message.params?.processId === processId

/** The value of a run that must have succeeded. */
export const valueOf = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  return assert.fail(`failed: ${String(exit)}`)
}

/** The reason of an `ExecutorError` a run failed with, if it failed with one. */
export const reasonOf = (exit: Exit.Exit<unknown, ExecutorError>) =>
  Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error.reason : undefined

/** Events as `seq tag` lines (`seq Output text`, `seq Exited code`), to compare whole. */
export const shown = (events: ReadonlyArray<ProcessEvent>): Array<string> =>
  events.map((e) =>
    e._tag === "Output"
      ? `${e.seq} Output ${new TextDecoder().decode(e.chunk)}`
      : e._tag === "Exited"
      ? `${e.seq} Exited ${e.exitCode}`
      : `${e.seq} ${e._tag}`
  )
