/**
 * `wss://`: the remote executor over TLS (the `ws` library's client, where
 * `ws://` has our own), against our exec-server behind a TLS terminator, as a
 * deployment that terminates TLS in front of `effect-exec serve` runs it. The
 * certificate is made for the test by `openssl` (self-signed, for 127.0.0.1
 * and localhost) and trusted through Node's default CA list while a test
 * runs; a client that does not trust it gets a typed `ConnectionLost`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import { Executor } from "../src/Executor.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as OutputSink from "../src/OutputSink.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"

/** A self-signed certificate for 127.0.0.1 and localhost, and its key, made by `openssl` in a scratch folder. */
const makeCertificate = (): { readonly cert: string; readonly key: string } => {
  const dir = mkdtempSync(join(tmpdir(), "effect-exec-tls-"))
  try {
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem")
    ], { stdio: ["ignore", "ignore", "pipe"] })
    return { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const certificate = makeCertificate()
const token = Redacted.make("tls-test-token")

/**
 * Our exec-server (a token required) behind a TLS terminator on 127.0.0.1:
 * each TLS connection is piped to the server's plain port. Returns the
 * terminator's `wss://` URL.
 */
const serverBehindTls = Effect.gen(function*() {
  const local = yield* LocalExecutor.make()
  const { port } = yield* WebSocketListener.listen({ token }).pipe(Effect.provideService(Executor, local))
  const terminator = Tls.createServer({ cert: certificate.cert, key: certificate.key }, (secure) => {
    const plain = Net.connect(port, "127.0.0.1")
    secure.pipe(plain).pipe(secure)
    secure.on("error", () => plain.destroy())
    plain.on("error", () => secure.destroy())
  })
  yield* Effect.acquireRelease(
    Effect.callback<void>((resume) => void terminator.listen(0, "127.0.0.1", () => resume(Effect.void))),
    () => Effect.sync(() => terminator.close())
  )
  const address = terminator.address() as Net.AddressInfo
  return `wss://127.0.0.1:${address.port}`
})

/** Node's default CA list with the test's certificate in it, for as long as the scope is open. */
const trustCertificate = Effect.acquireRelease(
  Effect.sync(() => {
    const before = Tls.getCACertificates("default")
    Tls.setDefaultCACertificates([...before, certificate.cert])
    return before
  }),
  (before) => Effect.sync(() => Tls.setDefaultCACertificates(before))
)

/** `sh -c` printing `bytes` bytes of a known pattern (lines of 63 `x` and a newline), then exiting 3. */
const patterned = (bytes: number) => ["sh", "-c", `yes ${"x".repeat(63)} | head -c ${bytes}; exit 3`]

describe("RemoteExecutor over wss://", () => {
  it.live("runs a command over TLS: the token is accepted, 4 MiB of output arrive whole, the exit code too", () =>
    Effect.gen(function*() {
      const url = yield* serverBehindTls
      yield* trustCertificate
      const bytes = 4 * 1024 * 1024
      const result = yield* Exec.run({ command: patterned(bytes), timeout: "30 seconds" }).pipe(
        Effect.provide([Environment.layerRemote({ url, token }), OutputSink.layerDiscard])
      )
      assert.strictEqual(result.exitCode, 3)
      assert.strictEqual(result.stdout.totalBytes, bytes)
      assert.strictEqual(result.stdout.text.slice(0, 128), `${"x".repeat(63)}\n`.repeat(2))
    }).pipe(Effect.scoped))

  it.live("a wrong token over TLS is refused with ConnectionLost saying 401", () =>
    Effect.gen(function*() {
      const url = yield* serverBehindTls
      yield* trustCertificate
      const error = yield* Effect.flip(
        Exec.run({ command: ["true"] }).pipe(
          Effect.provide([Environment.layerRemote({ url, token: Redacted.make("wrong") }), OutputSink.layerDiscard])
        )
      )
      assert.strictEqual(error.reason._tag, "ConnectionLost")
      assert.include(error.message, "401")
    }).pipe(Effect.scoped))

  it.live("a certificate the client does not trust is ConnectionLost naming the URL and the certificate", () =>
    Effect.gen(function*() {
      const url = yield* serverBehindTls
      const error = yield* Effect.flip(
        Exec.run({ command: ["true"] }).pipe(
          Effect.provide([Environment.layerRemote({ url, token }), OutputSink.layerDiscard])
        )
      )
      assert.strictEqual(error.reason._tag, "ConnectionLost")
      assert.include(error.message, url)
      assert.match(error.message, /self[- ]signed certificate/)
    }).pipe(Effect.scoped))
})
