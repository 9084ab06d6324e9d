/**
 * A fleet of exec-server hosts on this machine: each `effect-exec serve` runs
 * in a network namespace of its own, made here with `ip netns` and joined to
 * this one by a veth pair (a /30 per host in 10.213.X.0/24), so the servers
 * have addresses of their own and traffic to them crosses a real (virtual)
 * link. Only those addresses are ever used. Everything is removed when the
 * scope closes; namespaces a crashed run left behind are removed by the next.
 *
 * Needs root and iproute2; `netnsRefusal()` says why not, when the machine
 * refuses.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { bin } from "./servers.ts"

const prefix = "eefleet"

const ip = (...args: ReadonlyArray<string>): string => execFileSync("ip", args, { encoding: "utf8", stdio: "pipe" })

const isPidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Why this machine cannot make network namespaces, or `undefined` when it can (tried for real). */
export const netnsRefusal = (): string | undefined => {
  const probe = `${prefix}-probe-${process.pid}`
  try {
    ip("netns", "add", probe)
  } catch (error) {
    const detail = (error as { stderr?: string; message: string }).stderr?.trim() || (error as Error).message
    return `\`ip netns add\` is refused here (${detail.split("\n")[0]}): it needs root and iproute2`
  }
  try {
    ip("netns", "del", probe)
  } catch {
    // removed or not: nothing else to do
  }
  return undefined
}

/** Removes namespaces (and their veths) that earlier runs of dead processes left behind. */
const removeStale = () => {
  for (const line of ip("netns", "list").split("\n")) {
    const name = line.split(" ")[0] ?? ""
    const owner = /^eefleet-(\d+)-/.exec(name)?.[1]
    if (owner === undefined || isPidAlive(Number(owner))) continue
    for (const pid of ip("netns", "pids", name).split("\n").filter((line) => line !== "")) {
      try {
        process.kill(Number(pid), "SIGKILL")
      } catch {
        // gone
      }
    }
    try {
      ip("netns", "del", name)
    } catch {
      // another run got there first
    }
  }
}

/** A /24 of 10.213.0.0/16 that no interface of this machine uses. */
const freeSubnet = (): number => {
  const used = ip("-4", "-o", "addr", "show")
  for (let offset = 0; offset < 250; offset++) {
    const third = ((process.pid + offset) % 250) + 1
    if (!used.includes(`10.213.${third}.`)) return third
  }
  throw new Error("no free /24 in 10.213.0.0/16")
}

/** One host of the fleet. */
export interface Host {
  readonly name: string
  readonly namespace: string
  /** The server's address in its namespace. */
  readonly address: string
  readonly url: string
  /** The running server, if any. */
  readonly server: () => ChildProcess | undefined
  /** SIGKILLs the server (its host "dies"); its commands are killed too, as the host's would be. */
  readonly kill: Effect.Effect<void>
  /** Starts the server again on the same address. */
  readonly restart: Effect.Effect<void>
}

export interface FleetOptions {
  /** The servers' bearer token (required off loopback). */
  readonly token: string
  /** More `serve` flags. */
  readonly serveArgs?: ReadonlyArray<string>
}

const port = 4000

/** Starts `effect-exec serve` inside `namespace` and waits until it listens. */
const startServer = (host: { name: string; namespace: string; address: string }, options: FleetOptions) =>
  Effect.callback<ChildProcess>((resume) => {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        host.namespace,
        process.execPath,
        bin,
        "serve",
        "--listen",
        `ws://${host.address}:${port}`,
        ...(options.serveArgs ?? [])
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, HOST_NAME: host.name, EXEC_SERVER_TOKEN: options.token }
      }
    )
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.includes("\n")) resume(Effect.succeed(child))
    })
    child.on("exit", (code) => resume(Effect.die(new Error(`serve in ${host.namespace} exited (${code}): ${stderr}`))))
  })

/** Kills every process in `namespace` (the server and what it started). */
const killAllIn = (namespace: string) => {
  try {
    for (const pid of ip("netns", "pids", namespace).split("\n").filter((line) => line !== "")) {
      try {
        process.kill(Number(pid), "SIGKILL")
      } catch {
        // gone
      }
    }
  } catch {
    // the namespace is gone
  }
}

/** `count` hosts `h1`…, each an exec-server in its own network namespace, for the scope. */
export const makeFleet = (
  count: number,
  options: FleetOptions
): Effect.Effect<ReadonlyArray<Host>, never, Scope.Scope> =>
  Effect.gen(function*() {
    removeStale()
    const third = freeSubnet()
    const hosts = yield* Effect.forEach(Array.from({ length: count }, (_, index) => index), (index) =>
      Effect.gen(function*() {
        const name = `h${index + 1}`
        const namespace = `${prefix}-${process.pid}-${name}`
        const outside = `ef${process.pid}o${index}`
        const inside = `ef${process.pid}i${index}`
        const address = `10.213.${third}.${index * 4 + 2}`
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            ip("netns", "add", namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", namespace)
            ip("addr", "add", `10.213.${third}.${index * 4 + 1}/30`, "dev", outside)
            ip("link", "set", outside, "up")
            ip("-n", namespace, "addr", "add", `${address}/30`, "dev", inside)
            ip("-n", namespace, "link", "set", inside, "up")
          }),
          () =>
            Effect.sync(() => {
              killAllIn(namespace)
              try {
                ip("link", "del", outside)
              } catch {
                // went with the namespace
              }
              ip("netns", "del", namespace)
            })
        )
        let server: ChildProcess | undefined
        const spec = { name, namespace, address }
        const start = Effect.map(startServer(spec, options), (child) => {
          server = child
        })
        yield* start
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => killAllIn(namespace))
        )
        const host: Host = {
          ...spec,
          url: `ws://${address}:${port}`,
          server: () => server,
          kill: Effect.sync(() => {
            // the server first, so it cannot report its commands' deaths before its own
            server?.kill("SIGKILL")
            killAllIn(namespace)
            server = undefined
          }),
          restart: start
        }
        return host
      }), { concurrency: "unbounded" })
    return hosts
  })
