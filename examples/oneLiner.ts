import { Effect } from "effect"
import { Environment, Exec } from "effect-exec"

const kernel = await Effect.runPromise(Exec.string(["uname", "-s"]).pipe(Effect.provide(Environment.layerLocal)))
console.log(`running on ${kernel.trim()}`)
