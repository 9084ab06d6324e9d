import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    // installs the real Codex exec-server once, before the workers start
    globalSetup: ["./test/globalSetup.ts"],
    // time is TestClock's job: never vi.useFakeTimers
    fakeTimers: { toFake: [] },
    // lets memory tests collect garbage before they measure what is live
    execArgv: ["--expose-gc"],
    // the JSON report is what .ci/run counts for its closing line
    reporters: ["default", ["json", { outputFile: ".cache/test-results.json" }]],
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
