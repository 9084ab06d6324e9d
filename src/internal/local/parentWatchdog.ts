/**
 * Process groups that die with this process, however it ends — SIGKILL
 * included, which leaves no chance to run a finalizer. Linux's parent-death
 * signal (`prctl(PR_SET_PDEATHSIG)`, `setpriv --pdeathsig`) is no answer: it
 * reaches the direct child only, and a shell that forks its command leaves
 * the command running.
 *
 * Instead, one small `sh` outside every group we start (its own session, so a
 * terminal's Ctrl-C or hang-up does not reach it) reads the groups to watch
 * from a pipe: `+PGID` adds one, `-PGID` forgets it, `exit` ends the watch.
 * When the pipe reaches end-of-file without `exit` — this process is gone —
 * it kills every group still watched. The pipe is close-on-exec, so no child
 * holds it open; the watchdog costs one process of about 1 MB and wakes only
 * on a line.
 *
 * @internal
 */
import * as NodeChildProcess from "node:child_process"

/**
 * The watchdog's script (POSIX sh: dash's `kill` wants `-PGID`, not
 * `-- -PGID`). Groups are kept in one space-separated string, each between
 * spaces, so one can be found and cut out with pattern expansion.
 */
const script = `
groups=' '
while read -r line; do
  case $line in
    exit) exit 0 ;;
    +*) groups="$groups\${line#+} " ;;
    -*)
      group=\${line#-}
      case $groups in *" $group "*) groups="\${groups%% $group *} \${groups#* $group }" ;; esac
      ;;
  esac
done
for group in $groups; do kill -KILL "-$group" 2>/dev/null; done
`

/** A watchdog for the process groups of one executor. */
export class ParentWatchdog {
  private watchdog: NodeChildProcess.ChildProcess | undefined
  private failed = false

  /**
   * Watches the group `pgid` leads. The watchdog starts with the first group;
   * when it cannot start (no `sh`), groups are only killed by the executor's
   * own finalizers.
   */
  watch(pgid: number): void {
    this.send(`+${pgid}`)
  }

  /** Stops watching `pgid` (its processes are gone, and the id may be given to another group). */
  forget(pgid: number): void {
    if (this.watchdog !== undefined) this.send(`-${pgid}`)
  }

  /** Ends the watch without killing anything (the executor killed its groups itself). */
  close(): void {
    if (this.watchdog === undefined) return
    this.send("exit")
    this.watchdog.stdin?.end()
    this.watchdog = undefined
  }

  private send(line: string): void {
    const watchdog = this.start()
    if (watchdog?.stdin?.writable === true) watchdog.stdin.write(`${line}\n`)
  }

  private start(): NodeChildProcess.ChildProcess | undefined {
    if (this.watchdog !== undefined || this.failed) return this.watchdog
    try {
      const watchdog = NodeChildProcess.spawn("/bin/sh", ["-c", script], {
        detached: true,
        stdio: ["pipe", "ignore", "ignore"]
      })
      watchdog.on("error", () => {
        this.failed = true
        this.watchdog = undefined
      })
      watchdog.stdin.on("error", () => {})
      // neither the watchdog nor its pipe keeps this process alive
      watchdog.unref()
      ;(watchdog.stdin as unknown as { unref?: () => void }).unref?.()
      this.watchdog = watchdog
    } catch {
      this.failed = true
    }
    return this.watchdog
  }
}
