/**
 * Case-insensitive globs (`*` any run of characters, `?` any one character,
 * everything else literal) matched in time linear in the name: a list of
 * patterns compiles to one bit-parallel automaton (a bit per position of each
 * pattern, a star a self-loop on the position before it), so a name is read
 * once, left to right, whatever the patterns, at a cost of one machine word
 * per 32 positions of all of them. A backtracking `RegExp` takes exponential
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

/** Globs compiled together: a name matches when it matches any of them. */
export interface GlobSet {
  /** 32-bit words per state vector. */
  readonly words: number
  /** The start state of every pattern. */
  readonly startMask: Uint32Array
  /** The final state of every pattern: a name matches when one of them is reached. */
  readonly finalMask: Uint32Array
  /** Per ASCII character: the positions it can fill (its literal positions and every `?`). */
  readonly asciiMasks: ReadonlyArray<Uint32Array | undefined>
  /** The same for other characters. */
  readonly otherMasks: ReadonlyMap<number, Uint32Array>
  /** The positions only a `?` fills: those of any character without a mask. */
  readonly anyMask: Uint32Array
  /** The states a star keeps whatever the character. */
  readonly loopMask: Uint32Array
}

const setBit = (vector: Uint32Array, bit: number) => {
  vector[bit >>> 5]! |= 1 << (bit & 31)
}

/**
 * Compiles `patterns` (case folded) into one automaton. Pattern `j` owns the
 * states `offset..offset + positions`: state `offset + s` means "its first
 * `s` positions matched". Shifting moves every state one position on, and the
 * masks only ever hold positions past a start state, so nothing spills from
 * one pattern into the next. Cost: linear in the patterns' length.
 */
export const compileGlobs = (patterns: ReadonlyArray<string>): GlobSet => {
  const folded = patterns.map(foldCase)
  let states = 0
  for (const pattern of folded) {
    states++
    for (let i = 0; i < pattern.length; i++) if (pattern.charCodeAt(i) !== 42 /* * */) states++
  }
  const words = Math.max(1, Math.ceil(states / 32))
  const vector = () => new Uint32Array(words)
  const startMask = vector()
  const finalMask = vector()
  const anyMask = vector()
  const loopMask = vector()
  const literals = new Map<number, Array<number>>()
  let state = 0
  for (const pattern of folded) {
    setBit(startMask, state)
    for (let i = 0; i < pattern.length; i++) {
      const code = pattern.charCodeAt(i)
      if (code === 42 /* * */) {
        setBit(loopMask, state)
        continue
      }
      // filling this position moves `state` to `state + 1`
      state++
      if (code === 63 /* ? */) setBit(anyMask, state)
      else {
        const bits = literals.get(code)
        if (bits === undefined) literals.set(code, [state])
        else bits.push(state)
      }
    }
    setBit(finalMask, state)
    state++
  }
  const asciiMasks: Array<Uint32Array | undefined> = Array.from({ length: 128 }, () => undefined)
  const otherMasks = new Map<number, Uint32Array>()
  for (const [code, bits] of literals) {
    const mask = Uint32Array.from(anyMask)
    for (const bit of bits) setBit(mask, bit)
    if (code < 128) asciiMasks[code] = mask
    else otherMasks.set(code, mask)
  }
  return { words, startMask, finalMask, asciiMasks, otherMasks, anyMask, loopMask }
}

const maskOf = (globs: GlobSet, code: number): Uint32Array =>
  (code < 128 ? globs.asciiMasks[code] : globs.otherMasks.get(code)) ?? globs.anyMask

/**
 * Whether `name` (its case folded by `foldCase`) matches any of `globs`.
 * Cost: one pass over the name, `globs.words` machine words per character.
 */
export const matchesAnyFolded = (globs: GlobSet, name: string): boolean => {
  const { finalMask, loopMask, startMask, words } = globs
  if (words === 1) {
    const loop = loopMask[0]!
    let state = startMask[0]!
    for (let i = 0; i < name.length && state !== 0; i++) {
      state = ((state << 1) & maskOf(globs, name.charCodeAt(i))[0]!) | (state & loop)
    }
    return (state & finalMask[0]!) !== 0
  }
  const state = Uint32Array.from(startMask)
  let alive = true
  for (let i = 0; i < name.length && alive; i++) {
    const mask = maskOf(globs, name.charCodeAt(i))
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
  for (let w = 0; w < words; w++) if ((state[w]! & finalMask[w]!) !== 0) return true
  return false
}

/** Whether `name` matches any of `patterns`, ignoring case. */
export const matchesAny = (patterns: ReadonlyArray<string>, name: string): boolean =>
  matchesAnyFolded(compileGlobs(patterns), foldCase(name))
