/**
 * Commands die with the process that started them, however it dies: SIGKILL
 * runs no finalizer, and Ctrl-C kills an app that runs `Effect.runPromise`
 * before any — yet the local executor's watchdog kills their process groups.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { awaitDeath, isAlive } from "./support/processes.ts"

const app = fileURLToPath(new URL("./fixtures/runForever.ts", import.meta.url))

/** Starts the app and returns it with the pids its command printed (a shell and its background child). */
const startApp = Effect.callback<{ readonly kill: (signal: NodeJS.Signals) => void; readonly pids: Array<number> }>(
  (resume) => {
    const child = spawn(process.execPath, [app], { stdio: ["ignore", "pipe", "inherit"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      const match = /pids (\d+) (\d+)/.exec(output)
      if (match !== null) {
        resume(Effect.succeed({ kill: (signal) => child.kill(signal), pids: [Number(match[1]), Number(match[2])] }))
      }
    })
    child.on("exit", (code) => resume(Effect.die(new Error(`the app exited early (${code}): ${output}`))))
  }
)

describe("a command's process group dies with the process that started it", () => {
  it.live.each(["SIGKILL", "SIGINT", "SIGTERM"] as const)(
    "when the app dies of %s",
    (signal) =>
      Effect.gen(function*() {
        const { kill, pids } = yield* startApp
        for (const pid of pids) assert.isTrue(isAlive(pid), `command ${pid} runs`)
        kill(signal)
        for (const pid of pids) yield* awaitDeath(pid)
      })
  )
})
