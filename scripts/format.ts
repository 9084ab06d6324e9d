/**
 * Formats the sources with dprint's TypeScript plugin (the WebAssembly build
 * from npm, driven by `@dprint/formatter`: no native binary to download) and
 * Effect's own settings, read from `dprint.json`.
 *
 *   node scripts/format.ts          rewrites what is not formatted
 *   node scripts/format.ts --check  lists it and exits 1
 */
import { createContext } from "@dprint/formatter"
import { getPath } from "@dprint/typescript"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const config = JSON.parse(readFileSync(join(root, "dprint.json"), "utf8")) as {
  readonly lineWidth: number
  readonly indentWidth: number
  readonly typescript: Record<string, unknown>
  readonly folders: ReadonlyArray<string>
}
const check = process.argv.includes("--check")

const context = createContext({ lineWidth: config.lineWidth, indentWidth: config.indentWidth })
context.addPlugin(readFileSync(getPath()), config.typescript)

const files = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.name === "node_modules"
      ? []
      : entry.isDirectory()
      ? files(join(dir, entry.name))
      : /\.(ts|js)$/.test(entry.name)
      ? [join(dir, entry.name)]
      : []
  )

const unformatted: Array<string> = []
for (const folder of config.folders) {
  let found: Array<string> = []
  try {
    found = files(join(root, folder))
  } catch {
    continue // a folder that does not exist (yet) has nothing to format
  }
  for (const file of found) {
    const text = readFileSync(file, "utf8")
    const formatted = context.formatText({ filePath: file, fileText: text })
    if (formatted === text) continue
    unformatted.push(relative(root, file))
    if (!check) writeFileSync(file, formatted)
  }
}
if (check && unformatted.length > 0) {
  console.error(`not formatted (run npm run format):\n  ${unformatted.join("\n  ")}`)
  process.exit(1)
}
console.log(
  `${check ? "formatted" : "formatted now"}: ${unformatted.length === 0 ? "everything" : unformatted.join(", ")}`
)
