/**
 * A deliberately dumb exec-server client for wire-level tests: a plain `ws`
 * WebSocket, JSON frames in and out, and waits (with timeouts, so nothing
 * hangs) for a reply by id or for a notification. No library code from
 * `src/` is used on this side of the wire.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import WebSocket from "ws"

/** Any frame the server sends, as parsed JSON. */
export interface Frame {
  readonly id?: string | number | null
  readonly method?: string
  readonly params?: any
  readonly result?: any
  readonly error?: { readonly code: number; readonly message: string; readonly data?: unknown }
  readonly jsonrpc?: string
}

/** A frame with the time (ms since connect) it arrived. */
export interface Received {
  readonly at: number
  readonly frame: Frame
}

export interface ConnectOptions {
  readonly headers?: Record<string, string>
  readonly origin?: string
  /** How long a single wait may take before the test fails (default 10 s: a wait for a process on a busy machine). */
  readonly timeoutMs?: number
  /** The local address to connect from (another loopback address, `127.0.0.2`, is another client address). */
  readonly localAddress?: string
}

export interface WireClient {
  readonly socket: WebSocket
  /** Every frame received so far, in arrival order (binary frames that hold JSON too). */
  readonly received: ReadonlyArray<Received>
  /** Every binary frame received so far, as bytes, in arrival order. */
  readonly binary: ReadonlyArray<Buffer>
  /** Milliseconds since the connection opened. */
  readonly now: () => number
  /** Sends a frame as is (text by default). */
  readonly sendRaw: (data: string | Buffer, options?: { readonly binary?: boolean }) => Effect.Effect<void>
  /** Sends a request without waiting; returns its id. */
  readonly send: (
    method: string,
    params?: unknown,
    options?: { readonly id?: string | number; readonly jsonrpc?: boolean; readonly binary?: boolean }
  ) => Effect.Effect<string | number>
  /** Sends a notification. */
  readonly notify: (method: string, params?: unknown, options?: { readonly jsonrpc?: boolean }) => Effect.Effect<void>
  /** Waits for the reply to `id`. */
  readonly reply: (id: string | number, timeoutMs?: number) => Effect.Effect<Frame>
  /** Sends a request and waits for its reply (success or error). */
  readonly request: (
    method: string,
    params?: unknown,
    options?: {
      readonly id?: string | number
      readonly jsonrpc?: boolean
      readonly binary?: boolean
      readonly timeoutMs?: number
    }
  ) => Effect.Effect<Frame>
  /** Sends a request and returns its `result`; dies when the reply is an error. */
  readonly call: (method: string, params?: unknown) => Effect.Effect<any>
  /** Sends a request and returns its `error`; dies when the reply is a success. */
  readonly callError: (method: string, params?: unknown) => Effect.Effect<NonNullable<Frame["error"]>>
  /** Waits for the first frame (already received or not) matching `predicate`. */
  readonly waitFor: (
    description: string,
    predicate: (frame: Frame) => boolean,
    timeoutMs?: number
  ) => Effect.Effect<Frame>
  /** The params of every notification `method` received so far, optionally for one process. */
  readonly notifications: (method: string, processId?: string) => ReadonlyArray<any>
  /** Waits for the first notification `method` for `processId` matching `predicate`; returns its params. */
  readonly notification: (
    method: string,
    processId: string,
    predicate?: (params: any) => boolean,
    timeoutMs?: number
  ) => Effect.Effect<any>
  /** Closes the socket and waits until it is closed. */
  readonly close: Effect.Effect<void>
  /** Completes once the socket is closed (by either side). */
  readonly closed: Effect.Effect<void>
  /** The close code and reason, once the socket is closed. */
  readonly closeInfo: () => { readonly code: number; readonly reason: string } | undefined
  /** Waits (up to `timeoutMs`, default 10 s) for the socket to close; returns the close code and reason. */
  readonly closedWithin: (timeoutMs?: number) => Effect.Effect<{ readonly code: number; readonly reason: string }>
  /** Sends every frame at once (all handed to the socket before any completes), then waits until all are written. */
  readonly sendAll: (
    frames: ReadonlyArray<string | Buffer>,
    options?: { readonly binary?: boolean }
  ) => Effect.Effect<void>
}

const describeFrames = (received: ReadonlyArray<Received>) =>
  received.slice(-20).map((r) => `  +${r.at}ms ${JSON.stringify(r.frame)}`).join("\n")

const wrap = (socket: WebSocket, timeoutMs: number): WireClient => {
  const opened = Date.now()
  const now = () => Date.now() - opened
  const received: Array<Received> = []
  const binary: Array<Buffer> = []
  const listeners = new Set<() => void>()
  let isClosed = socket.readyState === WebSocket.CLOSED
  let closeInfo: { readonly code: number; readonly reason: string } | undefined
  let nextId = 1

  socket.on("message", (data: Buffer, isBinary: boolean) => {
    if (isBinary) binary.push(Buffer.from(data))
    const text = Buffer.from(data).toString("utf8")
    let frame: Frame | undefined
    try {
      frame = JSON.parse(text)
    } catch {
      // a binary frame that is no JSON (an output frame) is in `binary` only
      if (!isBinary) frame = { method: "<unparsable server frame>", params: { text, isBinary } }
    }
    if (frame !== undefined) received.push({ at: now(), frame })
    for (const listener of [...listeners]) listener()
  })
  socket.on("close", (code: number, reason: Buffer) => {
    closeInfo = { code, reason: reason.toString() }
    isClosed = true
    for (const listener of [...listeners]) listener()
  })
  socket.on("error", () => {})

  const waitUntil = <A>(description: string, check: () => A | undefined, timeout = timeoutMs): Effect.Effect<A> =>
    Effect.callback<A>((resume) => {
      let done = false
      const finish = (effect: Effect.Effect<A>) => {
        if (done) return
        done = true
        listeners.delete(listener)
        clearTimeout(timer)
        resume(effect)
      }
      const listener = () => {
        const found = check()
        if (found !== undefined) finish(Effect.succeed(found))
      }
      const timer = setTimeout(
        () =>
          finish(Effect.die(
            new Error(
              `timed out after ${timeout} ms waiting for ${description}; last frames:\n${describeFrames(received)}`
            )
          )),
        timeout
      )
      listeners.add(listener)
      listener()
      return Effect.sync(() => {
        done = true
        listeners.delete(listener)
        clearTimeout(timer)
      })
    })

  const sendRaw = (data: string | Buffer, options: { readonly binary?: boolean } = {}) =>
    Effect.callback<void>((resume) => {
      socket.send(data, { binary: options.binary ?? false }, (error) => resume(error ? Effect.die(error) : Effect.void))
    })

  const send: WireClient["send"] = (method, params, options = {}) =>
    Effect.suspend(() => {
      const id = options.id ?? nextId++
      const message = {
        ...(options.jsonrpc ? { jsonrpc: "2.0" } : {}),
        id,
        method,
        ...(params === undefined ? {} : { params })
      }
      const text = JSON.stringify(message)
      return Effect.as(
        sendRaw(options.binary ? Buffer.from(text, "utf8") : text, { binary: options.binary ?? false }),
        id
      )
    })

  const reply = (id: string | number, timeout = timeoutMs) =>
    waitUntil(
      `the reply to request ${JSON.stringify(id)}`,
      () => received.find((r) => r.frame.method === undefined && r.frame.id === id)?.frame,
      timeout
    )

  const request: WireClient["request"] = (method, params, options = {}) =>
    Effect.flatMap(send(method, params, options), (id) => reply(id, options.timeoutMs))

  const waitFor: WireClient["waitFor"] = (description, predicate, timeout) =>
    waitUntil(description, () => received.find((r) => predicate(r.frame))?.frame, timeout)

  const notifications: WireClient["notifications"] = (method, processId) =>
    received
      .filter((r) =>
        r.frame.method === method && r.frame.id === undefined &&
        (processId === undefined || r.frame.params?.processId === processId)
      )
      .map((r) => r.frame.params)

  return {
    socket,
    received,
    binary,
    now,
    sendRaw,
    send,
    notify: (method, params, options = {}) =>
      sendRaw(JSON.stringify({
        ...(options.jsonrpc ? { jsonrpc: "2.0" } : {}),
        method,
        ...(params === undefined ? {} : { params })
      })),
    reply,
    request,
    call: (method, params) =>
      Effect.flatMap(request(method, params), (frame) =>
        frame.error === undefined
          ? Effect.succeed(frame.result)
          : Effect.die(new Error(`${method} failed: ${JSON.stringify(frame.error)}`))),
    callError: (method, params) =>
      Effect.flatMap(request(method, params), (frame) =>
        frame.error !== undefined
          ? Effect.succeed(frame.error)
          : Effect.die(new Error(`${method} succeeded but an error was expected: ${JSON.stringify(frame.result)}`))),
    waitFor,
    notifications,
    notification: (method, processId, predicate = () => true, timeout) =>
      Effect.map(
        waitFor(
          `notification ${method} for ${processId}`,
          (frame) =>
            frame.method === method && frame.id === undefined && frame.params?.processId === processId &&
            predicate(frame.params),
          timeout
        ),
        (frame) => frame.params
      ),
    close: Effect.suspend(() => {
      if (!isClosed) socket.close()
      return waitUntil("the socket to close", () => (isClosed ? true : undefined))
    }).pipe(Effect.asVoid),
    closed: waitUntil("the socket to close", () => (isClosed ? true : undefined), 60_000).pipe(Effect.asVoid),
    closeInfo: () => closeInfo,
    closedWithin: (timeout = timeoutMs) =>
      waitUntil("the socket to close", () => (isClosed ? closeInfo ?? { code: 0, reason: "" } : undefined), timeout),
    sendAll: (frames, options = {}) =>
      Effect.callback<void>((resume) => {
        let remaining = frames.length
        let failed = false
        if (remaining === 0) return resume(Effect.void)
        for (const frame of frames) {
          socket.send(frame, { binary: options.binary ?? false }, (error) => {
            if (failed) return
            if (error) {
              failed = true
              return resume(Effect.die(error))
            }
            if (--remaining === 0) resume(Effect.void)
          })
        }
      })
  }
}

/**
 * Opens a WebSocket to `url` for the current scope (closing the scope
 * terminates it). Dies when the upgrade is refused.
 */
export const connect = (url: string, options: ConnectOptions = {}): Effect.Effect<WireClient, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<WebSocket>((resume) => {
      const socket = new WebSocket(url, {
        headers: options.headers ?? {},
        ...(options.origin === undefined ? {} : { origin: options.origin }),
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress })
      })
      const timer = setTimeout(() => {
        socket.terminate()
        resume(Effect.die(new Error(`could not connect to ${url} within 5 s`)))
      }, 5_000)
      socket.once("open", () => {
        clearTimeout(timer)
        resume(Effect.succeed(socket))
      })
      socket.once("unexpected-response", (_request, response) => {
        clearTimeout(timer)
        socket.terminate()
        resume(Effect.die(new Error(`the upgrade was refused with HTTP ${response.statusCode}`)))
      })
      socket.once("error", (error) => {
        clearTimeout(timer)
        resume(Effect.die(error))
      })
    }),
    (socket) => Effect.sync(() => socket.terminate())
  ).pipe(Effect.map((socket) => wrap(socket, options.timeoutMs ?? 10_000)))

/**
 * Tries to open a WebSocket that the server should refuse; returns the HTTP
 * status of the refusal. Dies when the upgrade succeeds.
 */
export const refusedStatus = (url: string, options: ConnectOptions = {}): Effect.Effect<number> =>
  Effect.callback<number>((resume) => {
    const socket = new WebSocket(url, {
      headers: options.headers ?? {},
      ...(options.origin === undefined ? {} : { origin: options.origin }),
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress })
    })
    let done = false
    const finish = (effect: Effect.Effect<number>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.terminate()
      resume(effect)
    }
    const timer = setTimeout(() => finish(Effect.die(new Error(`no answer to the upgrade within 5 s`))), 5_000)
    socket.once("unexpected-response", (_request, response) => finish(Effect.succeed(response.statusCode ?? 0)))
    socket.once("open", () => finish(Effect.die(new Error("the upgrade was accepted but should have been refused"))))
    socket.on("error", (error) => finish(Effect.die(error)))
  })

/**
 * An error answer as Codex sends it: its code and message. Our server adds the
 * typed reason in `data` (checked by its own tests).
 */
export const codexShape = (error: Frame["error"]): { readonly code: number; readonly message: string } | undefined =>
  error === undefined ? undefined : { code: error.code, message: error.message }

/**
 * Runs the handshake (`initialize`, then `initialized` with
 * `initializedParams`); returns the result of `initialize`.
 */
export const handshake = (
  client: WireClient,
  params: Record<string, unknown> = {},
  initializedParams: Record<string, unknown> = {}
) =>
  Effect.gen(function*() {
    const result = yield* client.call("initialize", { clientName: "wire-test", ...params })
    yield* client.notify("initialized", initializedParams)
    return result as { readonly sessionId: string; readonly capabilities?: ReadonlyArray<string> }
  })

/** Standard base64 of a string's UTF-8 bytes. */
export const base64 = (text: string): string => Buffer.from(text, "utf8").toString("base64")

/** The UTF-8 text of standard base64. */
export const fromBase64 = (chunk: string): string => Buffer.from(chunk, "base64").toString("utf8")

/** `process/start` params for `argv` in /tmp with only PATH set; `extra` overrides. */
export const startParams = (processId: string, argv: ReadonlyArray<string>, extra: Record<string, unknown> = {}) => ({
  processId,
  argv,
  cwd: "/tmp",
  env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  tty: false,
  ...extra
})

/** Polls `check` every `intervalMs` (real time) until it holds; dies after `timeoutMs` (default 10 s). */
export const pollUntil = (description: string, check: () => boolean, timeoutMs = 10_000, intervalMs = 20) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out after ${timeoutMs} ms: ${description}`))
      yield* Effect.sleep(intervalMs)
    }
  })

/** Reads a process with the client loop until it is closed; returns its output text and the last result. */
export const readAll = (client: WireClient, processId: string) =>
  Effect.gen(function*() {
    let afterSeq = 0
    let text = ""
    while (true) {
      const result = yield* client.call("process/read", { processId, afterSeq, maxBytes: null, waitMs: 1_000 })
      for (const chunk of result.chunks) text += fromBase64(chunk.chunk)
      afterSeq = result.nextSeq - 1
      if (result.closed) return { text, last: result }
    }
  })
