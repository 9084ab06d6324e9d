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
import { type ExecutorError, SandboxRefused } from "../../Executor.ts"
import * as Protocol from "../../Protocol.ts"
import type { HostFileSystem } from "../fs/hostFileSystem.ts"
import { fromErrnoCode } from "../fs/osError.ts"
import { canRead, canReadTree, canWrite, canWriteTree, resolvePolicy } from "../sandbox/policy.ts"
import { RawJson, Reply } from "./reply.ts"
import type { RequestHandlers } from "./router.ts"

type FileSystemMethod = Extract<Protocol.RequestMethod, `fs/${string}`>

const toReply = (error: ExecutorError): Reply => new Reply(Protocol.errorToWire(error.reason))
const refusal = (reason: Protocol.WireError) => Effect.fail(new Reply(reason))

/** What a call does to a path: reads or writes it, or all that is below it too (a recursive copy or removal). */
type Access = readonly [path: string, access: "read" | "write" | "readTree" | "writeTree"]

const allows = (policy: Parameters<typeof canRead>[0], [path, access]: Access): boolean => {
  switch (access) {
    case "read":
      return canRead(policy, path)
    case "write":
      return canWrite(policy, path)
    case "readTree":
      return canReadTree(policy, path)
    case "writeTree":
      return canWriteTree(policy, path)
  }
}

/**
 * Runs `call` once its `sandbox` allows every access it makes (as the policy
 * would confine a process: a path it may not read is "Permission denied", one
 * it may not write "Read-only file system", in Codex's words); without a
 * sandbox, unless the server requires one. A policy is never ignored.
 */
const guarded = (requireSandbox: boolean) =>
<A>(
  sandbox: Protocol.SandboxContext | null | undefined,
  accesses: ReadonlyArray<Access>,
  call: Effect.Effect<A, ExecutorError>
): Effect.Effect<A, Reply> =>
  Effect.gen(function*() {
    if (sandbox === undefined || sandbox === null) {
      if (requireSandbox) {
        return yield* refusal(Protocol.errorToWire(
          new SandboxRefused({ kind: "Required", description: "the request asks for no sandbox" })
        ))
      }
      return yield* Effect.mapError(call, toReply)
    }
    const policy = yield* resolvePolicy(sandbox, { tmpdir: process.env.TMPDIR }).pipe(
      Effect.mapError((reason) => new Reply(Protocol.errorToWire(reason)))
    )
    for (const access of accesses) {
      if (allows(policy, access)) continue
      const [path, kind] = access
      const readOnly = (kind === "write" || kind === "writeTree") && canRead(policy, path)
      return yield* refusal(Protocol.errorToWire(fromErrnoCode(readOnly ? "EROFS" : "EACCES", path)))
    }
    return yield* Effect.mapError(call, toReply)
  })

/** The `fs/*` requests, served from `files`; with `requireSandbox`, every call must carry a policy. */
export const fileSystemHandlers = (
  files: HostFileSystem,
  options: { readonly requireSandbox?: boolean } = {}
): Pick<RequestHandlers, FileSystemMethod> => {
  const guard = guarded(options.requireSandbox === true)
  return {
    "fs/getMetadata": Effect.fn("ExecServer.fs/getMetadata")(function*(request) {
      return yield* guard(request.sandbox, [[request.path, "read"]], files.getMetadata(request.path))
    }),
    "fs/readFile": Effect.fn("ExecServer.fs/readFile")(function*(request) {
      const bytes = yield* guard(
        request.sandbox,
        [[request.path, "read"]],
        files.readFile(request.path, request.maxBytes)
      )
      // base64 needs no escaping: the answer is written without a pass over the (large) text, nor a string of it
      return new RawJson(["{\"dataBase64\":\"", bytes, "\"}"])
    }),
    "fs/writeFile": Effect.fn("ExecServer.fs/writeFile")(function*(request) {
      yield* guard(request.sandbox, [[request.path, "write"]], files.writeFile(request.path, request.dataBase64))
      return {}
    }),
    "fs/createDirectory": Effect.fn("ExecServer.fs/createDirectory")(function*(request) {
      yield* guard(
        request.sandbox,
        [[request.path, "write"]],
        files.createDirectory(request.path, request.recursive ?? true)
      )
      return {}
    }),
    "fs/remove": Effect.fn("ExecServer.fs/remove")(function*(request) {
      yield* guard(
        request.sandbox,
        [[request.path, request.recursive ?? true ? "writeTree" : "write"]],
        files.remove(request.path, request.recursive ?? true, request.force ?? true)
      )
      return {}
    }),
    "fs/readDirectory": Effect.fn("ExecServer.fs/readDirectory")(function*(request) {
      return yield* guard(request.sandbox, [[request.path, "read"]], files.readDirectory(request.path))
    }),
    "fs/copy": Effect.fn("ExecServer.fs/copy")(function*(request) {
      yield* guard(
        request.sandbox,
        [[request.sourcePath, request.recursive ? "readTree" : "read"], [
          request.destinationPath,
          request.recursive ? "writeTree" : "write"
        ]],
        files.copy(request.sourcePath, request.destinationPath, request.recursive)
      )
      return {}
    }),
    "fs/canonicalize": Effect.fn("ExecServer.fs/canonicalize")(function*(request) {
      return { path: yield* guard(request.sandbox, [[request.path, "read"]], files.canonicalize(request.path)) }
    })
  }
}
