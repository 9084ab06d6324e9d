/**
 * `node bench/pipeKinds.ts [rounds=3] [MiB=1024]`: what the kind of pipe a
 * child writes its output into costs, read the way the local executor reads
 * (`onread` into one 256 KiB buffer, bytes counted and dropped). Node's
 * `child_process` gives a child a Unix socket pair; `outputPipes` gives it a
 * real pipe (a FIFO opened at both ends and removed). Alternated rounds,
 * each line one stream of `head -c` from /dev/zero: MiB/s, and the reader's
 * own user and system CPU (the writer's is not counted).
 */
import { execFileSync, spawn } from "node:child_process"
import { closeSync, constants, mkdtempSync, openSync, rmSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

const rounds = Number(process.argv[2] ?? 3)
const bytes = Number(process.argv[3] ?? 1024) * 1024 * 1024

/** Reads the socket made of `source` to its end; resolves with what it counted. */
const readAll = (source: Net.SocketConstructorOpts) =>
  new Promise<number>((resolve) => {
    let received = 0
    const socket = new Net.Socket({
      ...source,
      readable: true,
      writable: false,
      onread: {
        buffer: Buffer.allocUnsafe(256 * 1024),
        callback: (length) => {
          received += length
          return true
        }
      }
    })
    socket.on("close", () => resolve(received))
  })

/** One stream through Node's socket pair: the handle taken over, as `pipeReader` does. */
const socketPair = () => {
  const child = spawn("head", ["-c", String(bytes), "/dev/zero"], { stdio: ["ignore", "pipe", "ignore"] })
  const owner = child.stdout as unknown as { _handle: unknown }
  const handle = owner._handle
  owner._handle = null
  return readAll({ handle } as Net.SocketConstructorOpts)
}

/** One stream through a FIFO opened at both ends, its name removed before the child starts. */
const fifo = () => {
  const directory = mkdtempSync(join(tmpdir(), "pipe-kinds-"))
  const name = join(directory, "pipe")
  execFileSync("mkfifo", ["-m", "600", name])
  const readFd = openSync(name, constants.O_RDONLY | constants.O_NONBLOCK)
  const writeFd = openSync(name, constants.O_WRONLY)
  rmSync(directory, { recursive: true })
  spawn("head", ["-c", String(bytes), "/dev/zero"], { stdio: ["ignore", writeFd, "ignore"] })
  closeSync(writeFd)
  return readAll({ fd: readFd })
}

for (let round = 1; round <= rounds; round++) {
  for (const [name, stream] of [["socket pair", socketPair], ["pipe (FIFO)", fifo]] as const) {
    const cpu = process.cpuUsage()
    const started = performance.now()
    const received = await stream()
    const seconds = (performance.now() - started) / 1000
    const used = process.cpuUsage(cpu)
    console.log(
      `round ${round} ${name}: ${(received / 1024 / 1024 / seconds).toFixed(0)} MiB/s, reader user ${
        (used.user / 1000).toFixed(0)
      } ms, system ${(used.system / 1000).toFixed(0)} ms${received === bytes ? "" : ` LOST ${bytes - received}`}`
    )
  }
}
