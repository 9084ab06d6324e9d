/**
 * `environments.toml` files, each with the verdict Codex 0.169 gives it
 * (accepted, or refused) and, for refusals, a word our reason must contain.
 * `test/EnvironmentRegistry.config.test.ts` checks our reading against the
 * verdicts, and `test/EnvironmentFile.codex.test.ts` checks the verdicts
 * against the released Codex CLI, so both programs agree on every file here.
 */

export interface EnvironmentFile {
  readonly name: string
  readonly toml: string
  /** `true` when Codex accepts it; else a word of our reason for refusing it. */
  readonly verdict: true | { readonly refusedFor: string }
}

const lines = (...text: Array<string>) => text.join("\n") + "\n"

export const environmentFiles: ReadonlyArray<EnvironmentFile> = [
  { name: "an empty file", toml: "", verdict: true },
  {
    name: "a url and a program environment, the program one the default",
    toml: lines(
      `default = "ssh-dev"`,
      `[[environments]]`,
      `id = "devbox"`,
      `url = "ws://127.0.0.1:4512"`,
      `connect_timeout_sec = 12`,
      `initialize_timeout_sec = 3.5`,
      `[[environments]]`,
      `id = "ssh-dev"`,
      `program = "true"`,
      `args = ["dev", "effect-exec serve --listen stdio"]`,
      `cwd = "workspace"`,
      `[environments.env]`,
      `EXEC_LOG = "debug"`
    ),
    verdict: true
  },
  {
    name: "without this machine and without a default",
    toml: lines(`include_local = false`, `[[environments]]`, `id = "a_1"`, `url = "ws://127.0.0.1:1"`),
    verdict: true
  },
  { name: `default = "none"`, toml: lines(`default = "NONE"`), verdict: true },
  {
    name: "a token to a loopback url, and Codex's skills table",
    toml: lines(
      `default = "devbox"`,
      `[[environments]]`,
      `id = "devbox"`,
      `url = "ws://localhost:1"`,
      `auth_bearer_token = "secret"`,
      `[environments.skills]`
    ),
    verdict: true
  },
  { name: "an unknown top-level key", toml: lines(`bogus = 1`), verdict: { refusedFor: "bogus" } },
  {
    name: "an unknown key in an environment",
    toml: lines(`[[environments]]`, `id = "devbox"`, `url = "ws://127.0.0.1:1"`, `port = 4`),
    verdict: { refusedFor: "port" }
  },
  {
    name: "the reserved id local",
    toml: lines(`[[environments]]`, `id = "local"`, `url = "ws://127.0.0.1:1"`),
    verdict: { refusedFor: "reserved" }
  },
  {
    name: "the reserved id none, in any case",
    toml: lines(`[[environments]]`, `id = "None"`, `url = "ws://127.0.0.1:1"`),
    verdict: { refusedFor: "reserved" }
  },
  {
    name: "an id with a space",
    toml: lines(`[[environments]]`, `id = "dev box"`, `url = "ws://127.0.0.1:1"`),
    verdict: { refusedFor: "letters" }
  },
  {
    name: "an id with spaces around it",
    toml: lines(`[[environments]]`, `id = " devbox"`, `url = "ws://127.0.0.1:1"`),
    verdict: { refusedFor: "spaces" }
  },
  {
    name: "an id of 65 characters",
    toml: lines(`[[environments]]`, `id = "${"a".repeat(65)}"`, `url = "ws://127.0.0.1:1"`),
    verdict: { refusedFor: "longer" }
  },
  {
    name: "an id given twice",
    toml: lines(
      `[[environments]]`,
      `id = "devbox"`,
      `url = "ws://127.0.0.1:1"`,
      `[[environments]]`,
      `id = "devbox"`,
      `program = "true"`
    ),
    verdict: { refusedFor: "twice" }
  },
  {
    name: "both a url and a program",
    toml: lines(`[[environments]]`, `id = "devbox"`, `url = "ws://127.0.0.1:1"`, `program = "true"`),
    verdict: { refusedFor: "both" }
  },
  {
    name: "neither a url nor a program",
    toml: lines(`[[environments]]`, `id = "devbox"`),
    verdict: { refusedFor: "neither" }
  },
  {
    name: "args without a program",
    toml: lines(`[[environments]]`, `id = "devbox"`, `url = "ws://127.0.0.1:1"`, `args = []`),
    verdict: { refusedFor: "args" }
  },
  {
    name: "connect_timeout_sec for a program",
    toml: lines(`[[environments]]`, `id = "devbox"`, `program = "true"`, `connect_timeout_sec = 1`),
    verdict: { refusedFor: "connect_timeout_sec" }
  },
  {
    name: "a token for a program",
    toml: lines(`[[environments]]`, `id = "devbox"`, `program = "true"`, `auth_bearer_token = "x"`),
    verdict: { refusedFor: "auth_bearer_token" }
  },
  {
    name: "an empty program",
    toml: lines(`[[environments]]`, `id = "devbox"`, `program = "  "`),
    verdict: { refusedFor: "empty" }
  },
  {
    name: "an http url",
    toml: lines(`[[environments]]`, `id = "devbox"`, `url = "http://127.0.0.1:1"`),
    verdict: { refusedFor: "ws://" }
  },
  {
    name: "a token sent unencrypted to another machine",
    toml: lines(
      `default = "devbox"`,
      `[[environments]]`,
      `id = "devbox"`,
      `url = "ws://192.0.2.7:1"`,
      `auth_bearer_token = "secret"`
    ),
    verdict: { refusedFor: "unencrypted" }
  },
  { name: "an unknown default", toml: lines(`default = "nope"`), verdict: { refusedFor: "nope" } },
  { name: "an empty default", toml: lines(`default = " "`), verdict: { refusedFor: "empty" } },
  {
    name: "local as the default without this machine",
    toml: lines(`default = "local"`, `include_local = false`),
    verdict: { refusedFor: "local" }
  },
  { name: "include_local as a string", toml: lines(`include_local = "yes"`), verdict: { refusedFor: "include_local" } },
  {
    name: "a negative timeout",
    toml: lines(`[[environments]]`, `id = "devbox"`, `url = "ws://127.0.0.1:1"`, `initialize_timeout_sec = -1`),
    verdict: { refusedFor: "initialize_timeout_sec" }
  },
  {
    name: "args that are not strings",
    toml: lines(`[[environments]]`, `id = "devbox"`, `program = "true"`, `args = [1]`),
    verdict: { refusedFor: "args" }
  },
  { name: "not TOML", toml: lines(`[[environments]`), verdict: { refusedFor: "TOML" } }
]
