/**
 * The `FileSystem` of every environment, through one conformance suite: Node's
 * (`Environment.layerLocal`) and ours over a loopback WebSocket (the remote
 * file system talking to our exec-server's `fs/*` methods). The Codex
 * exec-server runs it in `CodexFileSystem.test.ts`.
 */
import * as Environment from "../src/Environment.ts"
import { suite } from "./support/FileSystemContract.ts"
import { environmentOverWebSocket } from "./support/servers.ts"

suite("FileSystem: local (Environment.layerLocal)", Environment.layerLocal)
suite("FileSystem: remote ↔ ExecServer over WebSocket", environmentOverWebSocket())
