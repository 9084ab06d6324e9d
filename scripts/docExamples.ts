/**
 * Type-checks every `@example` of the sources' JSDoc: each fenced `ts` block
 * becomes a module under `.cache/doc-examples/` (its `effect-exec` imports
 * pointed at `src/index.ts`), and `tsc` checks them all. Run by `npm run check`.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const out = join(root, ".cache", "doc-examples")

const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sources(join(dir, entry.name))
      : entry.name.endsWith(".ts")
      ? [join(dir, entry.name)]
      : []
  )

/** The fenced `ts` blocks inside JSDoc comments, with their line numbers. */
const examplesOf = (text: string): Array<{ readonly line: number; readonly code: string }> => {
  const examples: Array<{ line: number; code: string }> = []
  const lines = text.split("\n")
  let current: { line: number; body: Array<string> } | undefined
  for (const [index, line] of lines.entries()) {
    const content = line.replace(/^\s*\* ?/, "")
    if (current === undefined && /^\s*\*\s*```ts\b/.test(line)) current = { line: index + 1, body: [] }
    else if (current !== undefined && /^\s*\*\s*```\s*$/.test(line)) {
      examples.push({ line: current.line, code: current.body.join("\n") })
      current = undefined
    } else if (current !== undefined) current.body.push(content)
  }
  return examples
}

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
const index = join(root, "src", "index.ts")
const files: Array<string> = []
for (const source of sources(join(root, "src"))) {
  for (const example of examplesOf(readFileSync(source, "utf8"))) {
    const name = `${relative(join(root, "src"), source).replaceAll("/", "_").replace(/\.ts$/, "")}_${example.line}.ts`
    const code = example.code.replaceAll(`from "effect-exec"`, `from ${JSON.stringify(relative(out, index))}`)
    writeFileSync(join(out, name), `// ${relative(root, source)}:${example.line}\n${code}\nexport {}\n`)
    files.push(name)
  }
}
writeFileSync(
  join(out, "tsconfig.json"),
  JSON.stringify({
    extends: "../../tsconfig.json",
    // an example shows a value; it need not use it
    compilerOptions: { noUnusedLocals: false, rootDir: "../..", noEmit: true },
    include: files
  })
)
const tsc = join(root, "node_modules", ".bin", "tsc")
try {
  execFileSync(tsc, ["-p", out], { stdio: "inherit" })
  console.log(`doc examples: ${files.length} type-checked`)
} catch {
  console.error(`doc examples: type errors above (files in ${relative(root, out)})`)
  process.exit(1)
}
