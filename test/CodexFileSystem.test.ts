/**
 * The `FileSystem` conformance suite against the released Codex exec-server
 * (@openai/codex 0.169.0), through our remote file system: the same cases as
 * the local file system and our own server pass.
 */
import { startCodexServer } from "./support/codexServer.ts"
import { suite } from "./support/FileSystemContract.ts"
import { remoteEnvironment } from "./support/servers.ts"

suite("FileSystem: remote ↔ Codex exec-server 0.169.0", remoteEnvironment(startCodexServer))
