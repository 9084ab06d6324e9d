#!/usr/bin/env -S node --max-semi-space-size=1
// The effect-exec command line. Node >= 22.18 runs the TypeScript sources directly.
// A 1 MiB semi-space makes V8 collect the dead 64 KiB pipe buffers of a large
// stream about as fast as they come: measured, it halves peak RSS for 256 MiB
// (200 -> 126 MiB) at no cost in throughput (bench/README.md).
// Deep imports: the package index would load every Node module (HTTP client included).
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Effect from "effect/Effect"
import { main, teardown } from "../src/Cli.ts"

main.pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain({ teardown }))
