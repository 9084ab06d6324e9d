/**
 * The names Codex keeps read-only inside every writable root: its CLI lists
 * them in the workspace-write policy it sends (`Sandbox.workspaceWrite`), and
 * its sandbox keeps them read-only whether the policy lists them or not (the
 * policy resolution does the same).
 *
 * @internal
 */

/** `.git`, `.agents`, `.codex` and `.aws`. */
export const protectedNames: ReadonlyArray<string> = [".git", ".agents", ".codex", ".aws"]
