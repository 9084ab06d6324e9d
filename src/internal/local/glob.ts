/**
 * Case-insensitive globs (`*` any run of characters, `?` any one character,
 * everything else literal) matched in time linear in the name: a pattern
 * compiles to a bit-parallel automaton (one bit per position, a star a
 * self-loop on the position before it), so a name is read once, left to
 * right, whatever the pattern. A backtracking `RegExp` would take exponential
 * time on patterns such as `*a*a*a…*b`.
 *
 * @internal
 */

/** Folds case one UTF-16 unit at a time, so a `?` stands for the same unit in name and pattern. */
export const foldCase = (text: string): string => {
  const lower = text.toLowerCase()
  if (lower.length === text.length) return lower
  let folded = ""
  for (let i = 0; i < text.length; i++) {
    const unit = text[i]!
    const lowerUnit = unit.toLowerCase()
    folded += lowerUnit.length === 1 ? lowerUnit : unit
  }
  return folded
}

/** A compiled glob. */
export interface Glob {
  /** Positions (literals and `?`s); a name shorter than this cannot match. */
  readonly positions: number
  /** Whether the pattern has a star (without one, a match has exactly `positions` characters). */
  readonly hasStar: boolean
  /** 32-bit words per state vector. */
  readonly words: number
  /** Per character: the positions it can fill (its literal positions and every `?`). */
  readonly masks: ReadonlyMap<number, Uint32Array>
  /** The positions only a `?` can fill: any character not in `masks`. */
  readonly anyMask: Uint32Array
  /** The states a star keeps alive whatever the character (the state before each position a star precedes). */
  readonly loopMask: Uint32Array
}

const setBit = (vector: Uint32Array, bit: number) => {
  vector[bit >>> 5]! |= 1 << (bit & 31)
}

/** Compiles `pattern` (its case folded). Cost: linear in its length. */
export const compileGlob = (pattern: string): Glob => {
  const folded = foldCase(pattern)
  let positions = 0
  for (let i = 0; i < folded.length; i++) if (folded[i] !== "*") positions++
  // state s = "the first s positions matched"; states 0..positions
  const words = (positions >>> 5) + 1
  const anyMask = new Uint32Array(words)
  const loopMask = new Uint32Array(words)
  const literals = new Map<number, Array<number>>()
  let position = 0
  let hasStar = false
  for (let i = 0; i < folded.length; i++) {
    const code = folded.charCodeAt(i)
    if (code === 42 /* * */) {
      hasStar = true
      setBit(loopMask, position)
      continue
    }
    // filling position `position` moves state `position` to `position + 1`
    if (code === 63 /* ? */) setBit(anyMask, position + 1)
    else {
      const bits = literals.get(code)
      if (bits === undefined) literals.set(code, [position + 1])
      else bits.push(position + 1)
    }
    position++
  }
  const masks = new Map<number, Uint32Array>()
  for (const [code, bits] of literals) {
    const mask = Uint32Array.from(anyMask)
    for (const bit of bits) setBit(mask, bit)
    masks.set(code, mask)
  }
  return { positions, hasStar, words, masks, anyMask, loopMask }
}

/** Whether `name` (its case already folded by `foldCase`) matches `glob`. Cost: linear in the name's length. */
export const matchesFolded = (glob: Glob, name: string): boolean => {
  if (name.length < glob.positions || (!glob.hasStar && name.length !== glob.positions)) return false
  const { anyMask, loopMask, masks, words } = glob
  if (words === 1) {
    const loop = loopMask[0]!
    const any = anyMask[0]!
    let state = 1
    for (let i = 0; i < name.length && state !== 0; i++) {
      const mask = masks.get(name.charCodeAt(i))
      state = ((state << 1) & (mask === undefined ? any : mask[0]!)) | (state & loop)
    }
    return (state & (1 << glob.positions)) !== 0
  }
  const state = new Uint32Array(words)
  state[0] = 1
  let alive = true
  for (let i = 0; i < name.length && alive; i++) {
    const mask = masks.get(name.charCodeAt(i)) ?? anyMask
    let carry = 0
    alive = false
    for (let w = 0; w < words; w++) {
      const current = state[w]!
      const next = (((current << 1) | carry) & mask[w]!) | (current & loopMask[w]!)
      carry = current >>> 31
      state[w] = next
      if (next !== 0) alive = true
    }
  }
  return (state[glob.positions >>> 5]! & (1 << (glob.positions & 31))) !== 0
}

/** Whether `name` matches `pattern`, ignoring case. */
export const matches = (pattern: string, name: string): boolean => matchesFolded(compileGlob(pattern), foldCase(name))
