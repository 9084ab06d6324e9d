/**
 * The events a remote follower takes from a read answer of a closed process
 * (`closedEvents`): the seqs are the server's, so that they follow what the
 * follower took and agree with what the lost notifications said.
 */
import { assert, describe, it } from "@effect/vitest"
import { closedEvents } from "../src/internal/remote/remoteEvents.ts"
import type * as Protocol from "../src/Protocol.ts"
import { shown } from "./support/remoteRecords.ts"

const chunk = (seq: number, text: string): Protocol.ProcessChunk => ({
  seq,
  stream: "stdout",
  chunk: new TextEncoder().encode(text)
})

const answer = (chunks: ReadonlyArray<Protocol.ProcessChunk>, nextSeq: number): Protocol.ReadResult => ({
  chunks,
  nextSeq,
  exited: true,
  exitCode: 3,
  closed: true,
  failure: null,
  signal: null
})

describe("closedEvents", () => {
  it("numbers the exit and the close after the output, the close one before nextSeq", () => {
    assert.deepStrictEqual(shown(closedEvents(answer([chunk(2, "b"), chunk(3, "c")], 6), 1, false)), [
      "2 Output b",
      "3 Output c",
      "4 Exited 3",
      "5 Closed"
    ])
  })

  it("puts the exit before output that came after it (a child holding the pipes)", () => {
    assert.deepStrictEqual(shown(closedEvents(answer([chunk(1, "a"), chunk(3, "late")], 5), 0, false)), [
      "1 Output a",
      "2 Exited 3",
      "3 Output late",
      "4 Closed"
    ])
  })

  it("takes the exit for the newest free seq: older free seqs are output the server no longer retains", () => {
    assert.deepStrictEqual(shown(closedEvents(answer([chunk(4, "d")], 7), 0, false)), [
      "4 Output d",
      "5 Exited 3",
      "6 Closed"
    ])
  })

  it("gives no second exit when the record holds one, and only the close when nothing else is left", () => {
    assert.deepStrictEqual(shown(closedEvents(answer([], 5), 3, true)), ["4 Closed"])
    assert.deepStrictEqual(shown(closedEvents(answer([chunk(4, "d")], 6), 3, true)), ["4 Output d", "5 Closed"])
  })

  it("gives no exit when no seq is free for it (the cursor is past it)", () => {
    assert.deepStrictEqual(shown(closedEvents(answer([], 5), 3, false)), ["4 Closed"])
  })

  it("closes after the last chunk when nextSeq names that chunk's successor (a server counting from its chunks)", () => {
    assert.deepStrictEqual(shown(closedEvents(answer([chunk(1, "a"), chunk(3, "b")], 4), 0, false)), [
      "1 Output a",
      "2 Exited 3",
      "3 Output b",
      "4 Closed"
    ])
  })
})
