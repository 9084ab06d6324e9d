/**
 * A plain NDJSON exec-server client for tests: spawns a server speaking
 * newline-delimited JSON on its stdio (`effect-exec serve --listen stdio`, or
 * `codex exec-server --listen stdio`), sends frames, and collects what it
 * prints. It can stop reading for a while, as a slow client does. No library
 * code from `src/` is used on this side.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { spawn } from "node:child_process"

export interface StdioClient {
  /** Sends one message (a line of JSON). */
  readonly send: (message: unknown) => void
  /** Every message received so far, in order. */
  readonly received: ReadonlyArray<any>
  /** Waits (up to `timeoutMs`) for the first message matching `predicate`. */
  readonly waitFor: (
    description: string,
    predicate: (message: any) => boolean,
    timeoutMs?: number
  ) => Effect.Effect<any>
  /** Stops reading the server's stdout for `millis` (its pipe fills, then its writes wait). */
  readonly pause: (millis: number) => void
}

/** Spawns `command` for the scope (SIGKILLed at its end) and speaks NDJSON to it. */
export const spawnStdioServer = (
  command: string,
  args: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv = process.env
): Effect.Effect<StdioClient, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(command, args, { stdio: ["pipe", "pipe", "ignore"], env })
      child.on("error", () => {})
      child.stdin.on("error", () => {})
      const received: Array<any> = []
      const listeners = new Set<() => void>()
      let pending = ""
      child.stdout.setEncoding("utf8")
      child.stdout.on("data", (data: string) => {
        pending += data
        let newline = pending.indexOf("\n")
        while (newline !== -1) {
          const line = pending.slice(0, newline).trim()
          pending = pending.slice(newline + 1)
          if (line.length > 0) received.push(JSON.parse(line))
          newline = pending.indexOf("\n")
        }
        for (const listener of [...listeners]) listener()
      })
      const client: StdioClient = {
        send: (message) => child.stdin.write(JSON.stringify(message) + "\n"),
        received,
        waitFor: (description, predicate, timeoutMs = 20_000) =>
          Effect.callback<any>((resume) => {
            const check = () => {
              const found = received.find(predicate)
              if (found === undefined) return false
              listeners.delete(check)
              clearTimeout(timer)
              resume(Effect.succeed(found))
              return true
            }
            const timer = setTimeout(() => {
              listeners.delete(check)
              resume(Effect.die(new Error(`no ${description} within ${timeoutMs} ms (${received.length} received)`)))
            }, timeoutMs)
            if (!check()) listeners.add(check)
            return Effect.sync(() => {
              listeners.delete(check)
              clearTimeout(timer)
            })
          }),
        pause: (millis) => {
          child.stdout.pause()
          setTimeout(() => child.stdout.resume(), millis)
        }
      }
      return { child, client }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  ).pipe(Effect.map(({ client }) => client))

/** Every JSON message a stream of newline-delimited JSON carried so far, in order (the array fills as it reads). */
export const messagesOf = (stream: NodeJS.ReadableStream): ReadonlyArray<any> => {
  const messages: Array<any> = []
  let pending = ""
  stream.setEncoding("utf8")
  stream.on("data", (text: string) => {
    pending += text
    const lines = pending.split("\n")
    pending = lines.pop()!
    for (const line of lines) if (line.length > 0) messages.push(JSON.parse(line))
  })
  return messages
}
