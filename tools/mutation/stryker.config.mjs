// Stryker's configuration for `npm run mutate`, read with the repository as
// the working directory. tools/mutation/mutate.ts picks the module through
// the environment: MUTATE (files to mutate, comma-separated), MUTATE_TESTS
// (the test files to run; unset: those vitest finds related to the files),
// MUTATE_LABEL (the report's name).

const env = (name) => process.env[name]?.split(",").filter((item) => item !== "") ?? []
const mutate = env("MUTATE")
const testFiles = env("MUTATE_TESTS")
const label = process.env["MUTATE_LABEL"] ?? "mutation"

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  mutate,
  testFiles,
  testRunner: "vitest",
  vitest: {
    configFile: "tools/mutation/vitest.config.ts",
    // a module names its test files: `related` would pull in every test that
    // imports it through another module
    related: testFiles.length === 0,
    pool: "forks"
  },
  checkers: ["typescript"],
  tsconfigFile: "tools/mutation/tsconfig.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  // each mutant runs only the tests that executed its code
  coverageAnalysis: "perTest",
  // Mutants of code run while a module loads (constants, schemas built at
  // the top level) are not measured: under Vitest 5 the runner reports them
  // survived even when a test fails against the same change made by hand
  // (test/README.md); Stryker lists them as ignored.
  ignoreStatic: true,
  // a 2-core machine shared with others: one test runner and the checker
  concurrency: 2,
  // a mutant that makes the code loop is cut off at this much over the test's own time
  timeoutFactor: 2,
  timeoutMS: 10_000,
  dryRunTimeoutMinutes: 30,
  // copied into each sandbox: not the build, the caches (linked by the
  // mutation globalSetup instead), nor earlier reports
  ignorePatterns: ["/dist", "/.cache", "/coverage", "/reports", "/.stryker-tmp"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
  reporters: ["clear-text", "progress-append-only", "json", "html"],
  jsonReporter: { fileName: `reports/mutation/${label}.json` },
  htmlReporter: { fileName: `reports/mutation/${label}.html` },
  clearTextReporter: { allowColor: false, logTests: false, allowEmojis: false },
  thresholds: { high: 90, low: 80, break: null }
}
