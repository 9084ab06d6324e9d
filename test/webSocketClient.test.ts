/**
 * The WebSocket client at the level of bytes: `RemoteExecutor.connectWebSocket`
 * against a raw TCP server that writes hand-built frames and records what the
 * client sends (test/support/rawWebSocketServer.ts). The handshake, frames in
 * every length form and in any TCP split, fragments, control frames, protocol
 * violations, the close handshake, backpressure, and a cut mid-frame under
 * `Exec.run`. Every scenario also asserts a prompt end: `onClose` with a
 * one-line reason, or `ConnectionLost` (each wait gives up after 10 s of real
 * time, so a hang fails).
 *
 * Only the public API is used, so the file pins the behaviour of whatever
 * implements the client (the `ws` library, or our own framing).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import type { ConnectionLost } from "../src/Executor.ts"
import * as Defaults from "../src/internal/defaults.ts"
import type { Transport } from "../src/JsonRpc.ts"
import * as OutputSink from "../src/OutputSink.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import {
  acceptFor,
  type ClientFrame,
  closeCode,
  closePayload,
  frame,
  Opcode,
  type RawConnection,
  type RawServerOptions,
  rawWebSocketServer,
  switchingProtocols,
  type UpgradeRequest,
  wakers,
  within10s
} from "./support/rawWebSocketServer.ts"
import { waitUntil } from "./support/waitUntil.ts"

// oxlint-disable-next-line no-control-regex
const controlCharacter = /[\u0000-\u001f\u007f-\u009f]/

/** A reason a terminal shows on one line. */
const assertOneLine = (message: string) => {
  assert.isAbove(message.length, 0, "a reason is given")
  assert.notMatch(message, controlCharacter, `one line, no control characters: ${JSON.stringify(message)}`)
}

/** What the client delivered on a transport, and how it ended. */
interface Delivered {
  readonly texts: ReadonlyArray<string>
  readonly binaries: ReadonlyArray<Uint8Array>
  readonly closes: ReadonlyArray<string>
  readonly whenTexts: (count: number) => Effect.Effect<ReadonlyArray<string>>
  readonly whenBinaries: (count: number) => Effect.Effect<ReadonlyArray<Uint8Array>>
  /** Waits for `onClose`; returns its reason. */
  readonly whenClosed: Effect.Effect<string>
}

/**
 * Listens to `transport`, keeping what arrives. Binary frames are claimed
 * unless `claimBinary` is false, and kept as handed over (no copy): the
 * client's output records keep subarrays of them, so their bytes must stay
 * valid after the callback.
 */
const deliveredBy = (transport: Transport, claimBinary = true): Delivered => {
  const texts: Array<string> = []
  const binaries: Array<Uint8Array> = []
  const closes: Array<string> = []
  const changed = wakers()
  transport.listen({
    onFrame: (text) => {
      texts.push(text)
      changed.wake()
    },
    onBinaryFrame: (bytes) => {
      if (!claimBinary) return false
      binaries.push(bytes)
      changed.wake()
      return true
    },
    onClose: (reason) => {
      closes.push(reason)
      changed.wake()
    }
  })
  return {
    texts,
    binaries,
    closes,
    whenTexts: (count) =>
      waitUntil(`${count} text frames`, () => texts.length >= count ? texts : undefined, changed.listen),
    whenBinaries: (count) =>
      waitUntil(`${count} binary frames`, () => binaries.length >= count ? binaries : undefined, changed.listen),
    whenClosed: waitUntil("onClose", () => closes[0], changed.listen)
  }
}

/** An open link to `url`, closed with the scope; what it delivers is kept from the start. */
const open = (
  url: string,
  options: { readonly token?: string; readonly claimBinary?: boolean } = {}
): Effect.Effect<{ readonly transport: Transport; readonly delivered: Delivered }, ConnectionLost, Scope.Scope> =>
  Effect.acquireRelease(
    RemoteExecutor.connectWebSocket({
      url,
      token: options.token === undefined ? undefined : Redacted.make(options.token)
    }),
    (transport) => transport.close
  ).pipe(Effect.map((transport) => ({ transport, delivered: deliveredBy(transport, options.claimBinary) })))

/** A server with `options` and an open link to it: the link, what it delivers, and the server's side of it. */
const linked = (options: RawServerOptions = {}, claimBinary = true) =>
  Effect.gen(function*() {
    const server = yield* rawWebSocketServer(options)
    const { delivered, transport } = yield* open(server.url(), { claimBinary })
    const connection = yield* server.connection()
    return { server, transport, delivered, connection }
  })

/** The failure of connecting to `url`; the server side's connection, if any, must end. */
const refused = (url: string) =>
  Effect.gen(function*() {
    const error = yield* within10s(
      `connecting to ${url} to fail`,
      Effect.flip(RemoteExecutor.connectWebSocket({ url }))
    )
    assert.strictEqual(error._tag, "ConnectionLost")
    assertOneLine(error.description)
    return error.description
  })

/** `count` bytes of a pattern that shows misplaced or lost bytes. */
const patterned = (count: number, seed = 0): Buffer => {
  const bytes = Buffer.alloc(count)
  for (let i = 0; i < count; i++) bytes[i] = (i * 31 + seed + (i >> 8)) & 0xff
  return bytes
}

const text = (payload: string | Uint8Array, more: Partial<Parameters<typeof frame>[0]> = {}) =>
  frame({ opcode: Opcode.text, payload, ...more })

const binary = (payload: Uint8Array, more: Partial<Parameters<typeof frame>[0]> = {}) =>
  frame({ opcode: Opcode.binary, payload, ...more })

const continuation = (payload: string | Uint8Array, fin: boolean) =>
  frame({ opcode: Opcode.continuation, payload, fin })

/** The frames the client sent with `opcode`, each checked masked (a client must mask every frame). */
const sentBy = (connection: RawConnection, opcode: number): Array<ClientFrame> => {
  for (const sent of connection.frames) assert.isTrue(sent.masked, `client frame ${sent.opcode} masked`)
  return connection.frames.filter((sent) => sent.opcode === opcode)
}

/** Waits until the client closed the link after a violation: the close frame it sent (masked), onClose's reason. */
const closedByClient = (connection: RawConnection, delivered: Delivered) =>
  Effect.gen(function*() {
    const reason = yield* delivered.whenClosed
    assertOneLine(reason)
    const close = yield* connection.whenFrame(Opcode.close)
    assert.isTrue(close.masked, "the client's close frame is masked")
    yield* connection.whenClosed
    assert.strictEqual(delivered.closes.length, 1, "onClose is called once")
    return { reason, code: closeCode(close) }
  })

describe("the handshake", () => {
  it.effect("a correct 101 opens the link; the request names the path, query, host, version and a 16-byte key", () =>
    Effect.gen(function*() {
      const server = yield* rawWebSocketServer()
      const { transport } = yield* open(server.url("/some/path?x=1"))
      const connection = yield* server.connection()
      const request = connection.request()!
      assert.strictEqual(request.method, "GET")
      assert.strictEqual(request.target, "/some/path?x=1")
      assert.strictEqual(request.version, "HTTP/1.1")
      assert.strictEqual(request.headers.host, `127.0.0.1:${server.port}`)
      assert.strictEqual(request.headers.upgrade?.toLowerCase(), "websocket")
      assert.include(request.headers.connection?.toLowerCase(), "upgrade")
      assert.strictEqual(request.headers["sec-websocket-version"], "13")
      const key = request.headers["sec-websocket-key"] ?? ""
      assert.match(key, /^[A-Za-z0-9+/]{22}==$/)
      assert.strictEqual(Buffer.from(key, "base64").length, 16)
      assert.isUndefined(request.headers.authorization, "no token, no Authorization")

      // what the client sends is masked, text as text and binary as binary
      yield* transport.send("{\"jsonrpc\":\"2.0\"}")
      yield* transport.send(new TextEncoder().encode("{\"bytes\":true}"))
      const written = yield* Effect.callback<void>((resume) => {
        transport.postBinary!(patterned(300), () => resume(Effect.void))
      })
      assert.isUndefined(written)
      yield* connection.whenFrames(Opcode.text, 2)
      yield* connection.whenFrames(Opcode.binary, 1)
      const texts = sentBy(connection, Opcode.text)
      assert.deepStrictEqual(texts.map((sent) => sent.payload.toString()), [
        "{\"jsonrpc\":\"2.0\"}",
        "{\"bytes\":true}"
      ])
      assert.deepStrictEqual(sentBy(connection, Opcode.binary)[0]!.payload, patterned(300))
      for (const sent of connection.frames) {
        assert.isTrue(sent.fin)
        assert.strictEqual(sent.rsv, 0)
      }
    }))

  it.effect("a URL without a path asks for /; a token is sent as Authorization: Bearer", () =>
    Effect.gen(function*() {
      const server = yield* rawWebSocketServer()
      yield* open(server.url(), { token: "s3cret" })
      const request = (yield* server.connection()).request()!
      assert.strictEqual(request.target, "/")
      assert.strictEqual(request.headers.authorization, "Bearer s3cret")
    }))

  it.effect("credentials in the URL are sent as Authorization: Basic, the Host without them; a token wins", () =>
    Effect.gen(function*() {
      const server = yield* rawWebSocketServer()
      const url = server.url("/p").replace("ws://", "ws://al%20ice:s%3Acret@")
      yield* Effect.scoped(RemoteExecutor.connectWebSocket({ url }))
      const request = (yield* server.connection()).request()!
      assert.strictEqual(request.headers.authorization, `Basic ${Buffer.from("al ice:s:cret").toString("base64")}`)
      assert.notInclude(request.headers.host ?? "", "@")
      yield* Effect.scoped(RemoteExecutor.connectWebSocket({ url, token: Redacted.make("t") }))
      assert.strictEqual((yield* server.connection(1)).request()!.headers.authorization, "Bearer t")
    }))

  it.effect("a URL with a fragment, or a token with a newline, is refused before anything is sent", () =>
    Effect.gen(function*() {
      const server = yield* rawWebSocketServer()
      const fragment = yield* refused(server.url("/p#part"))
      assert.include(fragment, "fragment")
      const error = yield* Effect.flip(
        RemoteExecutor.connectWebSocket({ url: server.url("/p"), token: Redacted.make("t\r\nX-Injected: yes") })
      )
      assert.include(error.description, "Authorization")
      assert.strictEqual(server.connections(), 0, "no connection was made")
    }))

  it("acceptFor computes RFC 6455's example", () => {
    assert.strictEqual(acceptFor("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
  })
})

/** A server answering the upgrade request with `answer`, and a connection that must fail against it. */
const failedHandshake = (respond: (request: UpgradeRequest, connection: RawConnection) => void) =>
  Effect.gen(function*() {
    const server = yield* rawWebSocketServer({ respond })
    const url = server.url("/x")
    const description = yield* refused(url)
    assert.include(description, url, "the message names the URL")
    // the client let go of the socket: nothing stays open
    yield* (yield* server.connection()).whenClosed
    return description
  })

const httpResponse = (status: string) => `HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`

describe("a failed handshake is a ConnectionLost that says why", () => {
  it.effect("HTTP 401: wrong or missing token", () =>
    Effect.gen(function*() {
      const description = yield* failedHandshake((_, connection) =>
        connection.socket.end(httpResponse("401 Unauthorized"))
      )
      assert.include(description, "refused the connection: 401 Unauthorized (wrong or missing token)")
    }))

  it.effect("HTTP 404 and 500: the upgrade refused, with the status", () =>
    Effect.gen(function*() {
      for (const status of ["404 Not Found", "500 Internal Server Error"]) {
        const description = yield* failedHandshake((_, connection) => connection.socket.end(httpResponse(status)))
        assert.include(description, `refused the WebSocket upgrade: HTTP ${status.slice(0, 3)}`)
      }
    }))

  it.effect("a 101 with a wrong Sec-WebSocket-Accept", () =>
    Effect.gen(function*() {
      const description = yield* failedHandshake((request, connection) =>
        connection.socket.write(
          switchingProtocols({
            ...request,
            headers: { ...request.headers, "sec-websocket-key": "AAAAAAAAAAAAAAAAAAAAAA==" }
          })
        )
      )
      assert.match(description, /accept/i)
    }))

  it.effect("a 101 without Sec-WebSocket-Accept", () =>
    Effect.gen(function*() {
      const description = yield* failedHandshake((_, connection) =>
        connection.socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
      )
      assert.match(description, /accept/i)
    }))

  it.effect("a 101 without Upgrade: websocket, or with another protocol", () =>
    Effect.gen(function*() {
      for (const upgrade of ["", "Upgrade: h2c\r\n"]) {
        const description = yield* failedHandshake((request, connection) =>
          connection.socket.write(
            switchingProtocols(request).replace("Upgrade: websocket\r\n", upgrade)
          )
        )
        assert.match(description, /upgrade/i)
      }
    }))

  it.effect("the server closes the socket mid-handshake: before answering, and within the status line", () =>
    Effect.gen(function*() {
      yield* failedHandshake((_, connection) => connection.destroy())
      yield* failedHandshake((_, connection) => connection.socket.end("HTTP/1.1 10"))
      yield* failedHandshake((request, connection) => connection.socket.end(switchingProtocols(request).slice(0, 60)))
    }))

  it.effect("an endless header (no blank line) fails: the client hangs up, it does not buffer the header without bound", () =>
    Effect.gen(function*() {
      const endless = 64 * 1024 * 1024
      let streaming: Fiber.Fiber<number> | undefined
      const server = yield* rawWebSocketServer({
        respond: (_, connection) => {
          connection.socket.write("HTTP/1.1 101 Switching Protocols\r\nX-Filler: ")
          streaming = Effect.runFork(connection.stream(endless))
        }
      })
      const url = server.url()
      const description = yield* refused(url)
      assert.include(description, url)
      assert.match(description, /header/i)
      yield* (yield* server.connection()).whenClosed
      const streamed = yield* Fiber.join(streaming!)
      assert.isBelow(streamed, endless, "the client hung up before the server ran out of header")
    }))

  it.effect("connection refused (a closed port)", () =>
    Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.map(rawWebSocketServer(), (server) => server.port))
      const url = `ws://127.0.0.1:${port}`
      const description = yield* refused(url)
      assert.include(description, url)
      assert.include(description, "ECONNREFUSED")
    }))

  it.effect("an unusable URL", () =>
    Effect.gen(function*() {
      for (const url of ["ws://", ""]) {
        const description = yield* refused(url)
        assert.include(description, JSON.stringify(url))
        assert.match(description, /url/i)
      }
    }))
})

describe("data frames", () => {
  it.effect("frames in the same TCP write as the 101 are not lost", () =>
    Effect.gen(function*() {
      const server = yield* rawWebSocketServer({
        respond: (request, connection) =>
          connection.socket.write(
            Buffer.concat([
              Buffer.from(switchingProtocols(request)),
              text("{\"first\":1}"),
              binary(patterned(10)),
              text("{\"second\":2}")
            ])
          )
      })
      const { delivered } = yield* open(server.url())
      assert.deepStrictEqual(yield* delivered.whenTexts(2), ["{\"first\":1}", "{\"second\":2}"])
      assert.deepStrictEqual(Buffer.from((yield* delivered.whenBinaries(1))[0]!), patterned(10))
    }))

  it.effect("text frames reach onFrame as strings: 7-, 16- and 64-bit lengths, empty, multi-byte", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      const medium = JSON.stringify({ data: "m".repeat(300) })
      const large = JSON.stringify({ data: "L".repeat(70_000) })
      const accents = JSON.stringify({ text: "héllo wörld ✓ 𝄞" })
      yield* connection.write(Buffer.concat([
        text("{\"small\":true}"),
        text(medium),
        text(large),
        text(""),
        text(accents),
        // a length in a longer form than needed is still a length
        text("{\"long\":16}", { lengthForm: 16 }),
        text("{\"long\":64}", { lengthForm: 64 })
      ]))
      const texts = yield* delivered.whenTexts(7)
      assert.deepStrictEqual(texts, ["{\"small\":true}", medium, large, "", accents, "{\"long\":16}", "{\"long\":64}"])
      assert.deepStrictEqual(delivered.closes, [])
    }))

  it.effect("a text message in 3 fragments arrives whole, a character split between fragments included", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      const message = Buffer.from(JSON.stringify({ text: "fragmented é message" }))
      const split = message.indexOf(0xc3) + 1 // inside the two bytes of é
      yield* connection.write(Buffer.concat([
        text(message.subarray(0, 5), { fin: false }),
        continuation(message.subarray(5, split), false),
        continuation(message.subarray(split), true),
        text("{\"after\":1}")
      ]))
      assert.deepStrictEqual(yield* delivered.whenTexts(2), [message.toString(), "{\"after\":1}"])
    }))

  it.effect("a frame split across tiny TCP writes: its header one byte at a time, its payload in odd places", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      for (const payload of [JSON.stringify({ n: "x".repeat(80) }), JSON.stringify({ n: "y".repeat(1000) })]) {
        const bytes = text(payload)
        const headerBytes = payload.length < 126 ? 2 : 4
        yield* connection.writeInPieces(bytes.subarray(0, headerBytes), [1])
        yield* connection.writeInPieces(bytes.subarray(headerBytes), [1, 2, 3, 7, 13, 1, 250])
      }
      // the 64-bit form, 8 length bytes one by one
      const large = JSON.stringify({ n: "z".repeat(70_000) })
      const bytes = text(large)
      yield* connection.writeInPieces(bytes.subarray(0, 10), [1])
      yield* connection.writeInPieces(bytes.subarray(10), [1, 4095, 3, 30_000, 7])
      const texts = yield* delivered.whenTexts(3)
      assert.deepStrictEqual(texts.map((t) => t.length), [88, 1008, 70_008])
      assert.strictEqual(texts[2], large)
    }))

  it.effect("binary frames reach onBinaryFrame byte-exact, and stay valid after later frames", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      yield* connection.write(Buffer.concat([
        binary(new Uint8Array(0)),
        binary(patterned(100, 1)),
        binary(patterned(1000, 2)),
        binary(patterned(70_000, 3)),
        binary(patterned(100, 4))
      ]))
      const binaries = yield* delivered.whenBinaries(5)
      assert.deepStrictEqual(binaries.map((bytes) => Buffer.from(bytes)), [
        Buffer.alloc(0),
        patterned(100, 1),
        patterned(1000, 2),
        patterned(70_000, 3),
        patterned(100, 4)
      ])
      assert.deepStrictEqual(delivered.texts, [])
    }))

  it.effect("a 5 MiB binary frame written in 7 KiB pieces, then a fragmented binary message", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      const big = patterned(5 * 1024 * 1024, 5)
      const bytes = binary(big)
      for (let at = 0; at < bytes.length; at += 7 * 1024) yield* connection.write(bytes.subarray(at, at + 7 * 1024))
      const parts = [patterned(10, 6), patterned(20_000, 7), patterned(3, 8)]
      yield* connection.write(Buffer.concat([
        binary(parts[0]!, { fin: false }),
        continuation(parts[1]!, false),
        continuation(parts[2]!, true)
      ]))
      const binaries = yield* delivered.whenBinaries(2)
      assert.strictEqual(binaries[0]!.length, big.length)
      assert.isTrue(Buffer.from(binaries[0]!).equals(big), "the 5 MiB frame is byte-exact")
      assert.deepStrictEqual(Buffer.from(binaries[1]!), Buffer.concat(parts))
    }))

  it.effect("a binary frame nobody claims is read as JSON text", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked({}, false)
      yield* connection.write(binary(Buffer.from("{\"as\":\"text\"}")))
      assert.deepStrictEqual(yield* delivered.whenTexts(1), ["{\"as\":\"text\"}"])
    }))
})

describe("control frames", () => {
  it.effect("a ping is answered by a masked pong with its payload; an empty ping by an empty pong", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      yield* connection.write(frame({ opcode: Opcode.ping, payload: "are you there?" }))
      const pong = yield* connection.whenFrame(Opcode.pong)
      assert.isTrue(pong.masked)
      assert.isTrue(pong.fin)
      assert.strictEqual(pong.payload.toString(), "are you there?")
      yield* connection.write(frame({ opcode: Opcode.ping }))
      yield* connection.whenFrames(Opcode.pong, 2)
      assert.strictEqual(sentBy(connection, Opcode.pong)[1]!.payload.length, 0)
      assert.deepStrictEqual(delivered.texts, [], "control frames are not delivered")
    }))

  it.effect("a pong nobody asked for is ignored", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      yield* connection.write(Buffer.concat([frame({ opcode: Opcode.pong, payload: "unasked" }), text("{\"next\":1}")]))
      assert.deepStrictEqual(yield* delivered.whenTexts(1), ["{\"next\":1}"])
      assert.deepStrictEqual(delivered.closes, [])
      assert.deepStrictEqual(connection.frames, [], "the client answered nothing")
    }))

  it.effect("a ping between the fragments of a message is answered, and the message arrives whole", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      yield* connection.write(Buffer.concat([
        text("{\"whole\":", { fin: false }),
        frame({ opcode: Opcode.ping, payload: "mid" }),
        continuation("\"yes\"", false),
        frame({ opcode: Opcode.pong, payload: "stray" }),
        continuation("}", true)
      ]))
      assert.deepStrictEqual(yield* delivered.whenTexts(1), ["{\"whole\":\"yes\"}"])
      assert.strictEqual((yield* connection.whenFrame(Opcode.pong)).payload.toString(), "mid")
    }))
})

/** The largest frame or message the client takes. */
const maxFrameBytes = Defaults.client.maxFrameBytes

/**
 * Each violation with the close code the client sends for it (`ws`'s codes:
 * 1002 protocol error, 1007 invalid data, 1009 too big).
 */
const violations: ReadonlyArray<
  { readonly name: string; readonly bytes: Buffer; readonly codes: ReadonlyArray<number> }
> = [
  { name: "a masked frame", bytes: text("{}", { mask: Uint8Array.of(1, 2, 3, 4) }), codes: [1002] },
  { name: "RSV1 set (no extension was agreed)", bytes: text("{}", { rsv: 4 }), codes: [1002] },
  { name: "RSV2 set", bytes: text("{}", { rsv: 2 }), codes: [1002] },
  { name: "RSV3 set", bytes: text("{}", { rsv: 1 }), codes: [1002] },
  { name: "opcode 3 (reserved data)", bytes: frame({ opcode: 3, payload: "{}" }), codes: [1002] },
  { name: "opcode 11 (reserved control)", bytes: frame({ opcode: 11 }), codes: [1002] },
  { name: "a continuation with no message open", bytes: continuation("{}", true), codes: [1002] },
  {
    name: "a new text frame while a fragmented message is open",
    bytes: Buffer.concat([text("{", { fin: false }), text("{}")]),
    codes: [1002]
  },
  {
    name: "a binary frame while a fragmented text message is open",
    bytes: Buffer.concat([text("{", { fin: false }), binary(patterned(4))]),
    codes: [1002]
  },
  {
    name: "a ping longer than 125 bytes",
    bytes: frame({ opcode: Opcode.ping, payload: patterned(126) }),
    codes: [1002]
  },
  { name: "a fragmented ping (FIN=0)", bytes: frame({ opcode: Opcode.ping, fin: false, payload: "x" }), codes: [1002] },
  {
    name: "a close with a 1-byte body",
    bytes: frame({ opcode: Opcode.close, payload: Uint8Array.of(3) }),
    codes: [1002]
  },
  { name: "a close with code 999", bytes: frame({ opcode: Opcode.close, payload: closePayload(999) }), codes: [1002] },
  {
    name: "a close with code 1005 (never on the wire)",
    bytes: frame({ opcode: Opcode.close, payload: closePayload(1005) }),
    codes: [1002]
  },
  {
    // RFC 6455 says the top bit must be 0 (a protocol error); ws answers 1009 (too big): either is right
    name: "a 64-bit length with the top bit set",
    bytes: frame({ opcode: Opcode.binary, lengthForm: 64, claimedLength: 2n ** 63n + 5n }),
    codes: [1009, 1002]
  },
  {
    // ws validates text: an invalid sequence closes with 1007, never delivers U+FFFD
    name: "a text frame that is not UTF-8",
    bytes: text(Uint8Array.of(0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d)),
    codes: [1007]
  },
  {
    name: "a text message whose fragments end inside a character",
    bytes: Buffer.concat([text(Uint8Array.of(0x22, 0xe2, 0x82), { fin: false }), continuation(Buffer.alloc(0), true)]),
    codes: [1007]
  },
  {
    // each fragment costs memory however empty: a message may come in at most 4 096 of them
    name: "a text message in 5 000 empty fragments",
    bytes: Buffer.concat([
      text("", { fin: false }),
      ...Array.from({ length: 5_000 }, () => continuation(Buffer.alloc(0), false)),
      continuation("{}", true)
    ]),
    codes: [1009]
  },
  {
    name: "a close whose reason is not UTF-8",
    bytes: frame({ opcode: Opcode.close, payload: Buffer.concat([closePayload(1000), Uint8Array.of(0xff)]) }),
    codes: [1007]
  }
]

describe("protocol violations close the link", () => {
  for (const violation of violations) {
    it.effect(`${violation.name}: closed with ${violation.codes.join(" or ")}`, () =>
      Effect.gen(function*() {
        const { connection, delivered } = yield* linked()
        yield* connection.write(violation.bytes)
        const { code } = yield* closedByClient(connection, delivered)
        assert.include(violation.codes, code)
        assert.deepStrictEqual(delivered.texts, [], "nothing is delivered")
        assert.deepStrictEqual(delivered.binaries, [])
      }))
  }

  /**
   * Streams the bytes a header claimed from one reused buffer while waiting
   * for the client to close: a client may refuse at the header or once the
   * bytes pass its limit.
   */
  const refusesTooBig = (headers: ReadonlyArray<Buffer>, claimed: number) =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      for (const header of headers) yield* connection.write(header)
      yield* connection.stream(claimed)
      const { code } = yield* closedByClient(connection, delivered)
      assert.strictEqual(code, 1009)
      assert.deepStrictEqual(delivered.binaries, [])
    })

  it.effect("a frame larger than the client's limit: closed with 1009", () =>
    refusesTooBig([frame({ opcode: Opcode.binary, claimedLength: maxFrameBytes + 1 })], maxFrameBytes + 1))

  it.effect("a fragmented message whose fragments together pass the limit, each within it: closed with 1009", () =>
    // 1 KiB, then a fragment of exactly the limit: no frame is too big, the message is
    refusesTooBig([
      binary(patterned(1024), { fin: false }),
      frame({ opcode: Opcode.continuation, fin: true, claimedLength: maxFrameBytes })
    ], maxFrameBytes))

  it.effect("a server that never answers the client's close: the client still drops the connection", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked({ answerClose: false })
      yield* connection.write(text("{}", { rsv: 4 }))
      const reason = yield* delivered.whenClosed
      assertOneLine(reason)
      assert.strictEqual(closeCode(yield* connection.whenFrame(Opcode.close)), 1002)
      yield* connection.whenClosed
      assert.isTrue(connection.clientLeft(), "the client ended the connection itself")
    }))
})

describe("the close handshake", () => {
  it.effect("the server's close(1000, bye): onClose names both, the client answers a masked close and lets go", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      yield* connection.sendClose(1000, "bye")
      const reason = yield* delivered.whenClosed
      assert.strictEqual(reason, "the WebSocket closed (1000 bye)")
      const answer = yield* connection.whenFrame(Opcode.close)
      assert.isTrue(answer.masked)
      assert.strictEqual(closeCode(answer), 1000)
      yield* connection.whenClosed
      assert.strictEqual(delivered.closes.length, 1)
    }))

  it.effect("the server's close without a code: onClose, the client answers a close with 1000", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      yield* connection.write(frame({ opcode: Opcode.close }))
      // no code is read as 1005, which no endpoint may send: the answer says 1000
      assert.strictEqual(yield* delivered.whenClosed, "the WebSocket closed (1005)")
      const answer = yield* connection.whenFrame(Opcode.close)
      assert.isTrue(answer.masked)
      assert.strictEqual(closeCode(answer), 1000)
      yield* connection.whenClosed
    }))

  it.effect("frames before the server's close are delivered, none after it", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      yield* connection.write(Buffer.concat([
        text("{\"before\":1}"),
        frame({ opcode: Opcode.close, payload: closePayload(1001, "going away") }),
        text("{\"after\":1}")
      ]))
      const reason = yield* delivered.whenClosed
      assert.include(reason, "1001")
      yield* connection.whenClosed
      assert.deepStrictEqual(delivered.texts, ["{\"before\":1}"])
    }))

  it.effect("transport.close sends a masked close (1000, or no code) and ends once the server answers", () =>
    Effect.gen(function*() {
      const { connection, delivered, transport } = yield* linked()
      yield* transport.close
      const close = yield* connection.whenFrame(Opcode.close)
      assert.isTrue(close.masked)
      // ws sends an empty close body (no code, read as 1005); 1000 says the same
      assert.include([1000, undefined], closeCode(close))
      yield* connection.whenClosed
      assertOneLine(yield* delivered.whenClosed)
    }))

  it.effect("transport.close against a server that never answers: the client drops the socket after its close timeout", () =>
    Effect.gen(function*() {
      assert.isBelow(Defaults.client.closeTimeoutMillis, 10_000, "within the waits' 10 s bound")
      const { connection, delivered, transport } = yield* linked({ answerClose: false })
      yield* transport.close
      assert.isTrue((yield* connection.whenFrame(Opcode.close)).masked)
      yield* connection.whenClosed
      assert.isTrue(connection.clientLeft(), "the client ended the connection itself")
      assertOneLine(yield* delivered.whenClosed)
    }))

  it.effect("a connection cut without a close: onClose", () =>
    Effect.gen(function*() {
      const { connection, delivered } = yield* linked()
      connection.destroy()
      assertOneLine(yield* delivered.whenClosed)
    }))
})

describe("send and backpressure", () => {
  it.effect("send after the link closed fails with TransportClosed", () =>
    Effect.gen(function*() {
      const { connection, delivered, transport } = yield* linked()
      yield* connection.sendClose(1000, "bye")
      yield* delivered.whenClosed
      const error = yield* Effect.flip(transport.send("{}"))
      assert.strictEqual(error._tag, "TransportClosed")
      assertOneLine(error.description)
      assert.strictEqual(transport.postBinary!(patterned(4), () => {})?._tag, "TransportClosed")
    }))

  // live: the pause is a real wait (the OS holds the frames, the client must not read them)
  it.live("pause stops delivery until resume; what came meanwhile arrives after, none lost", () =>
    Effect.gen(function*() {
      const { connection, delivered, transport } = yield* linked()
      yield* connection.write(text("{\"n\":0}"))
      yield* delivered.whenTexts(1)
      transport.pause()
      const during = Array.from({ length: 50 }, (_, i) => `{"n":${i + 1},"pad":"${"p".repeat(2000)}"}`)
      for (const message of during) yield* connection.write(text(message))
      yield* Effect.sleep("200 millis")
      assert.strictEqual(delivered.texts.length, 1, "nothing delivered while paused")
      transport.resume()
      assert.deepStrictEqual((yield* delivered.whenTexts(51)).slice(1), during)
    }))
})

describe("end to end: Exec.run over the raw server", () => {
  it.effect("a server that dies mid-frame ends the run promptly as Lost (ConnectionLost)", () =>
    Effect.gen(function*() {
      const server = yield* rawWebSocketServer({
        // after the first connection, the server is gone: the reconnection is refused at once
        onAccept: (connection) => {
          if (connection.index > 0) connection.destroy()
        },
        onFrame: (sent, connection) => {
          if (sent.opcode !== Opcode.text) return
          const message = JSON.parse(sent.payload.toString())
          const answer = (result: unknown) =>
            connection.socket.write(text(JSON.stringify({ jsonrpc: "2.0", id: message.id, result })))
          switch (message.method) {
            case "initialize":
              return answer({ sessionId: "raw-session", environmentInfo: { cwd: "/tmp" } })
            case "process/start":
              return answer({ processId: message.params.processId, sandboxType: "none" })
            case "process/read": {
              // half a binary frame, then the connection is gone
              const half = binary(patterned(1000))
              connection.socket.write(half.subarray(0, 500), () => connection.destroy())
            }
          }
        }
      })
      const result = yield* Exec.run({ command: ["true"], cwd: "/tmp" }).pipe(
        // under the TestClock no timeout of the client can fire: the end comes from the cut itself
        Effect.provide([Environment.layerRemote({ url: server.url() }), OutputSink.layerDiscard]),
        (run) => within10s("the run to end", run)
      )
      assert.strictEqual(result.termination._tag, "Lost")
      const error = (result.termination as Extract<Exec.Termination, { _tag: "Lost" }>).error
      assert.strictEqual(error.reason._tag, "ConnectionLost")
      assertOneLine(error.message)
    }))
})
