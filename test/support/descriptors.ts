/**
 * What this (test worker) process holds open, read from `/proc/self/fd`, for
 * tests that check a piece of code closes every descriptor it opened.
 *
 * A descriptor is named with what the kernel says it leads to (`7 → pipe:[1234]`),
 * so one closed and its number reused for something else counts as new. A
 * descriptor that was open before and closed since (a socket of an earlier
 * test, the worker's own) is not the code's, and does not count either way.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readdirSync, readlinkSync } from "node:fs"

/** This process's open descriptors, each as `fd → object`. */
export const openDescriptors = (): ReadonlyArray<string> =>
  readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      return [`${fd} → ${readlinkSync(`/proc/self/fd/${fd}`)}`]
    } catch {
      return [] // the listing's own descriptor, closed by now
    }
  })

/** The descriptors open now that were not open in `before`. */
export const openedSince = (before: ReadonlyArray<string>): ReadonlyArray<string> => {
  const earlier = new Set(before)
  return openDescriptors().filter((descriptor) => !earlier.has(descriptor))
}

/**
 * Waits (real time, up to 5 s: a socket's close lands a turn late) until every
 * descriptor opened since `before` is closed, and fails naming those that are not.
 */
export const awaitClosedSince = (before: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5_000
    while (openedSince(before).length > 0 && Date.now() < deadline) {
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
    assert.deepStrictEqual(openedSince(before), [], "every descriptor opened since is closed")
  })
