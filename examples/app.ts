import { Console, Effect } from "effect"
import { Environment, Exec, OutputSink } from "effect-exec"

const program = Effect.gen(function*() {
  const result = yield* Exec.run({
    command: ["sh", "-c", "read name; echo \"hello $name\"; echo 'almost done' >&2; exit 3"], // an argv, never spliced
    stdin: "world\n", // a string, bytes or a Stream; its end reaches the command
    timeout: "2 minutes", // kills the process group; exit code 124
    capture: "shellTool" // first 1 MiB per stream; "fullBuffer"; or { headBytes, tailBytes }
  })
  yield* Console.log(`exit code ${result.exitCode} (${result.termination._tag}), ${result.stdout.totalBytes} bytes out`)
  // Exec.runOrFail fails instead with a typed CommandFailed carrying this result
  return result.exitCode
})

// OutputSink.layerConsole streams the command's output live; without it, output is only in the result
const exitCode = await Effect.runPromise(
  program.pipe(Effect.provide([Environment.layerLocal, OutputSink.layerConsole]))
)
process.exitCode = exitCode // 3: this program exits as its command did
