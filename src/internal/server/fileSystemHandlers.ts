/**
 * The `fs/*` methods: this host's files, with Codex 0.169's shapes, defaults,
 * codes and messages (a missing path is `-32004` "No such file or directory
 * (os error 2)"; invalid input and a refused permission `-32600`; any other OS
 * error `-32603`). The files are the server's host's, whichever executor runs
 * its processes.
 *
 * A call with a `sandbox` whose policy confines file access runs on the
 * `ConfinedFileSystem` of that policy: it reaches what a process confined by
 * the policy could, and meets the errors such a process would ("Read-only file
 * system", "Permission denied"). A policy that confines no file access
 * (`disabled`, `external`, the whole disk writable) lets the call run as
 * without one, unless the server requires a sandbox: then it is refused, as
 * a call without any policy is.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { type ExecutorError, SandboxRefused } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import { ConfinedFileSystem } from "../fs/confinedFileSystem.ts"
import type { FileOperations, HostFileSystem } from "../fs/hostFileSystem.ts"
import { resolvePolicy } from "../sandbox/policy.ts"
import { RawJson, Reply } from "./reply.ts"
import type { RequestHandlers } from "./router.ts"

type FileSystemMethod = Extract<Protocol.RequestMethod, `fs/${string}`>

const toReply = (error: ExecutorError): Reply => new Reply(Protocol.errorToWire(error.reason))

const required = (description: string) =>
  Effect.fail(new Reply(Protocol.errorToWire(new SandboxRefused({ kind: "Required", description }))))

/**
 * The files a call with `sandbox` may use: all of `files`, or what the
 * policy lets a confined process use; refused under `requireSandbox` when
 * nothing would be confined.
 */
const filesFor = (files: HostFileSystem, requireSandbox: boolean) =>
(
  sandbox: Protocol.SandboxContext | null | undefined
): Effect.Effect<FileOperations, Reply> =>
  Effect.gen(function*() {
    if (sandbox === undefined || sandbox === null) {
      return requireSandbox ? yield* required("the request asks for no sandbox") : files
    }
    const policy = yield* resolvePolicy(sandbox, { tmpdir: process.env.TMPDIR }).pipe(
      Effect.mapError((reason) => new Reply(Protocol.errorToWire(reason)))
    )
    // a file call opens no socket: a policy that only restricts the network confines nothing here
    if (policy.confinement !== "full") {
      return requireSandbox ? yield* required("its policy confines no file access") : files
    }
    return new ConfinedFileSystem(files, policy)
  })

/** The `fs/*` requests, served from `files`; with `requireSandbox`, every call must carry a confining policy. */
export const fileSystemHandlers = (
  files: HostFileSystem,
  options: { readonly requireSandbox?: boolean } = {}
): Pick<RequestHandlers, FileSystemMethod> => {
  const confined = filesFor(files, options.requireSandbox === true)
  /** Runs `operation` on the files `sandbox` allows; its failure is the wire's. */
  const run = <A>(
    sandbox: Protocol.SandboxContext | null | undefined,
    operation: (files: FileOperations) => Effect.Effect<A, ExecutorError>
  ): Effect.Effect<A, Reply> =>
    Effect.flatMap(confined(sandbox), (allowed) => Effect.mapError(operation(allowed), toReply))
  return {
    "fs/getMetadata": Effect.fn("ExecServer.fs/getMetadata")(function*(request) {
      return yield* run(request.sandbox, (files) => files.getMetadata(request.path))
    }),
    "fs/readFile": Effect.fn("ExecServer.fs/readFile")(function*(request) {
      const bytes = yield* run(request.sandbox, (files) => files.readFile(request.path, request.maxBytes))
      // base64 needs no escaping: the answer is written without a pass over the (large) text, nor a string of it
      return new RawJson(["{\"dataBase64\":\"", bytes, "\"}"])
    }),
    "fs/writeFile": Effect.fn("ExecServer.fs/writeFile")(function*(request) {
      yield* run(request.sandbox, (files) => files.writeFile(request.path, request.dataBase64))
      return {}
    }),
    "fs/createDirectory": Effect.fn("ExecServer.fs/createDirectory")(function*(request) {
      yield* run(request.sandbox, (files) => files.createDirectory(request.path, request.recursive ?? true))
      return {}
    }),
    "fs/remove": Effect.fn("ExecServer.fs/remove")(function*(request) {
      yield* run(
        request.sandbox,
        (files) => files.remove(request.path, request.recursive ?? true, request.force ?? true)
      )
      return {}
    }),
    "fs/readDirectory": Effect.fn("ExecServer.fs/readDirectory")(function*(request) {
      return yield* run(request.sandbox, (files) => files.readDirectory(request.path))
    }),
    "fs/copy": Effect.fn("ExecServer.fs/copy")(function*(request) {
      yield* run(
        request.sandbox,
        (files) => files.copy(request.sourcePath, request.destinationPath, request.recursive)
      )
      return {}
    }),
    "fs/canonicalize": Effect.fn("ExecServer.fs/canonicalize")(function*(request) {
      return { path: yield* run(request.sandbox, (files) => files.canonicalize(request.path)) }
    })
  }
}
