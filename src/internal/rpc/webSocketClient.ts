/**
 * The client end of a `ws://` WebSocket (RFC 6455), ours: the HTTP/1.1
 * upgrade, then frames (`webSocketFrames.ts`) read straight from the socket
 * into one reused buffer (Node's `onread`). `ws`'s client allocates a buffer
 * for every socket read and another for every frame that spans reads, and that
 * garbage cost a remote stream 4–5 × the CPU per GiB of its receiving alone
 * (bench/README.md); here a frame's payload is copied once, into memory of its
 * own size (for an output frame, the listener's reused memory), and nothing
 * else is allocated per read. The handshake is checked as `ws` checks it, and
 * failures say what went wrong in one line.
 *
 * @internal
 */
import { isUtf8 } from "node:buffer"
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import type { BinaryMemory } from "./transport.ts"
import { FrameError, FrameReader, isCloseCode, maskedFrame, opcodes } from "./webSocketFrames.ts"

/** What the connection needs to know. */
export interface ClientOptions {
  /** Extra request headers (`Authorization`). */
  readonly headers: Readonly<Record<string, string>>
  /** The largest message (one frame, or a fragmented message whole) taken from the server. */
  readonly maxPayload: number
  /** How long a close waits for the server's close frame before the socket is destroyed. */
  readonly closeTimeoutMillis: number
  /** How failures name the server (default: the URL as parsed). */
  readonly name?: string | undefined
}

/** Where frames, and the end, go once the connection is open. */
export interface MessageHandlers {
  readonly onText: (text: string) => void
  readonly onBinary: (bytes: Buffer) => void
  /** Where an unfragmented binary frame's payload is written (see `Transport.listen`). */
  readonly binaryMemory?: BinaryMemory | undefined
  readonly onClose: (reason: string) => void
}

/** What a write's caller hears: nothing once the OS took the frame, the error otherwise. */
type Done = (error?: Error | null) => void

/** An open connection, as the transport uses it. */
export interface Connection {
  /** Sends one text frame (a string, or its UTF-8 bytes); `done` once the OS took it, or the link failed. */
  readonly sendText: (text: string | Uint8Array, done: (error?: Error | null) => void) => void
  /** Sends one binary frame (masked into a copy: `bytes` may be reused at once); `done` as for text. */
  readonly sendBinary: (bytes: Uint8Array, done: (error?: Error | null) => void) => void
  /** Why nothing can be sent any more, once that is so. */
  readonly closedReason: () => string | undefined
  /** Bytes written and not yet taken by the OS. */
  readonly buffered: () => number
  readonly listen: (handlers: MessageHandlers) => void
  readonly pause: () => void
  readonly resume: () => void
  /** The close handshake: a close frame (1000), then the socket ends once the server answers, or after the timeout. */
  readonly close: () => void
  /** Ends the connection at once. */
  readonly terminate: (reason: string) => void
}

const acceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/** The longest handshake answer taken: more without its blank line is no WebSocket server. */
const maxHandshakeBytes = 64 * 1024
/** One read's memory, for every connection of this thread: each read is parsed, and what is kept copied, at once. */
const readBufferBytes = 256 * 1024
let readBuffer: Buffer | undefined
const sharedReadBuffer = (): Buffer => (readBuffer ??= Buffer.allocUnsafeSlow(readBufferBytes))
/**
 * A read goes straight into a frame's payload when this much of it is still
 * missing (`FrameReader.room`): the kernel's copy is the only one. Below it,
 * the copy out of the shared buffer costs less than a read of its own.
 */
const inPlaceReadBytes = 16 * 1024
/**
 * After a read that ended a frame in place, the next read takes this much:
 * the next frame's header (at most 10 bytes from a server) and a few bytes,
 * so that a stream of large frames has each payload read in place, not
 * copied out of the shared buffer up to its size.
 */
const headerReadBytes = 16

const httpPrefix = Buffer.from("HTTP/")
/** A header's name: an HTTP token (RFC 9110 5.6.2). */
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** What makes a request unsendable: a fragment in the URL, a header that would break the request's framing. */
const requestProblem = (url: URL, headers: Readonly<Record<string, string>>, name: string): string | undefined => {
  if (url.hash !== "") return `${name} contains a fragment identifier (${url.hash}): a WebSocket URL has none`
  for (const [header, value] of Object.entries(headers)) {
    if (!headerName.test(header)) return `invalid header name ${JSON.stringify(header)}`
    // a CR or LF would end the header and start another: a token with a newline must not add headers
    if (/[\0\r\n]/.test(value)) return `invalid character in the value of header ${header}`
  }
  return undefined
}

/** The request's headers: the caller's, and Basic credentials from the URL unless an Authorization is given. */
const requestHeaders = (url: URL, headers: Readonly<Record<string, string>>): Record<string, string> => {
  const hasAuthorization = Object.keys(headers).some((header) => header.toLowerCase() === "authorization")
  if (hasAuthorization || (url.username === "" && url.password === "")) return { ...headers }
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
  return { ...headers, Authorization: `Basic ${Buffer.from(credentials).toString("base64")}` }
}

/** The answer to the upgrade: `undefined` when it is a WebSocket's, else what is wrong with it. */
const handshakeProblem = (head: string, key: string, url: string): string | undefined => {
  const [statusLine = "", ...lines] = head.split("\r\n")
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]
  if (status === undefined) return `${url} did not answer as an HTTP server: ${JSON.stringify(statusLine.slice(0, 80))}`
  if (status === "401") return `${url} refused the connection: 401 Unauthorized (wrong or missing token)`
  if (status !== "101") return `${url} refused the WebSocket upgrade: HTTP ${status}`
  const headers = new Map<string, string>()
  for (const line of lines) {
    // a line that is not `name: value` fails the answer, as it fails Node's HTTP parser under ws
    const colon = line.indexOf(":")
    const name = line.slice(0, Math.max(colon, 0))
    if (!headerName.test(name)) {
      return `${url} answered with a malformed header line: ${JSON.stringify(line.slice(0, 80))}`
    }
    headers.set(name.toLowerCase(), line.slice(colon + 1).trim())
  }
  if (headers.get("upgrade")?.toLowerCase() !== "websocket") return `${url} answered 101 without Upgrade: websocket`
  if (!/(^|,)\s*upgrade\s*(,|$)/i.test(headers.get("connection") ?? "")) {
    return `${url} answered 101 without Connection: Upgrade`
  }
  const accept = Crypto.createHash("sha1").update(key + acceptGuid).digest("base64")
  if (headers.get("sec-websocket-accept") !== accept) return `${url} answered 101 with a wrong Sec-WebSocket-Accept`
  if (headers.has("sec-websocket-extensions")) return `${url} answered with an extension this client did not ask for`
  if (headers.has("sec-websocket-protocol")) return `${url} answered with a subprotocol this client did not ask for`
  return undefined
}

/** Where the upgrade's outcome goes. */
interface Callbacks {
  readonly opened: (connection: Connection) => void
  readonly failed: (description: string) => void
}

/** One connection, from the upgrade to the socket's close. */
class ClientSocket implements Connection {
  private state: "handshake" | "open" | "closing" | "closed" = "handshake"
  private handshake = Buffer.alloc(0)
  private closedBecause: string | undefined
  private handlers: MessageHandlers | undefined
  private closeTimer: NodeJS.Timeout | undefined
  /** Frames that arrived before `listen` (the first ones may come with the handshake's answer). */
  private readonly early: Array<() => void> = []
  private readonly reader: FrameReader
  /** The room of a payload the read under way goes into (`FrameReader.room`), if it does. */
  private inPlace: Buffer | undefined
  /** The last read ended a frame in place: the next one takes a header first. */
  private endedInPlace = false
  private readonly key = Crypto.randomBytes(16).toString("base64")
  readonly socket: Net.Socket
  private readonly url: URL
  private readonly name: string
  private readonly options: ClientOptions
  private readonly callbacks: Callbacks

  constructor(url: URL, name: string, options: ClientOptions, callbacks: Callbacks) {
    this.url = url
    this.name = name
    this.options = options
    this.callbacks = callbacks
    this.reader = new FrameReader(options.maxPayload, (opcode, payload) => this.onMessage(opcode, payload))
    this.socket = Net.connect({
      host: url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === "" ? 80 : Number(url.port),
      onread: {
        buffer: () => this.nextReadBuffer(),
        callback: (length, buffer) => {
          if (buffer === this.inPlace) this.takeInPlace(length)
          else {
            this.endedInPlace = false
            const bytes = (buffer as Buffer).subarray(0, length)
            if (this.state === "handshake") this.takeHandshake(bytes)
            else this.takeFrames(bytes)
          }
          // a pause during this read has stopped reading already: `socket.pause` does, here as anywhere
          return true
        }
      }
    })
    this.socket.setNoDelay(true)
    this.socket.once("connect", () => this.socket.write(this.upgradeRequest()))
    this.socket.on("error", (error) => this.onError(error))
    this.socket.once("close", () => this.onSocketClose())
  }

  private upgradeRequest(): string {
    const { url } = this
    // a ws: URL's path is never empty ("ws://host" has "/")
    const path = `${url.pathname}${url.search}`
    const extra = Object.entries(requestHeaders(url, this.options.headers)).map(([header, value]) =>
      `${header}: ${value}\r\n`
    ).join("")
    return `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  }

  /** The upgrade failed: the socket goes, the caller hears why. */
  private refuse(description: string): void {
    this.state = "closed"
    this.socket.destroy()
    this.callbacks.failed(description)
  }

  /** The bytes of one read, during the handshake: its answer, then maybe the first frames. */
  private takeHandshake(bytes: Buffer): void {
    const handshake = (this.handshake = Buffer.concat([this.handshake, bytes]))
    // another protocol on this port (an SSH banner, TLS): said at once, not at the connect timeout
    if (!handshake.subarray(0, httpPrefix.length).equals(httpPrefix.subarray(0, handshake.length))) {
      const line = handshake.toString("latin1", 0, Math.min(handshake.length, 80)).split("\r\n")[0]!
      return this.refuse(`${this.name} did not answer as an HTTP server: ${JSON.stringify(line)}`)
    }
    const end = handshake.indexOf("\r\n\r\n")
    if (end === -1) {
      if (handshake.length <= maxHandshakeBytes) return
      return this.refuse(`${this.name} sent over ${maxHandshakeBytes} bytes of handshake header without its end`)
    }
    const problem = handshakeProblem(handshake.toString("latin1", 0, end), this.key, this.name)
    if (problem !== undefined) return this.refuse(problem)
    this.handshake = Buffer.alloc(0)
    this.state = "open"
    this.callbacks.opened(this)
    // the first frames, when they came with the answer (none: the reader takes nothing)
    this.takeFrames(handshake.subarray(end + 4))
  }

  /**
   * Where the next read goes (Node asks after each read): the rest of a
   * payload in place where `FrameReader.room` gives it, a header's worth of
   * the shared buffer right after a frame that ended in place, else the
   * shared buffer.
   */
  private nextReadBuffer(): Buffer {
    this.inPlace = this.state === "open" ? this.reader.room(inPlaceReadBytes) : undefined
    if (this.inPlace !== undefined) return this.inPlace
    const shared = sharedReadBuffer()
    return this.endedInPlace && this.reader.betweenFrames ? shared.subarray(0, headerReadBytes) : shared
  }

  /** A read went straight into the payload under way. */
  private takeInPlace(bytes: number): void {
    this.inPlace = undefined
    try {
      this.reader.filled(bytes)
      this.endedInPlace = this.reader.betweenFrames
    } catch (error) {
      if (!(error instanceof FrameError)) throw error
      this.fail(error.code, error.description)
    }
  }

  private takeFrames(bytes: Buffer): void {
    try {
      this.reader.push(bytes)
    } catch (error) {
      if (!(error instanceof FrameError)) throw error
      this.fail(error.code, error.description)
    }
  }

  private onMessage(opcode: number, payload: Buffer): void {
    switch (opcode) {
      case opcodes.text:
        if (!isUtf8(payload)) return this.fail(1007, "invalid WebSocket frame: text that is not UTF-8")
        return this.deliver((h) => h.onText(payload.toString("utf8")))
      case opcodes.binary:
        return this.deliver((h) => h.onBinary(payload))
      case opcodes.ping:
        if (this.state === "open") {
          this.writeFrame(maskedFrame(opcodes.pong, payload.length, (frame, at) => payload.copy(frame, at)))
        }
        return
      case opcodes.close:
        return this.onServerClose(payload)
    }
  }

  /** The server closes first: its code echoed, then our end of the socket. */
  private onServerClose(payload: Buffer): void {
    this.reader.stopped = true
    if (payload.length === 1) return this.fail(1002, "invalid WebSocket frame: a close frame of 1 byte")
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
    if (payload.length >= 2 && !isCloseCode(code)) return this.fail(1002, `invalid WebSocket frame: close code ${code}`)
    if (!isUtf8(payload.subarray(2))) {
      return this.fail(1007, "invalid WebSocket frame: a close reason that is not UTF-8")
    }
    // "" when there is no reason: `toString` from past the end is empty
    const reason = payload.toString("utf8", 2)
    this.closedBecause ??= `the WebSocket closed (${code}${reason.length > 0 ? ` ${reason}` : ""})`
    if (this.state === "open") this.sendClose(code === 1005 ? 1000 : code)
    this.endSocket()
  }

  /** Ends with `reason`: a close frame with `code` when the socket can still take one, then the socket ends. */
  private fail(code: number, reason: string): void {
    this.reader.stopped = true
    this.closedBecause ??= reason
    if (this.state === "open") this.sendClose(code)
    this.endSocket()
  }

  /** Our end of the socket; a server that keeps its own open gets no longer than the close timeout. */
  private endSocket(): void {
    this.state = "closed"
    this.socket.end()
    this.closeTimer ??= setTimeout(() => this.socket.destroy(), this.options.closeTimeoutMillis)
  }

  private onError(error: Error): void {
    this.closedBecause ??= error.message
    if (this.state === "handshake") {
      this.state = "closed"
      this.callbacks.failed(`cannot connect to ${this.name}: ${error.message}`)
    }
  }

  private onSocketClose(): void {
    clearTimeout(this.closeTimer)
    this.reader.abandon()
    if (this.state === "handshake") {
      this.state = "closed"
      return this.callbacks.failed(`${this.name} closed the connection before the WebSocket upgrade`)
    }
    this.state = "closed"
    const reason = (this.closedBecause ??= "the WebSocket closed (1006)")
    this.deliver((h) => h.onClose(reason))
  }

  private deliver(event: (handlers: MessageHandlers) => void): void {
    if (this.handlers !== undefined) event(this.handlers)
    else this.early.push(() => event(this.handlers!))
  }

  private writeFrame(frame: Buffer, done?: (error?: Error | null) => void): void {
    if (this.socket.writable) this.socket.write(frame, done)
    else done?.(new Error(this.closedBecause ?? "the WebSocket is not open"))
  }

  private sendClose(code: number): void {
    this.writeFrame(maskedFrame(opcodes.close, 2, (frame, at) => frame.writeUInt16BE(code, at)))
  }

  /**
   * Sends a data frame while open; `done` fails at once otherwise. Every way
   * out of "open" says why first, so a reason is what "not open" is.
   */
  private sendData(opcode: number, length: number, fill: (frame: Buffer, at: number) => void, done: Done): void {
    if (this.closedBecause !== undefined) return done(new Error(this.closedBecause))
    this.writeFrame(maskedFrame(opcode, length, fill), done)
  }

  // Connection

  readonly sendText = (text: string | Uint8Array, done: Done): void =>
    typeof text === "string"
      ? this.sendData(opcodes.text, Buffer.byteLength(text), (frame, at) => frame.write(text, at), done)
      : this.sendData(opcodes.text, text.length, (frame, at) => frame.set(text, at), done)

  readonly sendBinary = (bytes: Uint8Array, done: Done): void =>
    this.sendData(opcodes.binary, bytes.length, (frame, at) => frame.set(bytes, at), done)

  readonly closedReason = (): string | undefined => this.closedBecause

  readonly buffered = (): number => this.socket.writableLength

  readonly listen = (handlers: MessageHandlers): void => {
    this.handlers = handlers
    this.reader.binaryMemory = handlers.binaryMemory
    for (const event of this.early.splice(0)) event()
  }

  readonly pause = (): void => void this.socket.pause()

  readonly resume = (): void => void this.socket.resume()

  readonly close = (): void => {
    if (this.state !== "open") return
    this.closedBecause ??= "closed by this side"
    this.state = "closing"
    this.sendClose(1000)
    this.closeTimer = setTimeout(() => this.socket.destroy(), this.options.closeTimeoutMillis)
  }

  /** Ends the connection at once: nothing more is delivered, not even the rest of the read under way. */
  readonly terminate = (reason: string): void => {
    this.reader.stopped = true
    this.closedBecause ??= reason
    this.state = "closed"
    this.socket.destroy()
  }

  /** A connect interrupted (or timed out) before the upgrade. */
  readonly cancel = (): void => {
    // only ever called before the upgrade's outcome: whatever the socket does now, nobody hears of it
    this.state = "closed"
    this.socket.destroy()
  }
}

/**
 * Connects to `url` (a `ws://` URL) and upgrades: `opened` with the
 * connection, or `failed` with why not. Returns a cancel that destroys the
 * socket (a connect interrupted or timed out).
 */
export const connect = (url: URL, options: ClientOptions, callbacks: Callbacks): () => void => {
  const name = options.name ?? url.href
  const refused = requestProblem(url, options.headers, name)
  if (refused !== undefined) {
    callbacks.failed(refused)
    return () => {}
  }
  return new ClientSocket(url, name, options, callbacks).cancel
}
