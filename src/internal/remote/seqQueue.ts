/**
 * A queue of entries kept in seq order, for what the remote client holds of a
 * process's notified output: appending in order and dropping the oldest are
 * amortised O(1), finding a seq is O(log n), and an entry that arrives out of
 * order is put in its place only within a window of the newest ones (so a
 * server that sends falling seqs costs O(1) a frame, never a sorted insert
 * into everything). No operation steps through seq numbers one by one: a gap
 * of 2^53 costs what a gap of 1 does.
 *
 * @internal
 */

export class SeqQueue<A extends { readonly seq: number }> {
  private items: Array<A | undefined> = []
  /** Index of the first entry in `items`; those before it were shifted out. */
  private head = 0

  /** How many entries it holds. */
  get length(): number {
    return this.items.length - this.head
  }

  /**
   * The slots it holds, live or shifted out and not yet compacted away: what
   * its memory grows with (at most the live entries plus 1024 and as many
   * again).
   */
  get capacity(): number {
    return this.items.length
  }

  /** The entry at `index` (0 is the oldest; none before it: the slots shifted out are empty). */
  at(index: number): A | undefined {
    return this.items[this.head + index]
  }

  /** Replaces every entry by what `f` makes of it (the same seq: the order holds). */
  replaceAll(f: (entry: A) => A): void {
    for (let i = this.head; i < this.items.length; i++) this.items[i] = f(this.items[i]!)
  }

  get first(): A | undefined {
    return this.at(0)
  }

  get last(): A | undefined {
    return this.at(this.length - 1)
  }

  /** The index of the first entry whose seq is greater than `seq` (`length` if none). */
  indexAfter(seq: number): number {
    let low = this.head
    let high = this.items.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.items[middle]!.seq <= seq) low = middle + 1
      else high = middle
    }
    return low - this.head
  }

  /** The index of the entry with exactly `seq`, or -1. */
  indexOf(seq: number): number {
    const index = this.indexAfter(seq - 1)
    return this.at(index)?.seq === seq ? index : -1
  }

  /**
   * Puts `entry` in seq order: appended when it is the newest, inserted when
   * it belongs among the `window` newest entries. Returns false (and keeps
   * nothing) for a seq already held or one older than the window.
   */
  insert(entry: A, window: number): boolean {
    const last = this.last
    if (last === undefined || entry.seq > last.seq) {
      this.items.push(entry)
      return true
    }
    const index = this.indexAfter(entry.seq)
    if (this.at(index - 1)?.seq === entry.seq || index < this.length - window) return false
    this.items.splice(this.head + index, 0, entry)
    return true
  }

  /** Removes and returns the oldest entry. */
  shift(): A | undefined {
    if (this.length === 0) return undefined
    const entry = this.items[this.head]
    this.items[this.head++] = undefined
    // compact once the dead prefix outweighs the live entries: amortised O(1)
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return entry
  }

  /** The entries with a seq greater than `seq`, oldest first. */
  after(seq: number): Array<A> {
    return this.items.slice(this.head + this.indexAfter(seq)) as Array<A>
  }
}
