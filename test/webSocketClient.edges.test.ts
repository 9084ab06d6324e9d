/**
 * The ws:// client (`webSocketClient.ts`) at its edges, found by a review: a raw TCP server on
 * 127.0.0.1 that speaks the handshake by hand and then writes crafted bytes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import * as Defaults from "../src/internal/defaults.ts"
import { ProcessRecords } from "../src/internal/remote/processRecords.ts"
import type { BinaryMemory } from "../src/internal/rpc/transport.ts"
import * as WebSocketClient from "../src/internal/rpc/webSocketClient.ts"
import * as Raw from "./support/rawWebSocketServer.ts"

/** A server frame (unmasked), in the shortest length form. */
const frame = (opcode: number, payload: Buffer, fin = true): Buffer => Raw.frame({ opcode, payload, fin })

/** The client frames in `bytes`, unmasked (whole frames only). */
const clientFrames = (bytes: Buffer) => Raw.parseFrames(bytes).frames

/** How a test's server behaves besides its script. */
interface RawOptions {
  /** Writes the answer to the upgrade, given the client's key (default a correct 101, in one write). */
  readonly answer?: (key: string, socket: Net.Socket) => void
  /** The address listened on (default 127.0.0.1). */
  readonly host?: string
  /** The server's end stays open after the client ends its own: a server that never hangs up. */
  readonly allowHalfOpen?: boolean
  /** A close frame from the client is answered with one (its code) and the end of the connection. */
  readonly answerClose?: boolean
}

/** The 101 a correct server answers `key` with, `extra` header lines (each ending in CR LF) before its blank line. */
const switching = (key: string, extra = "") =>
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  `Sec-WebSocket-Accept: ${Raw.acceptFor(key)}\r\n${extra}\r\n`

/**
 * A server that upgrades and then runs `script` on the socket; everything the
 * client sends after the upgrade is collected in `received`, the upgrade
 * requests in `requests`; `closed` settles once the first connection is gone.
 */
const rawServer = (script: (socket: Net.Socket) => void, options: RawOptions = {}) =>
  new Promise<{
    url: URL
    received: () => Buffer
    requests: ReadonlyArray<string>
    connections: () => number
    closed: Promise<void>
    close: () => void
  }>((resolve) => {
    let received = Buffer.alloc(0)
    const requests: Array<string> = []
    const sockets = new Set<Net.Socket>()
    let firstClosed: () => void = () => {}
    const closed = new Promise<void>((resolve) => firstClosed = resolve)
    const server = Net.createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
      if (sockets.size === 0) socket.once("close", firstClosed)
      sockets.add(socket)
      let head = Buffer.alloc(0)
      let upgraded = false
      let answeredClose = false
      socket.on("error", () => {})
      socket.on("data", (data) => {
        if (upgraded) {
          received = Buffer.concat([received, data])
          if (options.answerClose === true && !answeredClose) {
            const close = clientFrames(received).find((f) => f.opcode === 0x8)
            if (close !== undefined) {
              answeredClose = true
              socket.end(frame(0x8, close.payload.subarray(0, 2)))
            }
          }
          return
        }
        head = Buffer.concat([head, data])
        const end = head.indexOf("\r\n\r\n")
        if (end === -1) return
        upgraded = true
        received = head.subarray(end + 4)
        requests.push(head.subarray(0, end).toString("latin1"))
        const key = /sec-websocket-key: *(\S+)/i.exec(head.toString("latin1"))![1]!
        if (options.answer === undefined) socket.write(switching(key))
        else options.answer(key, socket)
        script(socket)
      })
    })
    const host = options.host ?? "127.0.0.1"
    server.listen(0, host, () => {
      const { port } = server.address() as Net.AddressInfo
      resolve({
        url: new URL(`ws://${host.includes(":") ? `[${host}]` : host}:${port}/`),
        received: () => received,
        requests,
        connections: () => sockets.size,
        closed,
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      })
    })
  })

const clientOptions: WebSocketClient.ClientOptions = { headers: {}, maxPayload: 1 << 26, closeTimeoutMillis: 1000 }

const open = (url: URL, options: Partial<WebSocketClient.ClientOptions> = {}) =>
  new Promise<WebSocketClient.Connection>((resolve, reject) =>
    WebSocketClient.connect(url, { ...clientOptions, ...options }, {
      opened: resolve,
      failed: (description) => reject(new Error(description))
    })
  )

/** How connecting to `url` ends: "opened" (the connection then dropped), or the failure's description. */
const outcomeOf = (url: URL, options: Partial<WebSocketClient.ClientOptions> = {}) =>
  new Promise<string>((resolve) =>
    WebSocketClient.connect(url, { ...clientOptions, ...options }, {
      opened: (connection) => {
        connection.terminate("done")
        resolve("opened")
      },
      failed: resolve
    })
  )

/** What a connection delivers from now on, and its end. */
const listenTo = (connection: WebSocketClient.Connection, binaryMemory?: BinaryMemory) => {
  const texts: Array<string> = []
  const binaries: Array<Buffer> = []
  const closed = new Promise<string>((resolve) =>
    connection.listen({
      binaryMemory,
      onText: (text) => texts.push(text),
      onBinary: (bytes) => binaries.push(bytes),
      onClose: resolve
    })
  )
  return { texts, binaries, closed }
}

/**
 * `promise`, or a rejection naming `what` after 5 s of real time: a client
 * that never gets there fails an assertion, not the test's timeout.
 */
const within5s = <A>(what: string, promise: Promise<A>): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`waited 5 s for ${what}`)), 5000)
    promise.then((value) => {
      clearTimeout(timer)
      resolve(value)
    }, reject)
  })

/** The 7-bit length field of each client frame in `bytes`: the length itself, or 126 / 127 for the longer forms. */
const lengthForms = (bytes: Buffer): Array<number> => walkFrames(bytes).map(({ at }) => bytes[at + 1]! & 0x7f)

/** The mask key of each client frame in `bytes`. */
const maskKeys = (bytes: Buffer): Array<string> =>
  walkFrames(bytes).map(({ keyAt }) => bytes.subarray(keyAt, keyAt + 4).toString("hex"))

/** Where each whole client frame in `bytes` starts, and where its mask key is. */
const walkFrames = (bytes: Buffer): Array<{ readonly at: number; readonly keyAt: number }> => {
  const found: Array<{ at: number; keyAt: number }> = []
  let at = 0
  while (bytes.length - at >= 2) {
    const short = bytes[at + 1]! & 0x7f
    const extra = short === 126 ? 2 : short === 127 ? 8 : 0
    if (bytes.length - at < 2 + extra + 4) break
    const length = short === 126
      ? bytes.readUInt16BE(at + 2)
      : short === 127
      ? Number(bytes.readBigUInt64BE(at + 2))
      : short
    const keyAt = at + 2 + extra
    if (bytes.length - keyAt - 4 < length) break
    found.push({ at, keyAt })
    at = keyAt + 4 + length
  }
  return found
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

describe("webSocketClient", () => {
  it("a binary frame cut off by the connection's end gives its frame memory back", async () => {
    const records = new ProcessRecords()
    const memory = (records as unknown as { memory: { slabCount: number } }).memory
    // the header of a 100 kB binary frame (one for the slabs) and 4 bytes of it, then the server is gone
    const server = await rawServer((socket) => {
      const whole = frame(0x2, Buffer.alloc(100_000, 7))
      // after the client listens (frames before it are assembled in memory of their own)
      setTimeout(() => socket.write(whole.subarray(0, 14), () => setTimeout(() => socket.destroy(), 50)), 100)
    })
    try {
      const connection = await open(server.url)
      const closed = new Promise<string>((resolve) =>
        connection.listen({
          binaryMemory: records.frameMemory,
          onText: () => {},
          onBinary: (bytes) => records.releaseFrame(bytes),
          onClose: resolve
        })
      )
      await closed
      // the frames go on on a later connection: enough of them to leave the first slab, each released at once
      for (let i = 0; i < 4; i++) records.releaseFrame(records.frameMemory.reserve(Defaults.pipes.slabBytes / 2))
      assert.strictEqual(memory.slabCount, 1, "only the current slab is held: the cut-off frame's slab went back")
    } finally {
      server.close()
    }
  })

  it("nothing is delivered after the server's close frame, even when it came in the same read", async () => {
    const server = await rawServer((socket) => {
      const close = Buffer.alloc(2)
      close.writeUInt16BE(1000)
      socket.write(Buffer.concat([frame(0x8, close), frame(0x1, Buffer.from("after the close"))]))
    })
    try {
      const connection = await open(server.url)
      const texts: Array<string> = []
      await new Promise<string>((resolve) =>
        connection.listen({ onText: (text) => texts.push(text), onBinary: () => {}, onClose: resolve })
      )
      assert.deepStrictEqual(texts, [], "a frame after the close is no message")
    } finally {
      server.close()
    }
  })

  it("nothing is delivered after a protocol violation ended the connection, even in the same read", async () => {
    const server = await rawServer((socket) => {
      socket.write(Buffer.concat([frame(0x1, Buffer.from([0xff, 0xfe])), frame(0x1, Buffer.from("after the failure"))]))
    })
    try {
      const connection = await open(server.url)
      const texts: Array<string> = []
      const reason = await new Promise<string>((resolve) =>
        connection.listen({ onText: (text) => texts.push(text), onBinary: () => {}, onClose: resolve })
      )
      assert.include(reason, "UTF-8")
      assert.deepStrictEqual(texts, [], "a frame after the failure is no message")
    } finally {
      server.close()
    }
  })

  it("a close code no endpoint may send (1006) is not echoed back on the wire", async () => {
    const server = await rawServer((socket) => {
      const close = Buffer.alloc(2)
      close.writeUInt16BE(1006)
      socket.write(frame(0x8, close))
    })
    try {
      const connection = await open(server.url)
      await new Promise<string>((resolve) =>
        connection.listen({ onText: () => {}, onBinary: () => {}, onClose: resolve })
      )
      await sleep(50)
      const codes = clientFrames(server.received()).filter((f) => f.opcode === 0x8).map((f) =>
        f.payload.readUInt16BE(0)
      )
      assert.notInclude(codes, 1006, `the client sent close codes ${JSON.stringify(codes)}`)
    } finally {
      server.close()
    }
  })
})

describe("webSocketClient: where frames are assembled, and what goes out", () => {
  it("a whole binary frame up to 1 MiB goes into the listener's memory; a fragmented or larger one, and text, do not; a cut-off one is given back", async () => {
    const large = Buffer.alloc(1024 * 1024 + 1, 3)
    const server = await rawServer((socket) => {
      setTimeout(() => {
        socket.write(
          Buffer.concat([
            frame(0x2, Buffer.alloc(100, 1)),
            frame(0x1, Buffer.from("{}")),
            frame(0x2, Buffer.alloc(10, 2), false),
            frame(0x0, Buffer.alloc(10, 2), true),
            frame(0x2, large),
            frame(0x2, Buffer.alloc(5000, 4)).subarray(0, 1000)
          ]),
          () => setTimeout(() => socket.destroy(), 50)
        )
      }, 100)
    })
    try {
      const connection = await open(server.url)
      const reserved: Array<Buffer> = []
      const released: Array<Uint8Array> = []
      const binaries: Array<Buffer> = []
      const texts: Array<string> = []
      await new Promise<string>((resolve) =>
        connection.listen({
          binaryMemory: {
            reserve: (length) => {
              const room = Buffer.alloc(length)
              reserved.push(room)
              return room
            },
            release: (frame) => void released.push(frame)
          },
          onText: (text) => texts.push(text),
          onBinary: (bytes) => binaries.push(bytes),
          onClose: resolve
        })
      )
      assert.deepStrictEqual(texts, ["{}"])
      assert.deepStrictEqual(binaries.map((bytes) => bytes.length), [100, 20, large.length])
      assert.isTrue(binaries[2]!.equals(large), "the large frame arrived whole")
      assert.deepStrictEqual(reserved.map((room) => room.length), [100, 5000], "reserved: the whole frames up to 1 MiB")
      assert.strictEqual(binaries[0]!.buffer, reserved[0]!.buffer, "delivered in the memory it reserved")
      assert.deepStrictEqual(released, [reserved[1]], "the cut-off frame's room given back, once")
    } finally {
      server.close()
    }
  })

  it("what the client sends: masked text frames in every length form, byte-exact", async () => {
    const server = await rawServer(() => {})
    try {
      const connection = await open(server.url)
      const lengths = [0, 125, 126, 65535, 65536, 70_000]
      const texts = lengths.map((length, i) => String.fromCharCode(97 + i).repeat(length))
      for (const text of texts) await new Promise<void>((resolve) => connection.sendText(text, () => resolve()))
      for (let i = 0; i < 100 && clientFrames(server.received()).length < texts.length; i++) await sleep(20)
      const frames = clientFrames(server.received())
      assert.deepStrictEqual(frames.map((f) => f.opcode), lengths.map(() => 0x1))
      assert.deepStrictEqual(frames.map((f) => f.payload.toString()), texts)
      assert.isTrue((server.received()[1]! & 0x80) !== 0, "the first frame is masked")
      // RFC 6455 5.2: the length in the fewest bytes that hold it
      assert.deepStrictEqual(lengthForms(server.received()), [0, 125, 126, 126, 127, 127])
    } finally {
      server.close()
    }
  })

  for (
    const [code, valid] of [[1000, true], [1014, true], [3000, true], [4999, true], [1004, false], [1015, false], [
      2999,
      false
    ], [5000, false]] as const
  ) {
    it(`a server's close with code ${code}: ${valid ? "echoed" : "a protocol error (1002)"}`, async () => {
      const server = await rawServer((socket) => {
        const close = Buffer.alloc(2)
        close.writeUInt16BE(code)
        socket.write(frame(0x8, close))
      })
      try {
        const connection = await open(server.url)
        const reason = await new Promise<string>((resolve) =>
          connection.listen({ onText: () => {}, onBinary: () => {}, onClose: resolve })
        )
        for (let i = 0; i < 50 && clientFrames(server.received()).length === 0; i++) await sleep(20)
        const closes = clientFrames(server.received()).filter((f) => f.opcode === 0x8)
        assert.deepStrictEqual(closes.map((f) => f.payload.readUInt16BE(0)), [valid ? code : 1002])
        assert.strictEqual(
          reason,
          valid ? `the WebSocket closed (${code})` : `invalid WebSocket frame: close code ${code}`
        )
      } finally {
        server.close()
      }
    })
  }
})

describe("webSocketClient: a hostile server's fragments", () => {
  it("a message in more fragments than ws takes (16 384) is refused, not assembled from a heap object per frame", async () => {
    // 20 000 one-byte fragments: 60 kB on the wire; at 2-3 bytes a frame, 10 MB of them cost the client ~500 MB of heap
    const server = await rawServer((socket) => {
      setTimeout(() => {
        const fragments = [frame(0x1, Buffer.from("a"), false)]
        for (let i = 0; i < 20_000; i++) fragments.push(frame(0x0, Buffer.from("a"), false))
        fragments.push(frame(0x0, Buffer.from("a"), true))
        socket.write(Buffer.concat(fragments))
      }, 100)
    })
    try {
      const connection = await open(server.url)
      const texts: Array<string> = []
      const reason = await new Promise<string>((resolve) => {
        connection.listen({ onText: (text) => texts.push(text), onBinary: () => {}, onClose: resolve })
        setTimeout(() => resolve("still open"), 1000)
      })
      assert.deepStrictEqual(texts.map((text) => text.length), [], "the message was assembled")
      assert.notStrictEqual(reason, "still open")
    } finally {
      server.close()
    }
  })
})

describe("ProcessRecords: frame memory held by a cache, against the bytes the cache counts", () => {
  it("a few bytes a slow reader has not read yet do not hold a slab each while another stream goes by", () => {
    const records = new ProcessRecords()
    const memory = (records as unknown as { memory: { slabCount: number } }).memory
    records.starting("fast", { showsOutput: false, streams: true })
    records.starting("slow", { showsOutput: false, streams: true })
    const frameOf = (seq: number, length: number) => {
      const chunk = records.frameMemory.reserve(length)
      chunk.fill(seq % 256)
      return { _tag: "Output", seq, stream: "stdout", chunk } as const
    }
    // 200 MB of a stream read as it comes, and among it a byte of a process whose reader is busy (a slow sink)
    for (let seq = 1; seq <= 2000; seq++) {
      records.add("fast", frameOf(seq, 100_000))
      const cache = records.pushedFor("fast")!
      cache.trim(seq - 1)
      cache.read(seq - 1, null, true)
      if (seq % 10 === 0) records.add("slow", frameOf(seq / 10, 1))
    }
    const { pushedBytes } = records.footprint()
    // the bounds see this much held ...
    assert.isAtMost(pushedBytes, 100_000 + 200)
    // ... and this is what is held: a slab for each byte of the slow stream
    assert.isAtMost(
      memory.slabCount * Defaults.pipes.slabBytes,
      8 * Defaults.pipes.slabBytes,
      `${memory.slabCount} slabs of ${Defaults.pipes.slabBytes} bytes held for ${pushedBytes} bytes cached`
    )
  })
})

describe("webSocketClient: the upgrade, against ws's behaviour", () => {
  it("a port that answers in another protocol fails the connect at once, not at the connect timeout", async () => {
    const server = Net.createServer((socket) => {
      socket.on("error", () => {})
      socket.write("SSH-2.0-OpenSSH_9.6\r\n")
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const { port } = server.address() as Net.AddressInfo
    try {
      const outcome = await new Promise<string>((resolve) => {
        const cancel = WebSocketClient.connect(
          new URL(`ws://127.0.0.1:${port}/`),
          { headers: {}, maxPayload: 1 << 20, closeTimeoutMillis: 1000 },
          { opened: () => resolve("opened"), failed: (description) => resolve(`failed: ${description}`) }
        )
        // ws fails within milliseconds ("Parse Error: Expected HTTP/"); a second is far more than enough
        setTimeout(() => {
          cancel()
          resolve("still waiting after 1 s")
        }, 1000)
      })
      assert.match(outcome, /^failed: .*did not answer as an HTTP server/)
    } finally {
      server.close()
    }
  })

  it("a header value with CR LF (a token with a newline) cannot add a header to the upgrade request", async () => {
    let request = ""
    const server = Net.createServer((socket) => {
      socket.on("error", () => {})
      socket.on("data", (data) => {
        request += data.toString("latin1")
        if (request.includes("\r\n\r\n")) socket.end("HTTP/1.1 400 Bad Request\r\n\r\n")
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const { port } = server.address() as Net.AddressInfo
    try {
      await new Promise<void>((resolve) =>
        WebSocketClient.connect(
          new URL(`ws://127.0.0.1:${port}/`),
          { headers: { Authorization: "Bearer t\r\nX-Injected: yes" }, maxPayload: 1 << 20, closeTimeoutMillis: 1000 },
          { opened: () => resolve(), failed: () => resolve() }
        )
      )
      assert.notMatch(request, /^X-Injected: yes\r$/m, "the request carried a header nobody set")
    } finally {
      server.close()
    }
  })
})

const basic = (credentials: string) => `Basic ${Buffer.from(credentials).toString("base64")}`

/** The values of header `name` in an upgrade request, each from its own line. */
const headerLines = (request: string, name: string): Array<string> =>
  request.split("\r\n").filter((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`)).map((line) =>
    line.slice(name.length + 1).trim()
  )

describe("webSocketClient: the upgrade request", () => {
  it("a header name that is not an HTTP token is refused before anything is sent", async () => {
    const server = await rawServer(() => {})
    try {
      for (const header of ["a b", "x:y", "", "é"]) {
        const outcome = await outcomeOf(server.url, { headers: { [header]: "v" } })
        assert.strictEqual(outcome, `invalid header name ${JSON.stringify(header)}`)
      }
      assert.strictEqual(server.connections(), 0, "no connection was made")
    } finally {
      server.close()
    }
  })

  it("credentials in the URL go as Basic beside other headers, a user or a password alone too; an Authorization of any case wins", async () => {
    const server = await rawServer(() => {})
    const at = (userinfo: string) => new URL(server.url.href.replace("ws://", `ws://${userinfo}@`))
    try {
      const cases = [
        { url: at("alice:pw"), headers: { "X-Trace": "1" }, authorization: basic("alice:pw") },
        { url: at("alice"), headers: {}, authorization: basic("alice:") },
        { url: at(":pw"), headers: {}, authorization: basic(":pw") },
        { url: at("alice:pw"), headers: { authorization: "Bearer t" }, authorization: "Bearer t" }
      ]
      for (const { authorization, headers, url } of cases) {
        assert.strictEqual(await outcomeOf(url, { headers }), "opened")
        const request = server.requests.at(-1)!
        assert.deepStrictEqual(headerLines(request, "authorization"), [authorization], request)
        for (const [name, value] of Object.entries(headers)) assert.include(headerLines(request, name), value)
      }
    } finally {
      server.close()
    }
  })

  it("an IPv6 literal is connected to without its brackets; the Host keeps them", async () => {
    const server = await rawServer(() => {}, { host: "::1" })
    try {
      assert.strictEqual(await outcomeOf(server.url), "opened")
      assert.deepStrictEqual(headerLines(server.requests[0]!, "host"), [server.url.host])
    } finally {
      server.close()
    }
  })

  it("a URL without a port is port 80", async () => {
    // a listener of ours on port 80 (as root, which CI is) sees the connection; where port 80 is taken or not ours
    // to bind, the failure names the port that was tried
    const listener = Net.createServer((socket) => socket.destroy())
    const listening = await new Promise<boolean>((resolve) => {
      listener.once("error", () => resolve(false))
      listener.listen(80, "127.0.0.1", () => resolve(true))
    })
    let connections = 0
    listener.on("connection", () => connections++)
    try {
      const outcome = await outcomeOf(new URL("ws://127.0.0.1/"))
      if (listening) assert.strictEqual(connections, 1)
      else assert.include(outcome, "127.0.0.1:80")
    } finally {
      listener.close()
    }
  })
})

describe("webSocketClient: the server's answer to the upgrade", () => {
  const answering = (answer: (key: string) => string) =>
    rawServer(() => {}, { answer: (key, socket) => socket.write(answer(key)) })

  it("an answer that is not HTTP is quoted: its first line, at most 80 characters of it", async () => {
    for (
      const [banner, quoted] of [
        ["SSH-2.0-OpenSSH_9.6\r\nmore", "SSH-2.0-OpenSSH_9.6"],
        ["x".repeat(200), "x".repeat(80)]
      ]
    ) {
      const server = await answering(() => banner!)
      try {
        const outcome = await outcomeOf(server.url)
        assert.strictEqual(outcome, `${server.url.href} did not answer as an HTTP server: ${JSON.stringify(quoted)}`)
      } finally {
        server.close()
      }
    }
  })

  it("a status line of another HTTP version is no answer to an HTTP/1.1 upgrade", async () => {
    const server = await answering((key) => switching(key).replace("HTTP/1.1", "HTTP/2"))
    try {
      const outcome = await outcomeOf(server.url)
      assert.strictEqual(
        outcome,
        `${server.url.href} did not answer as an HTTP server: ${JSON.stringify("HTTP/2 101 Switching Protocols")}`
      )
    } finally {
      server.close()
    }
  })

  it("Connection must list Upgrade, among other tokens and spaces", async () => {
    const cases: ReadonlyArray<readonly [string | undefined, boolean]> = [
      [undefined, false],
      ["keep-alive", false],
      ["upgraded", false],
      ["keep-alive, Upgrade", true],
      ["Upgrade , close", true],
      ["upgrade", true]
    ]
    for (const [connection, opens] of cases) {
      const server = await answering((key) => {
        const answer = switching(key).replace("Connection: Upgrade\r\n", "")
        return connection === undefined ? answer : answer.replace("\r\n\r\n", `\r\nConnection: ${connection}\r\n\r\n`)
      })
      try {
        const outcome = await outcomeOf(server.url)
        assert.strictEqual(
          outcome,
          opens ? "opened" : `${server.url.href} answered 101 without Connection: Upgrade`,
          `Connection: ${connection}`
        )
      } finally {
        server.close()
      }
    }
  })

  it("a header line that is not `name: value` fails the upgrade, as Node's HTTP parser fails it; a one-letter name is one", async () => {
    const long = "n".repeat(100)
    const cases: ReadonlyArray<readonly [string, string | undefined]> = [
      ["NoColon", "NoColon"],
      [long, "n".repeat(80)],
      [": empty name", ": empty name"],
      ["Upgrade : websocket", "Upgrade : websocket"],
      [" folded", " folded"],
      ["a: one letter", undefined]
    ]
    for (const [line, quoted] of cases) {
      const server = await answering((key) => switching(key, `${line}\r\n`))
      try {
        assert.strictEqual(
          await outcomeOf(server.url),
          quoted === undefined
            ? "opened"
            : `${server.url.href} answered with a malformed header line: ${JSON.stringify(quoted)}`
        )
      } finally {
        server.close()
      }
    }
  })

  it("an extension or a subprotocol the client did not ask for is refused", async () => {
    for (
      const [header, refusal] of [
        ["Sec-WebSocket-Extensions: permessage-deflate", "an extension"],
        ["Sec-WebSocket-Protocol: chat", "a subprotocol"]
      ]
    ) {
      const server = await answering((key) => switching(key, `${header}\r\n`))
      try {
        assert.strictEqual(
          await outcomeOf(server.url),
          `${server.url.href} answered with ${refusal} this client did not ask for`
        )
      } finally {
        server.close()
      }
    }
  })

  it("an answer in pieces opens the link, one of exactly 64 KiB before its end included", async () => {
    const inPieces = (pieces: (key: string) => Array<string>) =>
      rawServer(() => {}, {
        answer: (key, socket) => {
          const [first, ...rest] = pieces(key)
          // each piece once the one before reached the OS, and a moment later: reads of their own
          const next = (left: Array<string>) => {
            if (left.length > 0) setTimeout(() => socket.write(left[0]!, () => next(left.slice(1))), 20)
          }
          socket.write(first!, () => next(rest))
        }
      })
    const status = "HTTP/1.1 101 Switching Protocols\r\n"
    const small = await inPieces((key) => [status, switching(key).slice(status.length)])
    try {
      assert.strictEqual(await outcomeOf(small.url), "opened")
    } finally {
      small.close()
    }
    const filler = `${status}X-Filler: `
    const large = await inPieces((key) => [
      filler + "f".repeat(64 * 1024 - filler.length),
      "\r\n" + switching(key).slice(status.length)
    ])
    try {
      assert.strictEqual(await outcomeOf(large.url), "opened")
    } finally {
      large.close()
    }
  })
})

describe("webSocketClient: frames at their limits", () => {
  it("mask keys are random, one per frame, past the first 1 024 frames as well", async () => {
    const server = await rawServer(() => {})
    try {
      const connection = await open(server.url)
      const texts = Array.from({ length: 1100 }, (_, i) => `m${i}`)
      for (const text of texts) connection.sendText(text, () => {})
      await new Promise<void>((resolve) => connection.sendText("last", () => resolve()))
      for (let i = 0; i < 100 && clientFrames(server.received()).length <= texts.length; i++) await sleep(20)
      assert.deepStrictEqual(clientFrames(server.received()).map((f) => f.payload.toString()), [...texts, "last"])
      const keys = maskKeys(server.received())
      assert.strictEqual(keys.length, texts.length + 1)
      assert.notInclude(keys, "00000000")
      // 64 random 32-bit keys: two alike once in millions of runs
      assert.strictEqual(new Set(keys.slice(0, 64)).size, 64, "no key used twice")
    } finally {
      server.close()
    }
  })

  it("a frame header split across reads right after another frame is read whole", async () => {
    // the first frame's length is in the 16-bit form, the ping's in the 7-bit: a stale header byte would show
    const first = frame(0x1, Buffer.from("a".repeat(300)))
    const second = Buffer.concat([frame(0x9, Buffer.from("ping")), frame(0x1, Buffer.from("hello"))])
    const server = await rawServer((socket) => {
      setTimeout(() =>
        socket.write(
          Buffer.concat([first, second.subarray(0, 1)]),
          () => setTimeout(() => socket.write(second.subarray(1), () => setTimeout(() => socket.end(), 20)), 20)
        ), 50)
    })
    try {
      const connection = await open(server.url)
      const { closed, texts } = listenTo(connection)
      await within5s("onClose", closed)
      assert.deepStrictEqual(texts, ["a".repeat(300), "hello"])
      assert.deepStrictEqual(clientFrames(server.received()).map((f) => [f.opcode, f.payload.toString()]), [[
        0xa,
        "ping"
      ]])
    } finally {
      server.close()
    }
  })

  it("a ping of 125 bytes is answered; control frames inside a message of exactly the limit do not count towards it", async () => {
    const server = await rawServer((socket) => {
      setTimeout(() =>
        socket.write(
          Buffer.concat([
            frame(0x9, Buffer.alloc(125, 1)),
            frame(0x1, Buffer.alloc(950, 0x61), false),
            frame(0x9, Buffer.alloc(100, 2)),
            frame(0x0, Buffer.alloc(50, 0x62)),
            frame(0x8, Raw.closePayload(1000))
          ])
        ), 50)
    })
    try {
      const connection = await open(server.url, { maxPayload: 1000 })
      const { closed, texts } = listenTo(connection)
      assert.strictEqual(await within5s("onClose", closed), "the WebSocket closed (1000)")
      assert.deepStrictEqual(texts, ["a".repeat(950) + "b".repeat(50)])
      const sent = clientFrames(server.received())
      assert.deepStrictEqual(sent.map((f) => [f.opcode, f.payload.length]), [[0xa, 125], [0xa, 100], [0x8, 2]])
    } finally {
      server.close()
    }
  })

  it("a close between the fragments of a message near the limit is a close: the message is not delivered", async () => {
    const server = await rawServer((socket) => {
      setTimeout(() =>
        socket.write(
          Buffer.concat([
            frame(0x1, Buffer.alloc(990, 0x61), false),
            frame(0x8, Raw.closePayload(1001, "x".repeat(20)))
          ])
        ), 50)
    })
    try {
      const connection = await open(server.url, { maxPayload: 1000 })
      const { closed, texts } = listenTo(connection)
      assert.strictEqual(await within5s("onClose", closed), `the WebSocket closed (1001 ${"x".repeat(20)})`)
      assert.deepStrictEqual(texts, [])
      assert.deepStrictEqual(clientFrames(server.received()).map((f) => f.payload.readUInt16BE(0)), [1001])
    } finally {
      server.close()
    }
  })

  it("a message in exactly 4 096 fragments is taken", async () => {
    const server = await rawServer((socket) => {
      const fragments = [frame(0x1, Buffer.from("a"), false)]
      for (let i = 0; i < 4094; i++) fragments.push(frame(0x0, Buffer.from("a"), false))
      fragments.push(frame(0x0, Buffer.from("a"), true), frame(0x8, Raw.closePayload(1000)))
      setTimeout(() => socket.write(Buffer.concat(fragments)), 50)
    })
    try {
      const connection = await open(server.url)
      const { closed, texts } = listenTo(connection)
      assert.strictEqual(await within5s("onClose", closed), "the WebSocket closed (1000)")
      assert.deepStrictEqual(texts, ["a".repeat(4096)])
    } finally {
      server.close()
    }
  })

  it("the listener's memory: a whole binary frame of exactly 1 MiB is read into it; a cut-off frame gives back only what it took", async () => {
    const MiB = 1024 * 1024
    /** What the listener's memory saw of `bytes` written after the upgrade, the connection then cut. */
    const memoryFor = async (bytes: Buffer) => {
      const reserved: Array<Buffer> = []
      const released: Array<Uint8Array> = []
      const server = await rawServer((socket) => {
        setTimeout(() => socket.write(bytes, () => setTimeout(() => socket.destroy(), 50)), 50)
      })
      try {
        const connection = await open(server.url)
        const { binaries, closed } = listenTo(connection, {
          reserve: (length) => {
            const room = Buffer.alloc(length)
            reserved.push(room)
            return room
          },
          release: (room) => void released.push(room)
        })
        await within5s("onClose", closed)
        return { reserved, released, binaries }
      } finally {
        server.close()
      }
    }
    // the connection ends right after the binary frame: nothing is cut off
    const whole = await memoryFor(Buffer.concat([frame(0x1, Buffer.from("{}")), frame(0x2, Buffer.alloc(MiB, 1))]))
    assert.deepStrictEqual(whole.reserved.map((room) => room.length), [MiB])
    assert.strictEqual(whole.binaries[0]!.buffer, whole.reserved[0]!.buffer, "delivered in the memory it reserved")
    assert.deepStrictEqual(whole.released, [], "nothing was cut off: nothing given back")

    const cutText = await memoryFor(frame(0x1, Buffer.alloc(1000, 0x61)).subarray(0, 500))
    assert.deepStrictEqual([cutText.reserved, cutText.released], [[], []], "a text frame is not the listener's memory")

    const cutAtLimit = await memoryFor(frame(0x2, Buffer.alloc(MiB, 1)).subarray(0, 1000))
    assert.deepStrictEqual(cutAtLimit.released, cutAtLimit.reserved, "the 1 MiB frame's room given back")
    assert.strictEqual(cutAtLimit.reserved.length, 1)

    const cutLarger = await memoryFor(frame(0x2, Buffer.alloc(MiB + 1, 1)).subarray(0, 1000))
    assert.deepStrictEqual([cutLarger.reserved, cutLarger.released], [[], []], "a frame over 1 MiB takes none of it")
  })
})

describe("webSocketClient: reads in place", () => {
  it("payloads read straight into their memory arrive byte-exact, however the frames are cut, texts and pings between them", async () => {
    const Crypto = await import("node:crypto")
    // large binary frames of random bytes, a text and a ping among them, written in pieces cut at random places with
    // pauses, so that reads land mid-header, mid-payload and on frame ends: the reader reads in place, or copies
    const binaries = Array.from({ length: 24 }, (_, i) => Crypto.randomBytes(i % 3 === 0 ? 300_000 : 40_000 + i * 997))
    const text = "t".repeat(70_000) + "é"
    const stream = Buffer.concat(binaries.flatMap((payload, i) => {
      const frames = [frame(0x2, payload)]
      if (i === 5) frames.push(frame(0x1, Buffer.from(text)))
      if (i === 9) frames.push(frame(0x9, Buffer.from("ping")))
      return frames
    }))
    const cuts = Array.from({ length: 60 }, () => Crypto.randomInt(stream.length)).sort((a, b) => a - b)
    const pieces = [0, ...cuts].map((at, i, all) => stream.subarray(at, all[i + 1] ?? stream.length))
    const server = await rawServer((socket) => {
      const next = (i: number): void => {
        if (i === pieces.length) return
        socket.write(pieces[i]!, () => setTimeout(() => next(i + 1), i % 4 === 0 ? 5 : 0))
      }
      // once the client listens: frames before that get no listener's memory
      setTimeout(() => next(0), 50)
    })
    try {
      const connection = await open(server.url)
      const reserved: Array<Buffer> = []
      const received = listenTo(connection, {
        reserve: (length) => {
          const room = Buffer.alloc(length)
          reserved.push(room)
          return room
        },
        release: () => {}
      })
      await within5s(
        "every frame",
        (async () => {
          while (received.binaries.length < binaries.length) await sleep(5)
        })()
      )
      const digest = (bytes: Uint8Array) => Crypto.createHash("sha256").update(bytes).digest("hex")
      assert.deepStrictEqual(received.binaries.map(digest), binaries.map(digest))
      assert.deepStrictEqual(received.texts, [text])
      assert.isTrue(
        received.binaries.every((bytes, i) => bytes.buffer === reserved[i]!.buffer),
        "each payload is delivered in the memory reserved for it"
      )
      // the ping, answered in between: its pong went out with its payload
      const pong = clientFrames(server.received()).find((f) => f.opcode === 0xa)
      assert.strictEqual(pong?.payload.toString(), "ping")
      connection.terminate("done")
    } finally {
      server.close()
    }
  })
})

describe("webSocketClient: the connection's life", () => {
  it("frames, and the close, that come with the 101 are delivered once the listener comes", async () => {
    const server = await rawServer(() => {}, {
      answer: (key, socket) =>
        socket.write(
          Buffer.concat([
            Buffer.from(switching(key)),
            frame(0x1, Buffer.from("{\"early\":1}")),
            frame(0x2, Buffer.from([1, 2, 3])),
            frame(0x8, Raw.closePayload(1000))
          ])
        )
    })
    try {
      const connection = await open(server.url)
      await server.closed
      const { binaries, closed, texts } = listenTo(connection)
      assert.strictEqual(await within5s("onClose", closed), "the WebSocket closed (1000)")
      assert.deepStrictEqual(texts, ["{\"early\":1}"])
      assert.deepStrictEqual(binaries, [Buffer.from([1, 2, 3])])
    } finally {
      server.close()
    }
  })

  it("close(): one close frame however often it is called; a send after it fails with its reason, and nothing goes out", async () => {
    const server = await rawServer(() => {}, { answerClose: true })
    try {
      const connection = await open(server.url)
      const { closed } = listenTo(connection)
      connection.close()
      connection.close()
      assert.strictEqual(connection.closedReason(), "closed by this side")
      const failure = await new Promise<Error | null | undefined>((resolve) => connection.sendText("{}", resolve))
      assert.strictEqual(failure?.message, "closed by this side")
      assert.strictEqual(await within5s("onClose", closed), "closed by this side")
      await within5s("the server's end", server.closed)
      const sent = clientFrames(server.received())
      assert.deepStrictEqual(sent.map((f) => [f.opcode, f.payload.readUInt16BE(0)]), [[0x8, 1000]])
    } finally {
      server.close()
    }
  })

  it("after close(), a ping gets no pong and a protocol violation no second close frame", async () => {
    let sendAfterClose: () => void = () => {}
    const server = await rawServer((socket) => {
      sendAfterClose = () =>
        socket.write(
          Buffer.concat([
            frame(0x9, Buffer.from("ping")),
            Raw.frame({ opcode: 0x1, payload: "{}", mask: Uint8Array.of(1, 2, 3, 4) })
          ])
        )
    })
    try {
      const connection = await open(server.url)
      const { closed } = listenTo(connection)
      connection.close()
      for (let i = 0; i < 100 && clientFrames(server.received()).length === 0; i++) await sleep(20)
      sendAfterClose()
      assert.strictEqual(await within5s("onClose", closed), "closed by this side")
      await within5s("the server's end", server.closed)
      const sent = clientFrames(server.received())
      assert.deepStrictEqual(sent.map((f) => [f.opcode, f.payload.readUInt16BE(0)]), [[0x8, 1000]])
    } finally {
      server.close()
    }
  })

  it("terminate(): nothing more is delivered, not even the rest of the same read; the socket goes; sends fail with its reason", async () => {
    const server = await rawServer((socket) => {
      setTimeout(
        () => socket.write(Buffer.concat([frame(0x1, Buffer.from("one")), frame(0x1, Buffer.from("two"))])),
        50
      )
    })
    try {
      const connection = await open(server.url)
      const texts: Array<string> = []
      const closed = new Promise<string>((resolve) =>
        connection.listen({
          onText: (text) => {
            texts.push(text)
            connection.terminate("dropped by the test")
          },
          onBinary: () => {},
          onClose: resolve
        })
      )
      assert.strictEqual(await within5s("onClose", closed), "dropped by the test")
      assert.deepStrictEqual(texts, ["one"])
      assert.strictEqual(connection.closedReason(), "dropped by the test")
      const failure = await new Promise<Error | null | undefined>((resolve) => connection.sendText("{}", resolve))
      assert.strictEqual(failure?.message, "dropped by the test")
      await within5s("the server's end", server.closed)
      assert.deepStrictEqual(clientFrames(server.received()), [], "no close frame: the socket just went")
    } finally {
      server.close()
    }
  })

  it("a connect cancelled during the upgrade lets the socket go and reports nothing", async () => {
    const outcomes: Array<string> = []
    let accepted: () => void = () => {}
    const connected = new Promise<void>((resolve) => accepted = resolve)
    const server = await rawServer(() => {}, { answer: () => accepted() })
    try {
      const cancel = WebSocketClient.connect(server.url, clientOptions, {
        opened: () => outcomes.push("opened"),
        failed: (description) => outcomes.push(description)
      })
      await within5s("the upgrade request", connected)
      cancel()
      await within5s("the server's end", server.closed)
      await sleep(50)
      assert.deepStrictEqual(outcomes, [])
    } finally {
      server.close()
    }
  })

  it("a connection reset: onClose says so, and the upgrade's callbacks are not called again", async () => {
    const outcomes: Array<string> = []
    const server = await rawServer((socket) => setTimeout(() => socket.resetAndDestroy(), 50))
    try {
      const connection = await new Promise<WebSocketClient.Connection>((resolve) =>
        WebSocketClient.connect(server.url, clientOptions, {
          opened: (connection) => {
            outcomes.push("opened")
            resolve(connection)
          },
          failed: (description) => outcomes.push(description)
        })
      )
      const { closed } = listenTo(connection)
      assert.include(await within5s("onClose", closed), "ECONNRESET")
      assert.deepStrictEqual(outcomes, ["opened"])
    } finally {
      server.close()
    }
  })

  it("a server that keeps its end open after a violation: the socket is destroyed after the close timeout", async () => {
    const server = await rawServer((socket) => {
      setTimeout(() => socket.write(Raw.frame({ opcode: 0x1, payload: "{}", rsv: 4 })), 50)
    }, { allowHalfOpen: true })
    try {
      const connection = await open(server.url, { closeTimeoutMillis: 200 })
      const { closed } = listenTo(connection)
      // the server never hangs up: only the client's timer can end the socket, and with it onClose
      assert.include(await within5s("onClose", closed), "RSV")
    } finally {
      server.close()
    }
  })
})
