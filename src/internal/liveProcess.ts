/**
 * Whether a process id names a live process, for the directories this
 * library names after the process that made them (a sandbox's mount claims,
 * a batch of pipes): one whose maker is gone is left over, for the next
 * process to remove.
 *
 * @internal
 */

/** Whether `pid` names a process, of any user (`EPERM`: there is one, not ours to signal). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}
