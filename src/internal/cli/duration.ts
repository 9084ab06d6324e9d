/**
 * Durations as the CLI's flags take them: `500ms`, `30s`, `2m`, `1.5 hours`;
 * a bare number is seconds.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

const pattern = /^(\d+(?:\.\d+)?)\s*(ms|millis|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?)?$/

/** Parses a duration such as `500ms`, `30s`, `2m` or `1.5 hours`; a bare number is seconds. */
export const parse = (input: string): Option.Option<Duration.Duration> => {
  const match = pattern.exec(input.trim().toLowerCase())
  if (match === null) return Option.none()
  const amount = Number(match[1])
  const unit = match[2] ?? "s"
  const millis = unit.startsWith("ms") || unit.startsWith("milli")
    ? amount
    : unit.startsWith("h")
    ? amount * 3_600_000
    : unit === "s" || unit.startsWith("sec")
    ? amount * 1_000
    : amount * 60_000
  return Option.some(Duration.millis(millis))
}

/** Parses `--timeout`: a duration, or `none` (and a zero, however spelled: `0`, `0s`) for no timeout. */
export const parseTimeout = (input: string): Option.Option<Duration.Duration | "none"> => {
  const text = input.trim().toLowerCase()
  if (text === "none") return Option.some("none")
  return Option.map(parse(text), (duration) => Duration.isZero(duration) ? "none" as const : duration)
}
