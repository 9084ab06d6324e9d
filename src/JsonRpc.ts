/**
 * JSON-RPC 2.0 as the Codex exec-server speaks it: one JSON message per frame,
 * with or without the `"jsonrpc"` member; error codes; the frame transports
 * (WebSocket, newline-delimited JSON on a pair of streams); and a client that
 * matches replies to requests and hands notifications on.
 *
 * The parts live under `internal/rpc/`: `message` (envelope, parsing, codes),
 * `transport` (the contract), `webSocket` and `streams` (the two transports),
 * `client`.
 *
 * @since 0.1.0
 */
export { type Client, makeClient, RpcError } from "./internal/rpc/client.ts"
export { encode, Envelope, ErrorCode, type ParsedFrame, parseFrame, type RequestId } from "./internal/rpc/message.ts"
export { fromStreams } from "./internal/rpc/streams.ts"
export { type Transport, TransportClosed } from "./internal/rpc/transport.ts"
export { fromWebSocket } from "./internal/rpc/webSocket.ts"
