/**
 * The `fs/*` methods: this host's files, with Codex 0.169's shapes, defaults,
 * codes and messages (a missing path is `-32004` "No such file or directory
 * (os error 2)"; invalid input and a refused permission `-32600`; any other OS
 * error `-32603`). The files are the server's host's, whichever executor runs
 * its processes.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { type ExecutorError, Unsupported } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import type { HostFileSystem } from "../fs/hostFileSystem.ts"
import { RawJson, Reply } from "./reply.ts"
import type { RequestHandlers } from "./router.ts"

type FileSystemMethod = Extract<Protocol.RequestMethod, `fs/${string}`>

const toReply = (error: ExecutorError): Reply => new Reply(Protocol.errorToWire(error.reason))

const sandboxRefused = new Reply(
  Protocol.errorToWire(
    new Unsupported({ feature: "sandboxed file system access (an fs/* call with a sandbox policy)" })
  )
)

/**
 * Runs a call without a sandbox, or refuses it: sandboxed file access is not
 * supported yet, and a policy is never ignored. (Where sandbox policies are
 * enforced, this is where an `fs/*` call's policy is checked.)
 */
const unsandboxed = <A>(sandbox: unknown, call: Effect.Effect<A, ExecutorError>): Effect.Effect<A, Reply> =>
  sandbox === undefined || sandbox === null ? Effect.mapError(call, toReply) : Effect.fail(sandboxRefused)

/** The `fs/*` requests, served from `files`. */
export const fileSystemHandlers = (files: HostFileSystem): Pick<RequestHandlers, FileSystemMethod> => ({
  "fs/getMetadata": Effect.fn("ExecServer.fs/getMetadata")(function*(request) {
    return yield* unsandboxed(request.sandbox, files.getMetadata(request.path))
  }),
  "fs/readFile": Effect.fn("ExecServer.fs/readFile")(function*(request) {
    const bytes = yield* unsandboxed(request.sandbox, files.readFile(request.path, request.maxBytes))
    // base64 needs no escaping: the answer is written without a pass over the (large) text, nor a string of it
    return new RawJson(["{\"dataBase64\":\"", bytes, "\"}"])
  }),
  "fs/writeFile": Effect.fn("ExecServer.fs/writeFile")(function*(request) {
    yield* unsandboxed(request.sandbox, files.writeFile(request.path, request.dataBase64))
    return {}
  }),
  "fs/createDirectory": Effect.fn("ExecServer.fs/createDirectory")(function*(request) {
    yield* unsandboxed(request.sandbox, files.createDirectory(request.path, request.recursive ?? true))
    return {}
  }),
  "fs/remove": Effect.fn("ExecServer.fs/remove")(function*(request) {
    yield* unsandboxed(request.sandbox, files.remove(request.path, request.recursive ?? true, request.force ?? true))
    return {}
  }),
  "fs/readDirectory": Effect.fn("ExecServer.fs/readDirectory")(function*(request) {
    return yield* unsandboxed(request.sandbox, files.readDirectory(request.path))
  }),
  "fs/copy": Effect.fn("ExecServer.fs/copy")(function*(request) {
    yield* unsandboxed(request.sandbox, files.copy(request.sourcePath, request.destinationPath, request.recursive))
    return {}
  }),
  "fs/canonicalize": Effect.fn("ExecServer.fs/canonicalize")(function*(request) {
    return { path: yield* unsandboxed(request.sandbox, files.canonicalize(request.path)) }
  })
})
