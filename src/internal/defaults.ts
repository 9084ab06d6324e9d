/**
 * Every default of the library in one place: the server's limits, the local
 * process table's retention, the remote client's timeouts, the consume loop's
 * constants, and the version. The CLI's flags and help, the server, the
 * executors and the README's tables all read them from here (a test checks the
 * README against them).
 *
 * @internal
 */
import packageJson from "../../package.json" with { type: "json" }

const MiB = 1024 * 1024

/** This library's version, from `package.json`. */
export const version: string = packageJson.version

/** The exec-server: sessions, limits per connection, session and server. */
export const server = {
  /** How long a disconnected session keeps its processes for a resume. */
  sessionTtlMillis: 30_000,
  /** Processes not yet closed, over all sessions. */
  maxProcesses: 4096,
  /** Processes not yet closed in one session. */
  maxProcessesPerSession: 1024,
  /** Requests of one connection served at once. */
  maxConcurrentRequests: 64,
  /**
   * Process starts of one session under way at once; more wait their turn.
   * Each spawn holds the server's thread while it forks the whole server (tens
   * of milliseconds at a few hundred MiB), so a client that starts processes
   * by the hundred gets its share of that thread, not all of it.
   */
  maxConcurrentStartsPerSession: 1,
  /** Requests of one connection waiting for a turn before new ones are refused. */
  maxQueuedRequests: 1024,
  /**
   * Sessions kept at once, attached or waiting for a resume; when all are
   * taken, the oldest detached one gives way to a new client.
   */
  maxSessions: 1024,
  /** Sessions attached at once to connections from one IP address: one client cannot take every slot. */
  maxSessionsPerAddress: 256,
  /**
   * WebSocket connections open at once from one IP address (counted from the
   * TCP accept, before the upgrade); more are answered 503 and closed.
   */
  maxConnectionsPerAddress: 512,
  /**
   * The largest WebSocket frame accepted: room for an `fs/writeFile` of
   * `fileSystem.maxFileBytes` (64 MiB of data are 85.4 MiB of base64).
   */
  maxFrameBytes: 96 * MiB,
  /**
   * Bytes of requests one connection has in flight (received, not yet
   * answered) past which its socket is not read until answers free room
   * (backpressure); a single larger frame is still read, alone.
   */
  maxPendingRequestBytes: 16 * MiB,
  /**
   * The longest a `process/read` long-polls: a larger `waitMs` is answered
   * after this long, as a wait that saw nothing new (a Codex client then reads
   * again), so no read holds one of its connection's turns for longer.
   */
  maxReadWaitMillis: 30_000,
  /** Answers and notifications queued for a client before it is dropped. */
  maxBufferedBytes: 128 * MiB,
  /** A client that takes nothing from its socket for this long is dropped. */
  stallTimeoutMillis: 30_000,
  /**
   * Unread output at which `serve` pauses a backpressured process (Codex's 1
   * MiB retention is too little to cover a round trip to a client on a busy
   * host; measured in bench/README.md). Lent, it costs no garbage.
   */
  outputWindowBytes: 4 * MiB
} as const

/** Binary output frames (our extension), as a server writes them. */
export const outputFrames = {
  /**
   * The size of the reused buffers frames are written into: the local
   * executor's largest read of a pipe and a header; a larger chunk gets a
   * buffer of its own.
   */
  bufferBytes: 512 * 1024 + 1024,
  /** Buffers kept for reuse, over all connections of a server (4 MiB at most). */
  pooledBuffers: 8
} as const

/** The `fs/*` methods (server) and the remote file system (client). */
export const fileSystem = {
  /**
   * The largest file `fs/readFile` returns or `fs/writeFile` writes (a server
   * refuses larger ones), and that the remote file system reads or writes.
   */
  maxFileBytes: 64 * MiB,
  /** File bytes a server holds for reads and writes at once, over all clients; more wait their turn. */
  maxBytesInFlight: 256 * MiB,
  /** Entries one `fs/readDirectory` lists at most; a larger directory is refused. */
  maxDirectoryEntries: 100_000,
  /** Directory entries a server `stat`s at once for one `fs/readDirectory`. */
  statConcurrency: 16,
  /**
   * How deep a sandboxed recursive `fs/remove` or `fs/copy` goes: it holds two
   * descriptors per level, so a tree a client made arbitrarily deep is refused.
   */
  maxTreeDepth: 256,
  /**
   * The largest frame a Codex exec-server (0.169) accepts: a larger one drops
   * the connection, so the remote file system refuses such writes itself.
   */
  codexMaxFrameBytes: 16 * MiB
} as const

/** A process table (the local executor), with Codex's values. */
export const processTable = {
  /** Output retained per process, oldest whole chunks evicted first. */
  retainedBytes: MiB,
  /** How long a closed process stays readable, its id reserved. */
  closedRetentionMillis: 30_000,
  /** Closed processes kept at most, so memory is bounded by count too. */
  maxClosedRetained: 1024,
  /** A backpressured process with no reader for this long falls back to dropping. */
  readerIdleTimeoutMillis: 10_000,
  /** How long an exit waits for the pipes to drain before it is numbered anyway. */
  exitGraceMillis: 200,
  /**
   * How long closing the executor waits for a killed sandbox to be gone (its
   * pipes ended) before it stops waiting; only then are its mount points
   * removed (never while a sandbox may still use them).
   */
  destroyWaitMillis: 2_000,
  /**
   * Bytes written to a process's input that it has not taken yet, at most
   * (one larger write goes alone); a write that does not fit waits for room.
   */
  stdinWindowBytes: MiB,
  /** Write ids remembered per process for de-duplication. */
  rememberedWriteIds: 4096,
  /**
   * Output a follower of every event (the notifier pushing to a client) may
   * fall behind by, beyond the retention, before it is evicted all the same.
   */
  followerLagBytes: 16 * MiB
} as const

/** The local executor's pipes for a child's output: how they are made, and read. */
export const pipes = {
  /**
   * Pipes one run of `mkfifo` makes ahead (two per process: stdout and
   * stderr); the executor holds them open until starts take them, two file
   * descriptors each.
   */
  perBatch: 64,
  /** Pipes in an executor's first batch (its first start waits for it): each next batch is twice the last. */
  firstBatch: 8,
  /** Ready pipes below which the next batch is made while starts go on with what is left. */
  lowWater: 16,
  /**
   * The time a batch has for its own work (its directory, `mkfifo`, the
   * opens; not its wait for a turn to fork), a few milliseconds on a sound
   * file system. Past it the starts waiting for it go on with socket pairs,
   * and pipes are off for the executor: its `TMPDIR` hangs. Long enough that
   * a loaded machine is not taken for a hung one.
   */
  batchTimeoutMillis: 5_000,
  /**
   * The most one read of a pipe takes, and the largest chunk reads that
   * filled the pipe join into: beyond a pipe's 64 KiB, what the Unix socket of
   * a child's stdio holds (where no pipe could be made), so a reader that fell
   * behind catches up in one read. Everything done per chunk (a log entry, a
   * wake-up of the reader, a frame and a `writev` to a remote client, a turn
   * of its consume loop) is done half as often as at 256 KiB: measured in
   * bench/README.md ("Chunk size").
   */
  readBufferBytes: 512 * 1024,
  /** A read of this much filled the pipe (a FIFO's or a socket pair's reads stop here): more is coming. */
  fullReadBytes: 64 * 1024,
  /** A read is not started in less room than this: the slab is full, the next one is taken. */
  minReadBytes: 64 * 1024,
  /** Output a process writes before its reads go into slabs; less is copied into chunks of its own. */
  smallOutputBytes: 64 * 1024,
  /** The size of the slabs a process's output is read into: room for a few of the largest chunks. */
  slabBytes: 2 * MiB,
  /** Free slabs kept for reuse, over all processes (16 MiB at most). */
  pooledSlabs: 8
} as const

/** What a `process/start` may ask of the local executor, checked before anything is spawned; how spawns share the thread. */
export const spawn = {
  /**
   * How long spawns may hold the thread back to back (each forks the whole
   * process on it) before the event loop polls for I/O again: when many
   * processes start at once, everything else is still served every few tens
   * of milliseconds.
   */
  budgetMillis: 50,
  /** One argv or environment string (`NAME=value`), with its NUL: what Linux's `exec` takes (`MAX_ARG_STRLEN`). */
  maxStringBytes: 128 * 1024,
  /**
   * argv and the environment a request names (`env` and `envPolicy.set`), together: what Linux's `exec` takes with
   * the default 8 MiB stack (`ARG_MAX`). A larger start could not run anyway; refusing it early also bounds the
   * work its environment policy costs.
   */
  maxTotalBytes: 2 * MiB,
  /** Patterns in each of `envPolicy.exclude` and `envPolicy.includeOnly`. */
  maxEnvPatterns: 64,
  /**
   * Characters of the patterns of each of `envPolicy.exclude` and
   * `envPolicy.includeOnly`, together: matching costs a machine word per 32
   * of them for each character of each variable name.
   */
  maxEnvPatternChars: 1024
} as const

/** A `tty` process's terminal. */
export const terminal = {
  /** The size a terminal opens with when the request names none (Codex 0.169's fixed size). */
  rows: 24,
  cols: 80
} as const

/** The remote executor (a client of an exec-server). */
export const client = {
  /** How long connecting and initializing may take. */
  connectTimeoutMillis: 10_000,
  /** How long an answer may take beyond a read's own wait. */
  requestTimeoutMillis: 30_000,
  /** The largest frame accepted from a server: room for an `fs/readFile` of `fileSystem.maxFileBytes`. */
  maxFrameBytes: 96 * MiB,
  /**
   * How long closing waits for the server to answer the WebSocket close;
   * then the socket is dropped, so a server that never answers cannot keep
   * this process alive.
   */
  closeTimeoutMillis: 1_000,
  /** Output kept per process from notifications for `events` (oldest dropped). */
  notifiedOutputBytes: MiB,
  /** Output chunks kept per process from notifications for `events` (oldest dropped). */
  notifiedOutputChunks: 16_384,
  /**
   * How far out of order a notified output chunk may arrive and still be put
   * in its place (Codex sends stdout, stderr and the exit from separate tasks);
   * one that arrives later than this is dropped.
   */
  notifiedReorderWindow: 64,
  /**
   * Pushed output cached per streamed process before the cache gives up
   * (reads then ask the server): twice the window the server announces, at
   * least this much.
   */
  maxCachedBytesPerProcess: 4 * MiB,
  /** A binary frame smaller than this gets memory of its own rather than room in the shared slabs. */
  minSlabFrameBytes: 16 * 1024,
  /** The cache's bound whatever window a server announces. */
  maxCachedBytesPerProcessCeiling: 16 * MiB,
  /** Pushed entries (chunks, exit, close) cached per streamed process before the cache gives up. */
  maxCachedEntriesPerProcess: 16_384,
  /** Streamed processes cached at once. */
  maxStreamed: 64,
  /** Histories of closed processes kept for `events`. */
  keptHistories: 1024,
  /**
   * Process records kept at all (running or closed); past it the oldest is
   * forgotten, except one an `events` stream follows while it is open.
   */
  maxRecords: 4096,
  /**
   * Notifications held for a process id started again while a process of ours
   * under it is open, until the answer says which process they are of; more are
   * dropped (reads and `events` ask the server for what they miss).
   */
  maxHeldNotifications: 16_384,
  /** Output bytes of those notifications held at most. */
  maxHeldNotificationBytes: 16 * MiB,
  /**
   * What a read answer may hold beyond the `maxBytes` asked for: a server
   * returns the first chunk whole, and no server retains a chunk larger than
   * its 1 MiB window. A larger answer is a protocol violation.
   */
  readSlackBytes: MiB,
  /** Capabilities taken from a server's `initialize` answer at most. */
  maxCapabilities: 256,
  /**
   * Requests one connection has in flight at once; more wait in the client (a
   * burst of calls queues here instead of being refused by the server).
   */
  maxRequestsInFlight: 256,
  /** Starts one connection has in flight at once (within the requests), so reads never wait behind a burst of them. */
  maxStartsInFlight: 32,
  /** The first wait before a request refused for a server's limit is sent again; it doubles each time. */
  limitRetryBaseMillis: 20,
  /** The longest wait between two tries of a request refused for a server's limit. */
  limitRetryMaxMillis: 1_000
} as const

/** The consume loop (`Exec.run`), with Codex's values. */
export const exec = {
  /** The shell tool's timeout. */
  timeoutMillis: 10_000,
  /** The exit code of a command that timed out. */
  timeoutExitCode: 124,
  /** How long the loop reads on after the exit (time spent waiting on the executor). */
  drainLimitMillis: 2_000,
  /**
   * Output read after the exit for which full reads give the drain its whole
   * limit again: a backlog written before the exit (a backpressured
   * executor's window) is read whole, a background child writing forever is not.
   */
  drainBacklogBytes: 8 * MiB,
  /** Live deltas sent per call. */
  maxDeltas: 10_000,
  /** Bytes kept per stream by the shell tool's capture. */
  shellToolBytes: MiB,
  /** Bytes asked for by one `process/read`. */
  readBytes: 512 * 1024,
  /** The long-poll wait of one `process/read`. */
  readWaitMillis: 1_000,
  /** The largest chunk of a command's stdin one `process/write` carries (Codex's frames are 16 MiB at most). */
  writeBytes: MiB
} as const

/** The sandbox (bubblewrap) of the local executor. */
export const sandbox = {
  /** Entries a policy may hold; each may become a mount. */
  maxEntries: 256,
  /** How long probing bubblewrap (a trial sandbox) may take. */
  probeTimeoutMillis: 10_000,
  /**
   * The most arguments bubblewrap parses (its `MAX_ARGS`): the mounts, three
   * per environment variable of the command, and the command's argv.
   */
  maxBwrapArguments: 9000,
  /** The environment variable naming the bubblewrap binary (else `bwrap` on `PATH`). */
  bwrapVariable: "EXEC_SANDBOX_BWRAP"
} as const

/** The environment registry (`EnvironmentRegistry`): many environments by id. */
export const environments = {
  /**
   * Runs admitted at once per environment: the server's requests served at
   * once per connection (`server.maxConcurrentRequests`), since each run
   * holds about one long-poll read on the environment's one connection.
   */
  maxConcurrentRuns: 64,
  /** An environment nobody holds keeps its connection this long, then it is closed. */
  idleTimeToLiveMillis: 60_000,
  /** The first health probe of an environment marked unhealthy comes this long after the mark. */
  probeIntervalMillis: 1_000,
  /** Probes of an environment that stays unhealthy back off (doubling) up to this interval. */
  maxProbeIntervalMillis: 30_000,
  /** Codex's connect timeout of a `url` environment (`connect_timeout_sec`). */
  connectTimeoutMillis: 10_000,
  /** Codex's initialize timeout of any environment (`initialize_timeout_sec`). */
  initializeTimeoutMillis: 10_000,
  /** The bytes of an exec-server program's stderr kept to say why it died. */
  programStderrBytes: 4096,
  /** An exec-server program killed with SIGTERM gets this long before SIGKILL. */
  programKillGraceMillis: 2_000,
  /** The longest environment id, as Codex allows. */
  maxIdLength: 64,
  /** Where Codex keeps its environments in `$CODEX_HOME`. */
  codexFileName: "environments.toml",
  /** The id Codex gives the environment of `CODEX_EXEC_SERVER_URL` (ours: `EXEC_SERVER_URL`). */
  remoteId: "remote",
  /** The id of this machine's environment. */
  localId: "local"
} as const
