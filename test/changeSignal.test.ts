/**
 * Waiting on state that Node callbacks change: a wait ends at the change that
 * makes its condition hold, and a long poll (`untilWithin`) also at its time
 * limit, on the system clock (one timer, no fibers) and on a `TestClock`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { ChangeSignal } from "../src/internal/changeSignal.ts"

/** A value Node callbacks set, and the signal that tells waiters it changed. */
const state = () => {
  const signal = new ChangeSignal()
  let value = 0
  return {
    signal,
    get value() {
      return value
    },
    set: (next: number) => {
      value = next
      signal.notify()
    }
  }
}

describe("ChangeSignal", () => {
  it.live("untilWithin on the system clock: true at the change that makes it hold, not at one that does not", () =>
    Effect.gen(function*() {
      const s = state()
      const fiber = yield* Effect.forkChild(s.signal.untilWithin(() => s.value >= 2, 60_000), {
        startImmediately: true
      })
      s.set(1)
      assert.isUndefined(fiber.pollUnsafe(), "1 is not enough")
      s.set(2)
      assert.isTrue(yield* Fiber.join(fiber))
      assert.isTrue(yield* s.signal.untilWithin(() => s.value >= 2, 60_000), "already true: at once")
    }))

  it.live("untilWithin on the system clock: false once the time is up, and nothing left waiting", () =>
    Effect.gen(function*() {
      const s = state()
      assert.isFalse(yield* s.signal.untilWithin(() => s.value >= 2, 20))
      s.set(5) // no waiter is left to call
      // interrupted while it waits: its waiter and timer go
      const fiber = yield* Effect.forkChild(s.signal.untilWithin(() => s.value >= 9, 60_000), {
        startImmediately: true
      })
      yield* Fiber.interrupt(fiber)
      assert.strictEqual((s.signal as unknown as { waiters: Set<unknown> }).waiters.size, 0)
    }))

  it.effect("untilWithin on a TestClock: the limit passes with virtual time, a change before it wins", () =>
    Effect.gen(function*() {
      const s = state()
      const late = yield* Effect.forkChild(s.signal.untilWithin(() => s.value >= 2, 1_000))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(late.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.isFalse(yield* Fiber.join(late))
      const early = yield* Effect.forkChild(s.signal.untilWithin(() => s.value >= 2, 1_000))
      yield* TestClock.adjust("500 millis")
      s.set(2)
      assert.isTrue(yield* Fiber.join(early))
    }))
})
