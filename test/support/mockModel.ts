/**
 * A scripted model for the real Codex CLI: a loopback HTTP server that speaks
 * enough of OpenAI's Responses API (`POST /v1/responses`, answered with
 * server-sent events) for `codex exec` to run a turn. Each request takes the
 * next turn of the script, which answers it with tool calls or a message; every
 * request is recorded, so a test reads what the model was given — the prompt,
 * `AGENTS.md`, and each tool's output in the request after its call.
 *
 * The CLI sends the whole history with every request (`store: false`), so the
 * last request holds every tool call and its output.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/** What the CLI sent for one model turn: headers and the parsed Responses API request. */
export interface ModelRequest {
  readonly headers: IncomingHttpHeaders
  readonly body: any
}

/** What the model does in one answer: call a tool, or end the turn with a message. */
export type Action =
  | { readonly _tag: "FunctionCall"; readonly name: string; readonly arguments: Record<string, unknown> }
  | { readonly _tag: "CustomToolCall"; readonly name: string; readonly input: string }
  | { readonly _tag: "Message"; readonly text: string }

/** One model turn: what the model does in answer to a request (it may read the request, e.g. for a session id). */
export type Turn = (request: ModelRequest) => ReadonlyArray<Action>

// =============================================================================
// Turns
// =============================================================================

/** Calls a function tool (`exec_command`, `write_stdin`, `view_image`, …) with these arguments. */
export const callFunction = (
  name: string,
  args: Record<string, unknown> | ((request: ModelRequest) => Record<string, unknown>)
): Turn =>
(request) => [{ _tag: "FunctionCall", name, arguments: typeof args === "function" ? args(request) : args }]

/** The arguments of Codex 0.169's `exec_command` tool. */
export interface ExecCommandArguments {
  readonly cmd: string
  readonly workdir?: string
  readonly tty?: boolean
  /** How long the tool waits for the command before answering "Process running" (250–30 000; default 10 000). */
  readonly yield_time_ms?: number
  readonly max_output_tokens?: number
}

/** Runs a shell command in the environment. */
export const execCommand = (args: ExecCommandArguments): Turn => callFunction("exec_command", { ...args })

/** The arguments of `write_stdin`: `session_id` is the number a running `exec_command` reported. */
export interface WriteStdinArguments {
  readonly session_id: number
  readonly chars?: string
  readonly yield_time_ms?: number
}

/** Writes to (or, with no `chars`, polls) a running session, whose id is read from the request. */
export const writeStdin = (args: (request: ModelRequest) => WriteStdinArguments): Turn =>
  callFunction("write_stdin", (request) => ({ ...args(request) }))

/** Shows the model an image file of the environment. */
export const viewImage = (path: string): Turn => callFunction("view_image", { path })

/** Edits files with Codex's patch format (a freeform tool: the patch is the call's whole input). */
export const applyPatch = (patch: string): Turn => () => [{ _tag: "CustomToolCall", name: "apply_patch", input: patch }]

/** Ends the turn with a message to the user. */
export const say = (text: string): Turn => () => [{ _tag: "Message", text }]

// =============================================================================
// What the model was given
// =============================================================================

/** A tool call of the model and the output the CLI sent back for it. */
export interface ToolResult {
  readonly tool: string
  /** The call's arguments (JSON text) or, for a freeform tool, its input. */
  readonly call: string
  /** A text, or content items (`view_image` answers `[{type: "input_image", image_url}]`). */
  readonly output: string | ReadonlyArray<any>
}

/** Every tool call in `request`'s history with its output, in call order. */
export const toolResults = (request: ModelRequest): ReadonlyArray<ToolResult> => {
  const input: ReadonlyArray<any> = request.body?.input ?? []
  const calls = new Map<string, any>()
  const results: Array<ToolResult> = []
  for (const item of input) {
    if (item.type === "function_call" || item.type === "custom_tool_call") calls.set(item.call_id, item)
    if (item.type === "function_call_output" || item.type === "custom_tool_call_output") {
      const call = calls.get(item.call_id)
      results.push({ tool: call?.name ?? "?", call: call?.arguments ?? call?.input ?? "", output: item.output })
    }
  }
  return results
}

/** The text parts of every message in `request`'s input (instructions, `AGENTS.md`, the prompt, …). */
export const inputTexts = (request: ModelRequest): ReadonlyArray<string> =>
  (request.body?.input ?? []).flatMap((item: any) =>
    Array.isArray(item.content)
      ? item.content.flatMap((part: any) => (typeof part.text === "string" ? [part.text] : []))
      : []
  )

// =============================================================================
// The server
// =============================================================================

export interface MockModel {
  /** The provider's `base_url` (`http://127.0.0.1:PORT/v1`). */
  readonly baseUrl: string
  /** Every `POST /v1/responses` so far, in order. */
  readonly requests: ReadonlyArray<ModelRequest>
}

const readBody = (request: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    request.on("error", reject)
  })

/** An action as a Responses API output item, with fresh ids. */
const toItem = (action: Action, ids: () => string): Record<string, unknown> => {
  switch (action._tag) {
    case "FunctionCall":
      return {
        type: "function_call",
        id: `fc_${ids()}`,
        call_id: `call_${ids()}`,
        name: action.name,
        arguments: JSON.stringify(action.arguments),
        status: "completed"
      }
    case "CustomToolCall":
      return {
        type: "custom_tool_call",
        id: `ctc_${ids()}`,
        call_id: `call_${ids()}`,
        name: action.name,
        input: action.input,
        status: "completed"
      }
    case "Message":
      return {
        type: "message",
        id: `msg_${ids()}`,
        role: "assistant",
        status: "completed",
        content: [{ type: "output_text", text: action.text, annotations: [] }]
      }
  }
}

/** The event stream of one response: created, each item added and done, completed (with usage). */
const streamResponse = (
  response: ServerResponse,
  id: string,
  model: string,
  items: ReadonlyArray<Record<string, unknown>>
) => {
  let sequence = 0
  const send = (type: string, data: Record<string, unknown>) =>
    response.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...data })}\n\n`)
  const base = { id, object: "response", created_at: Math.floor(Date.now() / 1000), model }
  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
  send("response.created", { response: { ...base, status: "in_progress", output: [] } })
  items.forEach((item, output_index) => {
    send("response.output_item.added", {
      output_index,
      item: { ...item, status: "in_progress", ...(item["type"] === "message" ? { content: [] } : {}) }
    })
    send("response.output_item.done", { output_index, item })
  })
  send("response.completed", {
    response: {
      ...base,
      status: "completed",
      output: items,
      usage: {
        input_tokens: 100,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: 10,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 110
      }
    }
  })
  response.end()
}

const fail = (response: ServerResponse, status: number, message: string) => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify({ error: { message, type: "mock_model_error" } }))
}

/**
 * Serves `script` on 127.0.0.1 for the scope: request n gets turn n. A request
 * past the script's end, or a turn that throws, gets HTTP 400 with the reason
 * (the CLI fails the run and prints a 400's body; a 5xx it would hide behind
 * "high demand").
 */
export const serve = (script: ReadonlyArray<Turn>): Effect.Effect<MockModel, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly model: MockModel; readonly close: () => void }>((resume) => {
      const requests: Array<ModelRequest> = []
      let counter = 0
      const ids = () => `mock${(++counter).toString().padStart(4, "0")}`
      const server = createServer((request, response) => {
        void readBody(request).then((text) => {
          if (request.method !== "POST" || !request.url?.endsWith("/responses")) {
            return fail(response, 404, `mock model: no route ${request.method} ${request.url}`)
          }
          let body: any
          try {
            body = JSON.parse(text)
          } catch {
            return fail(response, 400, "mock model: the request body is not JSON")
          }
          const modelRequest: ModelRequest = { headers: request.headers, body }
          requests.push(modelRequest)
          const turn = script[requests.length - 1]
          if (turn === undefined) {
            return fail(
              response,
              400,
              `mock model: the script has ${script.length} turns, this is request ${requests.length}`
            )
          }
          let items: ReadonlyArray<Record<string, unknown>>
          try {
            items = turn(modelRequest).map((action) => toItem(action, ids))
          } catch (error) {
            // a turn that cannot answer (no session to write to, …) fails the request, and so the run, loudly
            return fail(response, 400, `mock model: turn ${requests.length} failed: ${error}`)
          }
          streamResponse(response, `resp_${ids()}`, body.model ?? "mock", items)
        }, (error) => fail(response, 400, `mock model: ${error}`))
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({
          model: { baseUrl: `http://127.0.0.1:${port}/v1`, requests },
          close: () => {
            server.closeAllConnections()
            server.close()
          }
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ model }) => model))
