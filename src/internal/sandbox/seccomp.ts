/**
 * The seccomp programs a sandbox installs (classic BPF, handed to bubblewrap
 * on a file descriptor with `--add-seccomp-fd`), the same rules Codex's Linux
 * helper installs:
 *
 * - `restricted` (network restricted): `socket` and `socketpair` fail with
 *   EPERM unless the family is `AF_UNIX`; `connect`, `accept`, `accept4`,
 *   `bind`, `listen`, `getpeername`, `getsockname`, `shutdown`, `sendto`,
 *   `sendmmsg`, `recvmmsg`, `getsockopt`, `setsockopt`, `ptrace`,
 *   `process_vm_readv`, `process_vm_writev` and the `io_uring` calls always
 *   fail with EPERM;
 * - `vsock` (network enabled, file system restricted): only `AF_VSOCK`
 *   sockets and `io_uring` (which can open them without `socket`) fail.
 *
 * Every other system call is allowed: this is a network filter, not a
 * general system-call filter. A call from another ABI (a 32-bit or x32
 * process) fails too, so it cannot go around the numbers checked here.
 * Built for x86_64 only; elsewhere there is no program and the sandbox is
 * unavailable.
 *
 * @internal
 */

/** Which filter: see the module header. */
export type FilterMode = "restricted" | "vsock"

// classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h)
const LD_W_ABS = 0x20
const JEQ_K = 0x15
const JGE_K = 0x35
const RET_K = 0x06
const RET_ALLOW = 0x7fff0000
const RET_KILL_PROCESS = 0x80000000
const RET_EPERM = 0x00050000 | 1

// offsets in struct seccomp_data
const NR_OFFSET = 0
const ARCH_OFFSET = 4
const ARG0_LOW_OFFSET = 16

const AUDIT_ARCH_X86_64 = 0xc000003e
const X32_SYSCALL_BIT = 0x40000000
const AF_UNIX = 1
const AF_VSOCK = 40

/** x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
const x86_64 = {
  socket: 41,
  connect: 42,
  accept: 43,
  sendto: 44,
  shutdown: 48,
  bind: 49,
  listen: 50,
  getsockname: 51,
  getpeername: 52,
  socketpair: 53,
  setsockopt: 54,
  getsockopt: 55,
  ptrace: 101,
  accept4: 288,
  recvmmsg: 299,
  sendmmsg: 307,
  process_vm_readv: 310,
  process_vm_writev: 311,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427
} as const

type Syscall = keyof typeof x86_64

const ioUring: ReadonlyArray<Syscall> = ["io_uring_setup", "io_uring_enter", "io_uring_register"]

/** Calls refused whatever their arguments. */
const alwaysDenied: Record<FilterMode, ReadonlyArray<Syscall>> = {
  restricted: [
    "connect",
    "accept",
    "accept4",
    "bind",
    "listen",
    "getpeername",
    "getsockname",
    "shutdown",
    "sendto",
    "sendmmsg",
    "recvmmsg",
    "getsockopt",
    "setsockopt",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    ...ioUring
  ],
  vsock: ioUring
}

interface Instruction {
  readonly code: number
  jt: number
  jf: number
  readonly k: number
}

/**
 * A small assembler: instructions are appended in order, and conditional jumps
 * name a label whose offset is filled in once every instruction is placed.
 */
class Program {
  private readonly instructions: Array<Instruction> = []
  private readonly labels = new Map<string, number>()
  private readonly fixups: Array<{ readonly at: number; readonly onTrue?: string; readonly onFalse?: string }> = []

  load(offset: number): void {
    this.instructions.push({ code: LD_W_ABS, jt: 0, jf: 0, k: offset })
  }

  jump(code: number, k: number, targets: { readonly onTrue?: string; readonly onFalse?: string }): void {
    this.fixups.push({ at: this.instructions.length, ...targets })
    this.instructions.push({ code, jt: 0, jf: 0, k })
  }

  ret(value: number): void {
    this.instructions.push({ code: RET_K, jt: 0, jf: 0, k: value })
  }

  label(name: string): void {
    this.labels.set(name, this.instructions.length)
  }

  assemble(): Uint8Array {
    const offset = (from: number, label: string | undefined): number => {
      if (label === undefined) return 0
      const distance = this.labels.get(label)! - from - 1
      if (distance < 0 || distance > 255) throw new Error(`seccomp jump to ${label} out of range`)
      return distance
    }
    for (const { at, onFalse, onTrue } of this.fixups) {
      this.instructions[at]!.jt = offset(at, onTrue)
      this.instructions[at]!.jf = offset(at, onFalse)
    }
    // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, native (little) endian
    const bytes = new Uint8Array(this.instructions.length * 8)
    const view = new DataView(bytes.buffer)
    this.instructions.forEach((instruction, index) => {
      view.setUint16(index * 8, instruction.code, true)
      view.setUint8(index * 8 + 2, instruction.jt)
      view.setUint8(index * 8 + 3, instruction.jf)
      view.setUint32(index * 8 + 4, instruction.k >>> 0, true)
    })
    return bytes
  }
}

/**
 * The filter program for `mode` on this machine's architecture, or
 * `undefined` where none is built (anything but x86_64).
 */
export const networkFilter = (mode: FilterMode, arch: string = process.arch): Uint8Array | undefined => {
  if (arch !== "x64") return undefined
  const program = new Program()
  program.load(ARCH_OFFSET)
  program.jump(JEQ_K, AUDIT_ARCH_X86_64, { onFalse: "kill" })
  program.load(NR_OFFSET)
  program.jump(JGE_K, X32_SYSCALL_BIT, { onTrue: "deny" })
  for (const name of alwaysDenied[mode]) program.jump(JEQ_K, x86_64[name], { onTrue: "deny" })
  program.jump(JEQ_K, x86_64.socket, { onTrue: "family" })
  program.jump(JEQ_K, x86_64.socketpair, { onTrue: "family" })
  program.ret(RET_ALLOW)
  program.label("family")
  program.load(ARG0_LOW_OFFSET)
  if (mode === "restricted") {
    program.jump(JEQ_K, AF_UNIX, { onFalse: "deny" })
  } else {
    program.jump(JEQ_K, AF_VSOCK, { onTrue: "deny" })
  }
  program.ret(RET_ALLOW)
  program.label("deny")
  program.ret(RET_EPERM)
  program.label("kill")
  program.ret(RET_KILL_PROCESS)
  return program.assemble()
}
