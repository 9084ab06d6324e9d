/**
 * `npm run mutate -- --scores`: the score table of the last run of each
 * module (the JSON reports in `reports/mutation/`), as Markdown for
 * test/README.md, then every mutant that survived or no test covered, one
 * line each, for the README's list of what is left and why.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

interface Mutant {
  readonly mutatorName: string
  readonly replacement?: string
  readonly status: string
  readonly location: { readonly start: { readonly line: number; readonly column: number } }
}

interface Report {
  readonly files: Record<string, { readonly source: string; readonly mutants: ReadonlyArray<Mutant> }>
}

const count = (mutants: ReadonlyArray<Mutant>, ...statuses: ReadonlyArray<string>) =>
  mutants.filter((mutant) => statuses.includes(mutant.status)).length

/** Prints the table and the mutants left, from the reports in `directory`. */
export const printScores = (directory: string): void => {
  const files = new Map<string, { readonly report: string; readonly mutants: ReadonlyArray<Mutant>; source: string }>()
  for (const name of readdirSync(directory).filter((entry) => entry.endsWith(".json")).sort()) {
    const report = JSON.parse(readFileSync(join(directory, name), "utf8")) as Report
    for (const [file, { mutants, source }] of Object.entries(report.files)) {
      files.set(file, { report: name.replace(/\.json$/, ""), mutants, source })
    }
  }
  console.log("| module | file | killed | timed out | survived | no coverage | type errors | score |")
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
  const left: Array<string> = []
  const modules = new Map<string, { detected: number; valid: number }>()
  for (const [file, { mutants, report, source }] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const killed = count(mutants, "Killed")
    const timedOut = count(mutants, "Timeout")
    const survived = count(mutants, "Survived")
    const uncovered = count(mutants, "NoCoverage")
    const detected = killed + timedOut
    const valid = detected + survived + uncovered
    const score = valid === 0 ? "–" : `${(100 * detected / valid).toFixed(1)} %`
    const total = modules.get(report) ?? { detected: 0, valid: 0 }
    modules.set(report, { detected: total.detected + detected, valid: total.valid + valid })
    console.log(
      `| ${report} | ${file} | ${killed} | ${timedOut} | ${survived} | ${uncovered} | ${
        count(mutants, "CompileError")
      } | ${score} |`
    )
    const lines = source.split("\n")
    for (const mutant of mutants) {
      if (mutant.status !== "Survived" && mutant.status !== "NoCoverage") continue
      const { column, line } = mutant.location.start
      const code = lines[line - 1]?.trim() ?? ""
      left.push(
        `${file}:${line}:${column} ${mutant.status} ${mutant.mutatorName} → ${
          JSON.stringify(mutant.replacement ?? "")
        }  | ${code}`
      )
    }
  }
  console.log("\n| module | detected / valid mutants | score |\n| --- | ---: | ---: |")
  for (const [report, { detected, valid }] of [...modules].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(
      `| ${report} | ${detected} / ${valid} | ${valid === 0 ? "–" : `${(100 * detected / valid).toFixed(1)} %`} |`
    )
  }
  if (left.length > 0) console.log(`\n${left.length} mutants left:\n${left.join("\n")}`)
}
