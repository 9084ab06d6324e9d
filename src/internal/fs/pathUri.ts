/**
 * Paths on the wire of the `fs/*` methods: `file:` URIs, read as Codex 0.169
 * reads them (measured against its binary, see `notes/codex-fs-pty.md`):
 * `file:///a`, `file:/a`, `file://localhost/a` and `FILE:///a` all name
 * `/a`; `%XX` sequences are decoded (`%2F` too) and a stray `%` is kept; `.`
 * and `..` are resolved as written, after decoding (so `a%2F..%2Fb` names
 * `/…/b`, as Codex reads it, whatever `a` links to), and a trailing slash
 * dropped: the path a check looks at is the path the OS is given. A plain
 * path, another scheme, a query, a fragment or a foreign host is refused with
 * Codex's words.
 *
 * @internal
 */
import { isAbsolute, posix } from "node:path"
import { pathToFileURL } from "node:url"

/** A path read from a URI, or why the URI names none. */
export type ParsedPathUri =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly message: string }

const isHexDigit = (byte: number) =>
  (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)

/** Decodes every `%XX` sequence to its byte, keeping a `%` that starts none; the bytes are read as UTF-8. */
const percentDecode = (text: string): string => {
  if (!text.includes("%")) return text
  const input = Buffer.from(text, "utf8")
  const output = Buffer.alloc(input.length)
  let length = 0
  for (let i = 0; i < input.length; i++) {
    const byte = input[i]!
    if (byte === 0x25 && i + 2 < input.length && isHexDigit(input[i + 1]!) && isHexDigit(input[i + 2]!)) {
      output[length++] = Number.parseInt(String.fromCharCode(input[i + 1]!, input[i + 2]!), 16)
      i += 2
    } else {
      output[length++] = byte
    }
  }
  return output.subarray(0, length).toString("utf8")
}

/** Reads the absolute path a `file:` URI names. */
export const parsePathUri = (uri: string): ParsedPathUri => {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return { ok: false, message: "invalid URI: relative URL without a base" }
  }
  if (url.protocol !== "file:") {
    return { ok: false, message: `unsupported path URI scheme \`${url.protocol.slice(0, -1)}\`` }
  }
  if (url.search !== "" || url.href.includes("?")) {
    return { ok: false, message: "query parameters are not allowed in path URIs" }
  }
  if (url.hash !== "" || url.href.includes("#")) {
    return { ok: false, message: "fragments are not allowed in path URIs" }
  }
  if (url.hostname !== "" && url.hostname !== "localhost") {
    return { ok: false, message: `'${uri}' is invalid on '${process.platform}'` }
  }
  return { ok: true, path: withoutTrailingSlashes(posix.normalize(percentDecode(url.pathname))) }
}

/** `path` without its trailing slashes (`/` stays), in one pass: `/\/+$/` would take quadratic time on `//…/x`. */
const withoutTrailingSlashes = (path: string): string => {
  let end = path.length
  while (end > 1 && path.charCodeAt(end - 1) === 0x2f) end--
  return end === path.length ? path : path.slice(0, end)
}

/** The `file://` URI of an absolute path, or `undefined` for a relative one (it names no place on its own). */
export const toPathUri = (path: string): string | undefined => isAbsolute(path) ? pathToFileURL(path).href : undefined
