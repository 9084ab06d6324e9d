#!/usr/bin/env node
// The effect-exec command line. Node >= 22.18 runs the TypeScript sources directly.
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import { main } from "../src/Cli.ts"

main.pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
