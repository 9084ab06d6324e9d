/**
 * How a test sees what a remote client holds (records, notified events,
 * pushed output: entries and bytes) when the client is built inside a layer
 * (`Environment.layerRemote`): the client hands a way to measure itself to the
 * probe in its context, if any. Apps never provide one.
 *
 * @internal
 */
import * as Context from "effect/Context"
import type { RecordsFootprint } from "./processRecords.ts"

/** Receives, once per client built, a function that measures that client now. */
export const FootprintProbe = Context.Reference<((measure: () => RecordsFootprint) => void) | undefined>(
  "effect-exec/internal/remote/FootprintProbe",
  { defaultValue: () => undefined }
)
