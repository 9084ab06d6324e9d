/**
 * Property: whatever a client sends — messages generated from the Protocol
 * schemas, then mutated — the exec-server answers every request with exactly
 * one result or JSON-RPC error, and a well-behaved second client is served
 * throughout. A scripted executor stands behind the server, so generated
 * argv never reach a real process, and generated `fs/*` paths are moved into a
 * scratch directory, so no generated call touches a file outside it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Executor } from "../src/Executor.ts"
import * as Protocol from "../src/Protocol.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { entry, restricted } from "./support/sandbox.ts"
import * as Script from "./support/ScriptedExecutor.ts"
import { listenLocal } from "./support/servers.ts"
import { connect, fromBase64, handshake } from "./support/wireClient.ts"

/** Where generated `fs/*` calls may touch files: nothing outside it. */
const scratch = mkdtempSync(join(tmpdir(), "property-fs-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** A generated string made an absolute path inside the scratch directory. */
const absolute = (generated: unknown): unknown =>
  typeof generated === "string"
    ? join(scratch, Buffer.from(generated).toString("hex").slice(0, 64))
    : Array.isArray(generated)
    ? generated.map(absolute)
    : generated

/** The path fields of a sandbox policy (file URIs on the wire), wherever they are nested. */
const sandboxPathKeys = new Set(["cwd", "workspaceRoots", "userHomeDir", "temporaryDirectories"])

/** A generated sandbox policy whose paths are absolute (a relative one has no URI to encode to). */
const absolutePaths = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(absolutePaths)
  if (typeof value !== "object" || value === null) return value
  const record: Record<string, unknown> = { ...value }
  for (const [key, inner] of Object.entries(record)) {
    const isPath = sandboxPathKeys.has(key) || (key === "path" && record.type === "path")
    record[key] = isPath ? absolute(inner) : absolutePaths(inner)
  }
  return record
}

/**
 * Generated params with every path of an `fs/*` call moved into the scratch directory, and a start's cwd and
 * sandbox paths made absolute (a relative cwd is refused before it is sent).
 */
const confined = <P>(method: string, params: P): P => {
  if (method === "process/start" && typeof params === "object" && params !== null) {
    const start = params as P & { readonly cwd?: unknown; readonly sandbox?: unknown }
    return {
      ...start,
      cwd: absolute(start.cwd),
      ...("sandbox" in start ? { sandbox: absolutePaths(start.sandbox) } : {})
    }
  }
  if (!method.startsWith("fs/") || typeof params !== "object" || params === null) return params
  const record = { ...params } as Record<string, unknown>
  if ("sandbox" in record) record.sandbox = absolutePaths(record.sandbox)
  for (const key of ["path", "sourcePath", "destinationPath"]) {
    const generated = record[key]
    if (typeof generated === "string") record[key] = join(scratch, Buffer.from(generated).toString("hex").slice(0, 64))
  }
  return record as P
}

/** Valid messages of every method of the table, generated from its schemas and encoded for the wire. */
const validMessages = Arbitrary.all(
  Object.entries(Protocol.requests).map(([method, spec]) =>
    Arbitrary.map(
      Arbitrary.schema(spec.params),
      (params) => [method, Schema.encodeSync(spec.params)(confined(method, params))] as const
    )
  )
)

/** Random JSON values to put where they do not belong. */
const junk = Arbitrary.schema(Schema.Json)

type Message = readonly [method: string, params: unknown]

/** A mutation of a valid message, chosen by `choice`. */
const mutate = ([method, params]: Message, choice: number, value: unknown): Message => {
  const record = (typeof params === "object" && params !== null ? { ...params } : {}) as Record<string, unknown>
  const keys = Object.keys(record)
  const key = keys[choice % Math.max(1, keys.length)]
  switch (choice % 7) {
    case 0:
      return [method, params] // unchanged
    case 1:
      if (key !== undefined) delete record[key]
      return [method, record] // a field missing
    case 2:
      if (key !== undefined) record[key] = value
      return [method, record] // a field of the wrong type
    case 3:
      return [method, value] // params of the wrong shape
    case 4:
      return [method, { ...record, extra: value }] // an unknown field
    case 5:
      return [`${method}/nope`, params] // an unknown method
    default:
      return [method, [params]] // params wrapped in an array
  }
}

describe("ExecServer under generated input", () => {
  it.live("answers every request exactly once and keeps serving a well-behaved client", () =>
    Effect.gen(function*() {
      const scripted = Script.make(() => [Script.out("ok"), Script.exit(0), Script.close])
      // built in the test's scope: the scripted processes live as long as the test
      const executor = Context.get(yield* Layer.build(scripted.layer), Executor)
      const { url } = yield* Effect.provideService(WebSocketListener.listen({}), Executor, executor)
      const hostile = yield* connect(url)
      yield* handshake(hostile)
      const polite = yield* connect(url)
      yield* handshake(polite)

      const messages = yield* Arbitrary.sampleEffect(validMessages, { count: 60, seed: 20261124 })
      const junkValues = yield* Arbitrary.sampleEffect(junk, { count: 60, seed: 7 })
      let sent = 0
      let results = 0
      for (const [i, group] of messages.entries()) {
        for (const [j, message] of group.entries()) {
          const [method, params] = mutate(message, i * 7 + j, junkValues[(i + j) % junkValues.length])
          const id = `h-${sent++}`
          const reply = yield* hostile.request(method, params, { id })
          assert.strictEqual(reply.id, id)
          assert.isTrue(
            (reply.result !== undefined) !== (reply.error !== undefined),
            `one result or one error for ${method} ${JSON.stringify(params).slice(0, 200)}`
          )
          if (reply.error !== undefined) assert.isNumber(reply.error.code)
          else results++
        }
        if (i % 10 === 0) {
          // the other client is served all along
          const processId = `polite-${i}`
          yield* polite.call("process/start", { processId, argv: ["true"], cwd: "/tmp", env: {}, tty: false })
          const read = yield* polite.call("process/read", { processId, afterSeq: 0, maxBytes: null, waitMs: 2_000 })
          assert.strictEqual(read.chunks.map((c: { chunk: string }) => fromBase64(c.chunk)).join(""), "ok")
        }
      }
      assert.isAtLeast(sent, 300)
      // the generator reaches both sides: accepted messages and refused ones
      assert.isAbove(results, 20)
      assert.isAbove(sent - results, 20)
      assert.strictEqual(
        hostile.received.filter((r) => r.frame.id === undefined && r.frame.method === undefined).length,
        0
      )
    }), 60_000)
})

/**
 * Property: the work a request costs is at most linear in its size. Generated
 * pathological inputs — environment-policy globs such as `*a*a…*a*b` (which a
 * backtracking matcher answers in exponential time) against long names, and
 * file paths of thousands of slashes (quadratic for a `/\/+$/` trim) — are
 * each answered within a budget measured against trivial requests of the same
 * kind in the same run: no wall-clock constant.
 */
describe("ExecServer under pathological input", () => {
  /** Real time of `effect`, in milliseconds. */
  const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const started = performance.now()
      const result = yield* effect
      return { result, millis: performance.now() - started }
    })

  const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

  /** A glob of `atoms` (`*a`, `?`, …) ended by a letter no name has, so every name is a near miss. */
  const pathologicalGlob = Schema.Struct({
    atoms: Schema.Array(Schema.Literals(["*a", "*", "a", "?", "*?", "a*"])).check(
      Schema.isMinLength(8),
      Schema.isMaxLength(60)
    ),
    ending: Schema.Literals(["*b", "b", "?b", "*b*"]),
    nameLength: Schema.Int.check(Schema.isBetween({ minimum: 24, maximum: 400 }))
  })

  it.live(
    "answers environment policies with pathological globs within a budget set by trivial starts",
    () =>
      Effect.gen(function*() {
        const { url } = yield* listenLocal()
        const client = yield* connect(url, { timeoutMs: 60_000 })
        yield* handshake(client)
        let started = 0
        const start = (envPolicy: unknown) =>
          timed(client.request("process/start", {
            processId: `p${++started}`,
            argv: ["true"],
            cwd: "/tmp",
            env: {},
            tty: false,
            envPolicy
          }))
        const policy = { inherit: "none", ignoreDefaultExcludes: true, exclude: [], set: {}, includeOnly: [] }
        // warm up, then the trivial starts that set the budget
        for (let i = 0; i < 3; i++) yield* start({ ...policy, set: { A: "1" }, includeOnly: ["A"] })
        const trivial: Array<number> = []
        for (let i = 0; i < 9; i++) {
          trivial.push((yield* start({ ...policy, set: { A: "1" }, includeOnly: ["A"] })).millis)
        }
        const budget = 20 * median(trivial)
        const samples = yield* Arbitrary.sampleEffect(Arbitrary.schema(pathologicalGlob), { count: 30, seed: 1124 })
        const costs: Array<number> = []
        const startWith = ({ atoms, ending, nameLength }: typeof samples[number]) => {
          const pattern = atoms.join("") + ending
          // names of a's (and one of every length up to the longest): each a near miss for the pattern
          const set = Object.fromEntries(
            Array.from({ length: 64 }, (_, i) => ["a".repeat(nameLength - (i % 24)) + "_".repeat(i), "x"])
          )
          return Effect.map(start({ ...policy, set, exclude: [pattern], includeOnly: [pattern, "*"] }), (answer) => {
            assert.isUndefined(answer.result.error, `${pattern}: ${JSON.stringify(answer.result.error)}`)
            return answer
          })
        }
        for (const sample of samples) costs.push((yield* startWith(sample)).millis)
        // the slowest again, twice: the least of its three times is its work, what varies is the machine's load
        const slowest = samples[costs.indexOf(Math.max(...costs))]!
        const slowestCosts = [Math.max(...costs)]
        for (let i = 0; i < 2; i++) slowestCosts.push((yield* startWith(slowest)).millis)
        assert.isBelow(
          median(costs),
          budget,
          `median ${median(costs).toFixed(1)} ms; trivial starts took ${trivial.map((t) => t.toFixed(1)).join(", ")} ms`
        )
        assert.isBelow(
          Math.min(...slowestCosts),
          5 * budget,
          `slowest ${slowestCosts.map((t) => t.toFixed(1)).join(", ")} ms`
        )
      }),
    120_000
  )

  it.live(
    "answers sandbox policies of deep paths within a budget set by policies of as many bytes",
    () =>
      Effect.gen(function*() {
        const { url } = yield* listenLocal()
        const client = yield* connect(url, { timeoutMs: 60_000 })
        yield* handshake(client)
        let started = 0
        /** A start under a policy that hides `paths` (none of them exists) and reads the rest. */
        const start = (paths: ReadonlyArray<string>) =>
          timed(client.request("process/start", {
            processId: `s${++started}`,
            argv: ["true"],
            cwd: "/tmp",
            env: {},
            tty: false,
            sandbox: restricted([entry("root", "read"), ...paths.map((path) => entry(`file://${path}`, "deny"))])
          }))
        // 255 paths of 4 000 bytes each: 1 999 levels deep, or 16 levels of long names
        const deep = Array.from(
          { length: 255 },
          (_, i) => `/tmp/missing-${String(i).padStart(3, "0")}${"/a".repeat(1_992)}`
        )
        const shallow = Array.from(
          { length: 255 },
          (_, i) => `/tmp/missing-${String(i).padStart(3, "0")}${`/${"a".repeat(248)}`.repeat(16)}`.slice(0, 4_000)
        )
        assert.strictEqual(Buffer.byteLength(deep[0]!), Buffer.byteLength(shallow[0]!))
        for (let i = 0; i < 2; i++) yield* start(shallow)
        const plain: Array<number> = []
        for (let i = 0; i < 5; i++) plain.push((yield* start(shallow)).millis)
        const costs: Array<number> = []
        for (let i = 0; i < 3; i++) {
          const { millis, result } = yield* start(deep)
          assert.isTrue(result.result !== undefined || result.error !== undefined, "answered")
          costs.push(millis)
        }
        assert.isBelow(
          Math.min(...costs),
          20 * median(plain),
          `deep: ${costs.map((t) => t.toFixed(1))} ms; as many bytes, 16 levels: ${plain.map((t) => t.toFixed(1))} ms`
        )
      }),
    120_000
  )

  it.live("answers file paths of many slashes within a budget set by a plain path", () =>
    Effect.gen(function*() {
      const { url } = yield* listenLocal()
      const client = yield* connect(url, { timeoutMs: 60_000 })
      yield* handshake(client)
      const metadata = (path: string) => timed(client.request("fs/getMetadata", { path: `file://${path}` }))
      for (let i = 0; i < 3; i++) yield* metadata("/tmp")
      for (const size of [20_000, 40_000, 80_000]) {
        // the same number of bytes in an ordinary path, and in slashes ended by a name (a near miss for /\/+$/)
        const plain: Array<number> = []
        for (let i = 0; i < 5; i++) plain.push((yield* metadata(`/tmp/${"x".repeat(size)}`)).millis)
        const slashes: Array<number> = []
        // a name nothing has: the slashes fold away, so `/tmp///…x` would be `/tmp/x` (a folder someone may have made)
        const missing = `missing-${randomUUID()}`
        for (let i = 0; i < 3; i++) {
          const { millis, result } = yield* metadata(`/tmp${"/".repeat(size)}${missing}`)
          // answered with an error, like the plain one
          assert.isDefined(result.error, "an error answer")
          slashes.push(millis)
        }
        // the least of three: the work is the same each time, what varies is the machine's load
        assert.isBelow(
          Math.min(...slashes),
          25 * median(plain),
          `${size} slashes took ${slashes.map((t) => t.toFixed(1))} ms, ${size} letters ${
            plain.map((t) => t.toFixed(1))
          }`
        )
      }
    }), 120_000)
})
