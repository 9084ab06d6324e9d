#!/usr/bin/env node
// The effect-exec command line. Node >= 22.18 runs the TypeScript sources directly.
// Deep imports: the package index would load every Node module (HTTP client included).
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Effect from "effect/Effect"
import { main, teardown } from "../src/Cli.ts"

main.pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain({ teardown }))
