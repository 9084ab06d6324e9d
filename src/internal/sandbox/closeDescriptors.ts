/**
 * Closes what a sandboxed command would otherwise inherit. Node opens its own
 * descriptors close-on-exec, but not everything in the process does: the
 * controlling side of a terminal that `@lydell/node-pty` opened, or what this
 * process itself inherited from its parent, stays open across `exec`, and
 * bubblewrap passes it into the sandbox, where a confined command could use it
 * (type into an unconfined terminal).
 *
 * Node cannot close a descriptor in a child it spawns, so when such
 * descriptors exist the sandbox is launched through a closer on the host that
 * closes them, then runs bubblewrap: `bash` or `perl` (any descriptor), else
 * `sh` (a POSIX shell's redirections name descriptors 0 to 9 only). The
 * descriptors are found in `/proc/self/fdinfo` (those without `O_CLOEXEC`).
 *
 * @internal
 */
import * as NodeFs from "node:fs"

/** `O_CLOEXEC` as `/proc/<pid>/fdinfo` prints a descriptor's flags (octal). */
const closeOnExec = 0o2000000

/** This process's descriptors above `keep` that a child would inherit (not close-on-exec). */
export const inheritedDescriptors = (keep: number): ReadonlyArray<number> => {
  let names: Array<string>
  try {
    names = NodeFs.readdirSync("/proc/self/fdinfo")
  } catch {
    return []
  }
  return names.flatMap((name) => {
    const fd = Number(name)
    if (!Number.isInteger(fd) || fd <= keep) return []
    try {
      const flags = /^flags:\s*([0-7]+)$/m.exec(NodeFs.readFileSync(`/proc/self/fdinfo/${name}`, "utf8"))
      return flags !== null && (Number.parseInt(flags[1]!, 8) & closeOnExec) === 0 ? [fd] : []
    } catch {
      return [] // closed meanwhile (readdir's own descriptor, for one)
    }
  })
}

const isExecutable = (path: string): boolean => {
  try {
    NodeFs.accessSync(path, NodeFs.constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** `$1` descriptors follow; each is closed (they are digits, checked by the caller), then the rest is run. */
const shellScript =
  "n=$1; shift; while [ \"$n\" -gt 0 ]; do eval \"exec $1>&-\"; shift; n=$((n - 1)); done; exec \"$@\""
const perlScript =
  "my $n = shift; POSIX::close(shift) for 1 .. $n; exec { $ARGV[0] } @ARGV or die \"exec $ARGV[0]: $!\\n\""

/** A closer for `descriptors` found on this host, or `undefined` when none can close them all. */
const closerFor = (
  descriptors: ReadonlyArray<number>
): { readonly file: string; readonly prefix: ReadonlyArray<string> } | undefined => {
  const bash = ["/bin/bash", "/usr/bin/bash"].find(isExecutable)
  if (bash !== undefined) return { file: bash, prefix: ["-c", shellScript, "bash"] }
  const perl = ["/usr/bin/perl", "/bin/perl"].find(isExecutable)
  if (perl !== undefined) return { file: perl, prefix: ["-MPOSIX", "-e", perlScript] }
  return descriptors.every((fd) => fd <= 9) ? { file: "/bin/sh", prefix: ["-c", shellScript, "sh"] } : undefined
}

/**
 * What to spawn to run `file args…` with only descriptors 0 to `keep`
 * inherited: `file args…` itself when nothing else would be, else a closer in
 * front of it; `undefined` when this host has no closer for them.
 */
export const closingDescriptors = (
  file: string,
  args: ReadonlyArray<string>,
  keep: number
): { readonly file: string; readonly args: ReadonlyArray<string> } | { readonly unclosable: ReadonlyArray<number> } => {
  const descriptors = inheritedDescriptors(keep)
  if (descriptors.length === 0) return { file, args }
  const closer = closerFor(descriptors)
  if (closer === undefined) return { unclosable: descriptors }
  return {
    file: closer.file,
    args: [...closer.prefix, String(descriptors.length), ...descriptors.map(String), file, ...args]
  }
}
