/**
 * A WebSocket server scripted byte by byte, for the client's frame- and
 * handshake-level tests: a plain TCP server on 127.0.0.1 that reads the
 * client's HTTP upgrade request, answers what the test says (a correct 101 by
 * default), then writes whatever bytes the test builds and records the frames
 * the client sends (unmasked, with their MASK bit kept). Nothing from `src/`
 * and no WebSocket library runs on this side of the wire.
 *
 * Waits are woken by the socket; each gives up after 10 s of real time, so a
 * client that hangs fails a test instead of hanging it.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import * as Net from "node:net"
import { waitUntil } from "./waitUntil.ts"

/** The GUID RFC 6455 appends to the client's key before hashing it. */
const acceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/** The `Sec-WebSocket-Accept` a server answers `key` with. */
export const acceptFor = (key: string): string => createHash("sha1").update(key + acceptGuid).digest("base64")

/** The opcodes of RFC 6455. */
export const Opcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa
} as const

/** How a frame says its payload length: in the 7 bits, or in 16 or 64 more. */
export type LengthForm = 7 | 16 | 64

/** What `frame` builds. */
export interface FrameSpec {
  /** Final fragment (default true). */
  readonly fin?: boolean
  /** The three RSV bits, as a number 0–7 (RSV1 is 4; default 0). */
  readonly rsv?: number
  readonly opcode: number
  /** A mask key: the payload is masked with it and the MASK bit set (a server must not). */
  readonly mask?: Uint8Array | undefined
  readonly payload?: string | Uint8Array
  /** The length encoding (default the shortest that fits). */
  readonly lengthForm?: LengthForm
  /**
   * The length the header claims, when it is not the payload's: a header for
   * bytes streamed after it, or an impossible size. A bigint says all 64 bits.
   */
  readonly claimedLength?: number | bigint
}

/** The bytes of one frame as `spec` says, header and (masked) payload. */
export const frame = (spec: FrameSpec): Buffer => {
  const payload = typeof spec.payload === "string"
    ? Buffer.from(spec.payload, "utf8")
    : Buffer.from(spec.payload ?? new Uint8Array(0))
  const length = spec.claimedLength ?? payload.length
  const form = spec.lengthForm ?? (length < 126 ? 7 : length < 65_536 ? 16 : 64)
  const extra = form === 7 ? 0 : form === 16 ? 2 : 8
  const header = Buffer.alloc(2 + extra + (spec.mask === undefined ? 0 : 4))
  header[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | spec.opcode
  header[1] = spec.mask === undefined ? 0 : 0x80
  if (form === 7) header[1] |= Number(length)
  else if (form === 16) {
    header[1] |= 126
    header.writeUInt16BE(Number(length), 2)
  } else {
    header[1] |= 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  if (spec.mask !== undefined) {
    header.set(spec.mask, 2 + extra)
    for (let i = 0; i < payload.length; i++) payload[i]! ^= spec.mask[i % 4]!
  }
  return Buffer.concat([header, payload])
}

/** The payload of a close frame: the status code, then the reason. */
export const closePayload = (code: number, reason = ""): Buffer => {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason))
  body.writeUInt16BE(code, 0)
  body.write(reason, 2)
  return body
}

/** A frame the client sent, unmasked. */
export interface ClientFrame {
  readonly fin: boolean
  readonly rsv: number
  readonly opcode: number
  readonly masked: boolean
  readonly payload: Buffer
}

/** The status code of a close frame's payload, undefined when it has none. */
export const closeCode = (frame: ClientFrame): number | undefined =>
  frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined

/**
 * The whole frames at the start of `bytes`, unmasked, and the offset where
 * the first incomplete one starts. Lengths past 2^53 are not expected from
 * a client under test.
 */
export const parseFrames = (bytes: Buffer): { readonly frames: Array<ClientFrame>; readonly consumed: number } => {
  const frames: Array<ClientFrame> = []
  let at = 0
  while (bytes.length - at >= 2) {
    const first = bytes[at]!
    const second = bytes[at + 1]!
    const masked = (second & 0x80) !== 0
    let length = second & 0x7f
    let cursor = at + 2
    if (length === 126) {
      if (bytes.length - cursor < 2) break
      length = bytes.readUInt16BE(cursor)
      cursor += 2
    } else if (length === 127) {
      if (bytes.length - cursor < 8) break
      length = Number(bytes.readBigUInt64BE(cursor))
      cursor += 8
    }
    const key = masked ? bytes.subarray(cursor, cursor + 4) : undefined
    if (masked) cursor += 4
    if (bytes.length - cursor < length) break
    const payload = Buffer.from(bytes.subarray(cursor, cursor + length))
    if (key !== undefined) { for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i % 4]! }
    frames.push({ fin: (first & 0x80) !== 0, rsv: (first >> 4) & 0x7, opcode: first & 0x0f, masked, payload })
    at = cursor + length
  }
  return { frames, consumed: at }
}

/** The client's upgrade request. */
export interface UpgradeRequest {
  /** The request line's method, target and version (`GET`, `/path?x=1`, `HTTP/1.1`). */
  readonly method: string
  readonly target: string
  readonly version: string
  /** Header values by lower-case name (the last of repeated names). */
  readonly headers: Readonly<Record<string, string>>
}

/** The 101 a correct server answers `request` with, its headers' end included. */
export const switchingProtocols = (request: UpgradeRequest): string =>
  "HTTP/1.1 101 Switching Protocols\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  `Sec-WebSocket-Accept: ${acceptFor(request.headers["sec-websocket-key"] ?? "")}\r\n\r\n`

/** A set of wake-ups for waits on changing state. */
export const wakers = () => {
  const waiting = new Set<() => void>()
  return {
    wake: () => {
      for (const wake of [...waiting]) wake()
    },
    listen: (wake: () => void) => {
      waiting.add(wake)
      return () => void waiting.delete(wake)
    }
  }
}

/**
 * Runs `effect`, dying if it has not ended after 10 s of real time (a Node
 * timer, whatever clock the test runs): a hang fails an assertion, not the
 * test's timeout.
 */
export const within10s = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.raceFirst(
    effect,
    Effect.callback<never>((resume) => {
      const timer = setTimeout(() => resume(Effect.die(new Error(`waited 10 s for ${what}`))), 10_000)
      return Effect.sync(() => clearTimeout(timer))
    })
  )

/** One client connection, as a test drives it. */
export interface RawConnection {
  readonly index: number
  readonly socket: Net.Socket
  /** The upgrade request, once its headers' end arrived. */
  readonly request: () => UpgradeRequest | undefined
  /** The frames the client sent after the handshake, in order. */
  readonly frames: ReadonlyArray<ClientFrame>
  /** Writes bytes as one TCP write; completes once the OS took them (or the socket is gone). */
  readonly write: (bytes: Uint8Array | string) => Effect.Effect<void>
  /**
   * Writes `bytes` as many TCP writes of the sizes given (cycled), each one
   * sent on its own (Nagle off, a short real pause between them).
   */
  readonly writeInPieces: (bytes: Uint8Array, sizes: ReadonlyArray<number>) => Effect.Effect<void>
  /**
   * Streams `count` bytes from one reused buffer (the test's memory stays
   * small), waiting for the OS; stops early once the client is gone.
   * Returns how many bytes were written.
   */
  readonly stream: (count: number) => Effect.Effect<number>
  /** Sends a close frame saying `code` and `reason` (then the client's close is not echoed). */
  readonly sendClose: (code: number, reason?: string) => Effect.Effect<void>
  /** Waits for a client frame with `opcode`; returns the first such one. */
  readonly whenFrame: (opcode: number) => Effect.Effect<ClientFrame>
  /** Waits until the client sent `count` frames with `opcode`; returns them. */
  readonly whenFrames: (opcode: number, count: number) => Effect.Effect<ReadonlyArray<ClientFrame>>
  /** Waits until the TCP connection is closed (by either side). */
  readonly whenClosed: Effect.Effect<void>
  /** Whether the client ended its side (sent FIN) or reset the connection. */
  readonly clientLeft: () => boolean
  /** Ends the connection at once (a network cut). */
  readonly destroy: () => void
}

export interface RawServerOptions {
  /**
   * Answers the upgrade request (default a correct 101): may write anything,
   * or nothing, or destroy the socket.
   */
  readonly respond?: (request: UpgradeRequest, connection: RawConnection) => void
  /** Runs on each accepted TCP connection, before anything is read (default nothing). */
  readonly onAccept?: (connection: RawConnection) => void
  /**
   * Whether a close frame from the client is answered, as a server should:
   * with a close frame (unless one was sent already) and the end of the TCP
   * connection (default true).
   */
  readonly answerClose?: boolean
  /** Runs on each frame the client sends after the handshake. */
  readonly onFrame?: (frame: ClientFrame, connection: RawConnection) => void
}

export interface RawServer {
  readonly port: number
  /** `ws://127.0.0.1:PORT` and `path` (default none). */
  readonly url: (path?: string) => string
  /** Waits for the `index`th TCP connection (0 the first). */
  readonly connection: (index?: number) => Effect.Effect<RawConnection>
  /** Connections accepted so far. */
  readonly connections: () => number
}

/** A raw WebSocket server for the current scope. */
export const rawWebSocketServer = (options: RawServerOptions = {}): Effect.Effect<RawServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: RawServer; readonly close: () => void }>((resume) => {
      const accepted: Array<RawConnection> = []
      const acceptWakers = wakers()
      const server = Net.createServer((socket) => {
        accepted.push(makeConnection(socket, accepted.length, options))
        acceptWakers.wake()
      })
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as Net.AddressInfo).port
        resume(Effect.succeed({
          server: {
            port,
            url: (path = "") => `ws://127.0.0.1:${port}${path}`,
            connections: () => accepted.length,
            connection: (index = 0) => waitUntil(`connection ${index}`, () => accepted[index], acceptWakers.listen)
          },
          close: () => {
            for (const connection of accepted) connection.destroy()
            server.close()
          }
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ server }) => server))

/** The request line and headers of `head` (the bytes before the blank line). */
const parseRequest = (head: string): UpgradeRequest => {
  const [requestLine = "", ...lines] = head.split("\r\n")
  const [method = "", target = "", version = ""] = requestLine.split(" ")
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(":")
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { method, target, version, headers }
}

const makeConnection = (socket: Net.Socket, index: number, options: RawServerOptions): RawConnection => {
  const changed = wakers()
  const frames: Array<ClientFrame> = []
  let request: UpgradeRequest | undefined
  let pending: Buffer = Buffer.alloc(0)
  let closed = false
  let left = false
  let sentClose = false
  socket.setNoDelay(true)
  socket.on("error", () => {
    left = true
  })
  socket.on("end", () => {
    left = true
    changed.wake()
  })
  socket.on("close", () => {
    closed = true
    changed.wake()
  })
  const write = (bytes: Uint8Array | string) =>
    Effect.callback<void>((resume) => {
      if (socket.destroyed || !socket.writable) return resume(Effect.void)
      socket.write(bytes, () => resume(Effect.void))
    })
  const connection: RawConnection = {
    index,
    socket,
    request: () => request,
    frames,
    write,
    writeInPieces: (bytes, sizes) =>
      Effect.gen(function*() {
        let at = 0
        for (let piece = 0; at < bytes.length; piece++) {
          const size = Math.max(1, sizes[piece % sizes.length]!)
          yield* write(bytes.subarray(at, at + size))
          at += size
          // a real pause, so each piece reaches the client as a read of its own
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
        }
      }),
    stream: (count) =>
      Effect.gen(function*() {
        const chunk = Buffer.alloc(Math.min(count, 256 * 1024), 0x61)
        let written = 0
        while (written < count && !closed && !socket.destroyed && socket.writable) {
          const size = Math.min(chunk.length, count - written)
          yield* write(size === chunk.length ? chunk : chunk.subarray(0, size))
          written += size
        }
        return written
      }),
    sendClose: (code, reason) => {
      sentClose = true
      return write(frame({ opcode: Opcode.close, payload: closePayload(code, reason) }))
    },
    whenFrames: (opcode, count) =>
      waitUntil(`${count} client frames with opcode ${opcode}`, () => {
        const sent = frames.filter((f) => f.opcode === opcode)
        return sent.length >= count ? sent : undefined
      }, changed.listen),
    whenFrame: (opcode) =>
      waitUntil(`a client frame with opcode ${opcode}`, () => frames.find((f) => f.opcode === opcode), changed.listen),
    whenClosed: waitUntil("the connection to close", () => closed ? true : undefined, changed.listen).pipe(
      Effect.asVoid
    ),
    clientLeft: () => left,
    destroy: () => socket.destroy()
  }
  socket.on("data", (data: Buffer) => {
    pending = pending.length === 0 ? data : Buffer.concat([pending, data])
    if (request === undefined) {
      const end = pending.indexOf("\r\n\r\n")
      if (end < 0) return
      request = parseRequest(pending.subarray(0, end).toString("latin1"))
      pending = pending.subarray(end + 4)
      changed.wake()
      if (options.respond === undefined) socket.write(switchingProtocols(request))
      else options.respond(request, connection)
    }
    const parsed = parseFrames(pending)
    pending = pending.subarray(parsed.consumed)
    for (const received of parsed.frames) {
      frames.push(received)
      options.onFrame?.(received, connection)
      if (received.opcode === Opcode.close && options.answerClose !== false && !socket.destroyed) {
        if (!sentClose) {
          sentClose = true
          socket.write(frame({ opcode: Opcode.close, payload: received.payload.subarray(0, 2) }))
        }
        socket.end()
      }
    }
    if (parsed.frames.length > 0) changed.wake()
  })
  options.onAccept?.(connection)
  return connection
}
