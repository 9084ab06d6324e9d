/**
 * vitest globalSetup inside a Stryker sandbox: links the repository's `.cache`
 * (the Codex exec-server and bubblewrap the tests run, installed once by the
 * project's own setup) into the sandbox, then runs that setup. The sandbox is
 * made readable to other users (Stryker creates it 0700): some tests run the
 * CLI as another user (ExecServer.environment.test.ts).
 */
import { chmodSync, existsSync, symlinkSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import setup from "../../test/globalSetup.ts"

export default async function mutationSetup(): Promise<void> {
  const repository = process.env["EFFECT_EXEC_REPOSITORY"]
  const sandbox = fileURLToPath(new URL("../..", import.meta.url))
  const cache = join(sandbox, ".cache")
  if (repository !== undefined && join(repository, "/") !== sandbox && !existsSync(cache)) {
    symlinkSync(join(repository, ".cache"), cache)
  }
  if (repository !== undefined && join(repository, "/") !== sandbox) chmodSync(sandbox, 0o755)
  await setup()
}
