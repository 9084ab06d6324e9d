import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    // time is TestClock's job: never vi.useFakeTimers
    fakeTimers: { toFake: [] },
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
