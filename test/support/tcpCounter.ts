/**
 * A TCP relay in front of a server that counts the connections made through
 * it and how many are open: a test sees how many connections a client opens
 * and when it closes them, whatever the protocol on top.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { connect, createServer, type Socket } from "node:net"

export interface TcpCounter {
  /** `ws://127.0.0.1:PORT` of the relay. */
  readonly url: string
  /** Connections accepted so far. */
  readonly opened: () => number
  /** Connections open now. */
  readonly open: () => number
}

/** Relays 127.0.0.1:(a free port) to `target` (`ws://HOST:PORT`) for the scope. */
export const tcpCounter = (target: string): Effect.Effect<TcpCounter, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly counter: TcpCounter; readonly stop: () => void }>((resume) => {
      const { hostname, port } = new URL(target)
      const sockets = new Set<Socket>()
      let opened = 0
      const server = createServer((client) => {
        opened++
        const upstream = connect(Number(port), hostname)
        sockets.add(client)
        sockets.add(upstream)
        client.pipe(upstream).pipe(client)
        const end = () => {
          sockets.delete(client)
          sockets.delete(upstream)
          client.destroy()
          upstream.destroy()
        }
        client.on("close", end)
        upstream.on("close", end)
        client.on("error", end)
        upstream.on("error", end)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as { port: number }
        resume(Effect.succeed({
          counter: {
            url: `ws://127.0.0.1:${address.port}`,
            opened: () => opened,
            // each relayed connection holds two sockets while open
            open: () => sockets.size / 2
          },
          stop: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        }))
      })
    }),
    ({ stop }) => Effect.sync(stop)
  ).pipe(Effect.map(({ counter }) => counter))
