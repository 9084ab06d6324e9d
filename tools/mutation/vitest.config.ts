/**
 * The project's vitest configuration as Stryker runs it in its sandbox: the
 * same setup files, the repository's `.cache` (Codex, bubblewrap) linked in
 * rather than copied, no JSON report.
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import base from "../../vitest.config.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))

export default defineConfig({
  ...base,
  root,
  test: {
    ...base.test,
    globalSetup: ["./tools/mutation/globalSetup.ts"],
    reporters: ["default"]
  }
})
