/**
 * `Exec.run({ stdin })` and the one-liners on real processes, here and on our
 * exec-server over a loopback WebSocket: bytes arrive exactly, and the end of
 * the input reaches the command as end-of-file.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { createHash, randomBytes } from "node:crypto"
import * as Environment from "../src/Environment.ts"
import * as Exec from "../src/Exec.ts"
import { environmentOverWebSocket } from "./support/servers.ts"

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const stdinSuite = (name: string, environment: Layer.Layer<Environment.Environment, unknown>) =>
  describe(name, () => {
    layer(environment, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("gives a string to the command's stdin, then its end", () =>
        Effect.gen(function*() {
          const result = yield* Exec.run({ command: ["sh", "-c", "cat; echo '<eof>'"], stdin: "héllo\n" })
          assert.strictEqual(result.stdout.text, "héllo\n<eof>\n")
          assert.strictEqual(result.exitCode, 0)
        }))

      it.effect("passes 5 MiB of random bytes through cat byte for byte", () =>
        Effect.gen(function*() {
          const input = randomBytes(5 * 1024 * 1024)
          const result = yield* Exec.run({ command: ["cat"], stdin: input, capture: "fullBuffer" })
          assert.strictEqual(result.stdout.totalBytes, input.length)
          assert.strictEqual(sha256(result.stdout.bytes), sha256(input))
        }))

      it.effect("writes a stream as it comes: the command sees each chunk before the end", () =>
        Effect.gen(function*() {
          const input = Stream.make("one\n", "two\n").pipe(Stream.map((line) => new TextEncoder().encode(line)))
          // reads line by line, then counts what is left: nothing, once stdin ended
          const lines = yield* Exec.lines({
            command: ["sh", "-c", "read a; read b; echo \"$b $a\"; wc -c"],
            stdin: input
          })
          assert.deepStrictEqual(lines.map((line) => line.trim()), ["two one", "0"])
        }))

      it.effect("gives /dev/null without stdin: a reader ends at once", () =>
        Effect.gen(function*() {
          assert.strictEqual((yield* Exec.string(["sh", "-c", "wc -c"])).trim(), "0")
        }))

      it.effect("stops feeding a command that exits without reading, and returns", () =>
        Effect.gen(function*() {
          const endless = Stream.fromEffectRepeat(Effect.succeed(new Uint8Array(64 * 1024)))
          const result = yield* Exec.run({ command: ["sh", "-c", "exit 4"], stdin: endless })
          assert.strictEqual(result.exitCode, 4)
        }))

      it.effect("string, lines and runOrFail on a real command", () =>
        Effect.gen(function*() {
          assert.strictEqual(yield* Exec.string(["printf", "a b"]), "a b")
          assert.deepStrictEqual(yield* Exec.lines(["printf", "x\\ny\\n"]), ["x", "y"])
          const failed = yield* Effect.flip(Exec.runOrFail({ command: ["sh", "-c", "echo out; echo bad >&2; exit 7"] }))
          assert.strictEqual(failed._tag, "CommandFailed")
          if (failed._tag !== "CommandFailed") return
          assert.strictEqual(failed.result.exitCode, 7)
          assert.strictEqual(failed.result.stdout.text, "out\n")
          assert.include(failed.message, "exited with code 7: bad")
        }))
    })
  })

stdinSuite("Exec.run stdin: local", Environment.layerLocal)
stdinSuite("Exec.run stdin: remote ↔ ExecServer over WebSocket", environmentOverWebSocket())
