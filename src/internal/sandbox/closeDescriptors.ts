/**
 * Closes what a sandboxed command would otherwise inherit. Node opens its own
 * descriptors close-on-exec, but not everything in the process does: the
 * controlling side of a terminal that `@lydell/node-pty` opened, or what this
 * process itself inherited from its parent, stays open across `exec`, and
 * bubblewrap passes it into the sandbox, where a confined command could use it
 * (type into an unconfined terminal).
 *
 * Node cannot close a descriptor in a child it spawns, so every sandbox is
 * launched through a closer on the host: a tiny script that lists its own
 * `/proc/self/fd`, closes every descriptor above its stdio and bubblewrap's
 * inputs, then runs bubblewrap. Listing them in the child, after `exec`,
 * leaves no window for a descriptor opened meanwhile, and costs the server
 * nothing per start. The closer is `bash` or `perl` (any descriptor), else
 * `sh`, whose redirections name descriptors 0 to 9 only: with `sh` the script
 * checks that nothing is left above its inputs and refuses to run bubblewrap
 * otherwise (exit 125, a message on stderr).
 *
 * The closer runs on the host, unconfined, so nothing the client controls may
 * reach it: it is spawned with a fixed environment (see `launcher`), `bash`
 * in privileged mode (`-p`: no `BASH_ENV`, `ENV`, `SHELLOPTS` or imported
 * functions), its arguments only numbers and the bubblewrap command line.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { isExecutableFile } from "../local/commandPath.ts"

/** A closer program and the arguments that come before its own (`keep`, then the command). */
export interface Closer {
  readonly file: string
  readonly prefix: ReadonlyArray<string>
}

/** The exit code of a closer that could not close every descriptor (bubblewrap did not run). */
export const closerFailureExitCode = 125

const noProc = `echo "effect-exec: no /proc/self/fd: cannot close the descriptors a sandbox would inherit" >&2; ` +
  `exit ${closerFailureExitCode}`

/** `$1` is the last descriptor kept; every one above it is closed, then the rest of the arguments is run. */
const bashScript = `k=$1; shift; [ -d /proc/self/fd ] || { ${noProc}; }; ` +
  `for f in /proc/self/fd/*; do f=\${f##*/}; [ "$f" -gt "$k" ] && exec {f}>&-; done; exec "$@"`

/** The same for a POSIX `sh`: descriptors 0 to 9 only, then a check that nothing above `$1` is left. */
const shScript = `k=$1; shift; [ -d /proc/self/fd ] || { ${noProc}; }; ` +
  `for f in /proc/self/fd/*; do f=\${f##*/}; ` +
  `if [ "$f" -gt "$k" ]; then case $f in ?) eval "exec $f>&-";; esac; fi; done; ` +
  `for f in /proc/self/fd/*; do f=\${f##*/}; if [ "$f" -gt "$k" ] && [ -e "/proc/self/fd/$f" ]; then ` +
  `echo "effect-exec: descriptor $f would reach the sandbox, and sh cannot close it (install bash or perl)" >&2; ` +
  `exit ${closerFailureExitCode}; fi; done; exec "$@"`

const perlScript = `my $k = shift; opendir(my $d, "/proc/self/fd") or do { ` +
  `print STDERR "effect-exec: no /proc/self/fd: cannot close the descriptors a sandbox would inherit\\n"; ` +
  `exit ${closerFailureExitCode} }; ` +
  `my @f = grep { /^\\d+$/ && $_ > $k } readdir $d; closedir $d; POSIX::close($_) for @f; ` +
  `exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n"`

/** The closers, best first: each where it usually is. */
export const closers: ReadonlyArray<{ readonly paths: ReadonlyArray<string>; readonly prefix: ReadonlyArray<string> }> =
  [
    { paths: ["/bin/bash", "/usr/bin/bash"], prefix: ["-p", "-c", bashScript, "bash"] },
    { paths: ["/usr/bin/perl", "/bin/perl"], prefix: ["-MPOSIX", "-e", perlScript] },
    { paths: ["/bin/sh", "/usr/bin/sh"], prefix: ["-c", shScript, "sh"] }
  ]

/** The best closer this host has, or `undefined` when it has none. */
export const findCloser: Effect.Effect<Closer | undefined> = Effect.gen(function*() {
  for (const candidate of closers) {
    for (const file of candidate.paths) {
      if (yield* isExecutableFile(file)) return { file, prefix: candidate.prefix }
    }
  }
  return undefined
})

/** What to spawn to run `file args…` with only descriptors 0 to `keep` open. */
export const closingDescriptors = (
  closer: Closer,
  file: string,
  args: ReadonlyArray<string>,
  keep: number
): { readonly file: string; readonly args: ReadonlyArray<string> } => ({
  file: closer.file,
  args: [...closer.prefix, String(keep), file, ...args]
})
