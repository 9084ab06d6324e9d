import { Effect, FileSystem } from "effect"
import { Environment, Exec, LocalExecutor, WebSocketListener } from "effect-exec"
import { tmpdir } from "node:os"

// the same code, wherever its environment is: a file written, then read by a command
const roundTrip = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = `${tmpdir()}/effect-exec-example-${process.pid}.txt`
  yield* fs.writeFileString(path, "written through fs/writeFile\n")
  const text = yield* Exec.string(["cat", path])
  yield* fs.remove(path)
  return text.trim()
})

const program = Effect.gen(function*() {
  // an exec-server in this process, on a free loopback port (`effect-exec serve` in a shell)
  const server = yield* WebSocketListener.listen({})
  const remote = yield* roundTrip.pipe(Effect.provide(Environment.layerRemote({ url: server.url })))
  const local = yield* roundTrip.pipe(Effect.provide(Environment.layerLocal))
  return { remote, local }
}).pipe(Effect.scoped, Effect.provide(LocalExecutor.layer()))

console.log(JSON.stringify(await Effect.runPromise(program)))
