/**
 * The CLI's own terminal, lent to a command run with `--tty` for as long as
 * the scope lasts: stdin in raw mode (so every key, Ctrl-C included, goes to
 * the command as a byte, and the command's terminal does the echo and the
 * line editing), stdin's bytes as the command's keystrokes, and the window's
 * size changes (SIGWINCH) as resizes. Raw mode is undone when the scope
 * closes — a normal exit, an interruption, a failure — and, should the
 * process exit some other way, when it exits.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as NodeChildProcess from "node:child_process"
import type * as Protocol from "../../Protocol.ts"
import * as Stdin from "./stdin.ts"

/** What the command gets of the terminal: the shape of `Exec.Terminal`. */
export interface LentTerminal {
  readonly size?: Protocol.TerminalSize
  readonly input: Stream.Stream<Uint8Array>
  readonly resize: Stream.Stream<Protocol.TerminalSize>
}

/** A stream of this process's: a terminal, a pipe or a file, with its descriptor. */
type StdinStream = NodeJS.ReadStream & { readonly fd: number }

/** Ctrl-D: at the start of a line, end of input for the program reading the terminal. */
const endOfInput = new Uint8Array([4])

const sizeOf = (output: NodeJS.WriteStream): Protocol.TerminalSize | undefined =>
  output.isTTY && output.rows > 0 && output.columns > 0 ? { rows: output.rows, cols: output.columns } : undefined

/**
 * Raw mode on `input` (a terminal) until the scope closes or the process
 * exits. Node's raw mode keeps output processing on (`\n` written as
 * `\r\n`), which would move the cursor of a full-screen program that writes a
 * bare line feed; `stty -opost` turns it off as `ssh -t` does. Leaving raw mode
 * restores the settings the terminal had before, output processing included.
 */
const rawMode = (input: StdinStream): Effect.Effect<void, never, Scope.Scope> =>
  input.isTTY
    ? Effect.asVoid(Effect.acquireRelease(
      Effect.sync(() => {
        const restore = () => input.setRawMode(false)
        input.setRawMode(true)
        // without stty the output stays processed: lines still look right
        NodeChildProcess.spawnSync("stty", ["-opost"], { stdio: [input.fd, "ignore", "ignore"] })
        process.once("exit", restore)
        return restore
      }),
      (restore) =>
        Effect.sync(() => {
          process.off("exit", restore)
          restore()
        })
    ))
    : Effect.void

/**
 * What is typed, as it is typed. Read only as fast as the command takes it.
 * When `input` is no terminal (a pipe, a file), its end is sent as Ctrl-D,
 * which is how a terminal says so.
 */
const keystrokes = (input: NodeJS.ReadStream): Stream.Stream<Uint8Array> =>
  Stdin.bytes(input).pipe(Stream.concat(input.isTTY ? Stream.empty : Stream.succeed(endOfInput)))

/** The window's new sizes, latest first-come: a burst of SIGWINCH keeps only the last. */
const resizes = (output: NodeJS.WriteStream): Stream.Stream<Protocol.TerminalSize> =>
  Stream.callback<Protocol.TerminalSize>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const onResize = () => {
          const size = sizeOf(output)
          if (size !== undefined) Queue.offerUnsafe(queue, size)
        }
        output.on("resize", onResize)
        return onResize
      }),
      (onResize) => Effect.sync(() => void output.off("resize", onResize))
    ), { bufferSize: 1, strategy: "sliding" })

/**
 * Lends this process's terminal to a command for the current scope. Without
 * a terminal on stdin there is no raw mode, and stdin's bytes are forwarded
 * as they are; without one on stdout the command's terminal keeps its default
 * size.
 */
export const lend = (
  input: StdinStream = process.stdin,
  output: NodeJS.WriteStream = process.stdout
): Effect.Effect<LentTerminal, never, Scope.Scope> =>
  Effect.as(rawMode(input), {
    ...(sizeOf(output) === undefined ? {} : { size: sizeOf(output)! }),
    input: keystrokes(input),
    resize: resizes(output)
  })
