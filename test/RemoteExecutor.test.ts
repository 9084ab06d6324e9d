/**
 * The conformance suite, unchanged, against the remote executor talking to our
 * own exec-server: over a real loopback WebSocket, and over NDJSON streams.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { PassThrough } from "node:stream"
import * as ExecServer from "../src/ExecServer.ts"
import { Executor } from "../src/Executor.ts"
import { fromStreams } from "../src/JsonRpc.ts"
import * as LocalExecutor from "../src/LocalExecutor.ts"
import * as RemoteExecutor from "../src/RemoteExecutor.ts"
import { suite } from "./support/ExecutorContract.ts"
import { remoteOverWebSocket } from "./support/servers.ts"

const overStdio = Layer.effect(
  Executor,
  Effect.gen(function*() {
    const toServer = new PassThrough()
    const toClient = new PassThrough()
    yield* Effect.forkScoped(ExecServer.serveStdio(toServer, toClient))
    return yield* RemoteExecutor.make(Effect.succeed(fromStreams(toClient, toServer)))
  })
).pipe(Layer.provide(LocalExecutor.layer()))

suite("RemoteExecutor ↔ ExecServer over WebSocket", remoteOverWebSocket, { extensions: true })
suite("RemoteExecutor ↔ ExecServer over stdio", overStdio, { extensions: true })
