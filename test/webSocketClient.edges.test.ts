/**
 * The ws:// client (`webSocketClient.ts`) at its edges, found by a review: a raw TCP server on
 * 127.0.0.1 that speaks the handshake by hand and then writes crafted bytes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import * as Defaults from "../src/internal/defaults.ts"
import { ProcessRecords } from "../src/internal/remote/processRecords.ts"
import * as WebSocketClient from "../src/internal/rpc/webSocketClient.ts"
import * as Raw from "./support/rawWebSocketServer.ts"

/** A server frame (unmasked), in the shortest length form. */
const frame = (opcode: number, payload: Buffer, fin = true): Buffer => Raw.frame({ opcode, payload, fin })

/** The client frames in `bytes`, unmasked (whole frames only). */
const clientFrames = (bytes: Buffer) => Raw.parseFrames(bytes).frames

/**
 * A server that upgrades and then runs `script` on the socket; everything the
 * client sends after the upgrade is collected in `received`.
 */
const rawServer = (script: (socket: Net.Socket) => void) =>
  new Promise<{ url: URL; received: () => Buffer; close: () => void }>((resolve) => {
    let received = Buffer.alloc(0)
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      sockets.add(socket)
      let head = Buffer.alloc(0)
      let upgraded = false
      socket.on("error", () => {})
      socket.on("data", (data) => {
        if (upgraded) {
          received = Buffer.concat([received, data])
          return
        }
        head = Buffer.concat([head, data])
        const end = head.indexOf("\r\n\r\n")
        if (end === -1) return
        upgraded = true
        received = head.subarray(end + 4)
        const key = /sec-websocket-key: *(\S+)/i.exec(head.toString("latin1"))![1]!
        socket.write(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Accept: ${Raw.acceptFor(key)}\r\n\r\n`
        )
        script(socket)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      resolve({
        url: new URL(`ws://127.0.0.1:${port}/`),
        received: () => received,
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      })
    })
  })

const open = (url: URL) =>
  new Promise<WebSocketClient.Connection>((resolve, reject) =>
    WebSocketClient.connect(url, { headers: {}, maxPayload: 1 << 26, closeTimeoutMillis: 1000 }, {
      opened: resolve,
      failed: (description) => reject(new Error(description))
    })
  )

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
        assert.include(reason, valid ? String(code) : "close code")
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
