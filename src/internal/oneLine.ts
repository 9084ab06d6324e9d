/**
 * Text that came from elsewhere (a server's error message, a close reason,
 * a schema's report) made fit for one line of a terminal: control characters
 * (newlines, escapes) become spaces, runs of spaces one, and it is cut to a
 * length a person can read.
 *
 * @internal
 */

/** The longest one-line message kept; the rest is cut and marked `…`. */
export const maxMessageLength = 512

// C0 controls, DEL and C1 controls (the terminal's escape sequences start with ESC or CSI)
// oxlint-disable-next-line no-control-regex
const controls = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g

/** `text` on one line, without control characters, at most `maxLength` characters. */
export const oneLine = (text: string, maxLength: number = maxMessageLength): string => {
  // look at a bounded prefix only: a server may send megabytes
  const head = text.length > maxLength * 4 ? text.slice(0, maxLength * 4) : text
  const flat = head.replace(controls, " ").replace(/ {2,}/g, " ").trim()
  return flat.length > maxLength || head.length < text.length ? `${flat.slice(0, maxLength - 1)}…` : flat
}
