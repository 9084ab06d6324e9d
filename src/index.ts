/**
 * effect-exec: run shell commands in an execution environment — this machine
 * or a remote exec-server — as Effect services.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as CappedBuffer from "./CappedBuffer.ts"
/** @since 0.1.0 */
export * as Environment from "./Environment.ts"
/** @since 0.1.0 */
export * as EnvironmentRegistry from "./EnvironmentRegistry.ts"
/** @since 0.1.0 */
export * as Exec from "./Exec.ts"
/** @since 0.1.0 */
export * as Executor from "./Executor.ts"
/** @since 0.1.0 */
export * as ExecServer from "./ExecServer.ts"
/** @since 0.1.0 */
export * as JsonRpc from "./JsonRpc.ts"
/** @since 0.1.0 */
export * as LocalExecutor from "./LocalExecutor.ts"
/** @since 0.1.0 */
export * as OutputSink from "./OutputSink.ts"
/** @since 0.1.0 */
export * as Protocol from "./Protocol.ts"
/** @since 0.1.0 */
export * as RemoteExecutor from "./RemoteExecutor.ts"
/** @since 0.1.0 */
export * as Sandbox from "./Sandbox.ts"
/** @since 0.1.0 */
export * as WebSocketListener from "./WebSocketListener.ts"
