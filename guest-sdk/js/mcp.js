// A client of MCP (Model Context Protocol) servers over the Streamable HTTP
// transport, through the standard fetch (wasi:http): the server's origin must be
// in the plugin's [[plugin.outbound]], and the host adds its secret_headers (a
// bearer token for the server) to every request, so the plugin never holds them.
//
//   import { mcp } from 'agent-sdk/mcp';
//   const client = await mcp.connect('https://tools.example.com/mcp');
//   const tools = await client.tools();                  // [{ name, description, inputSchema }]
//   const sum = await client.call('add', { a: 2, b: 3 }); // "5"
//
// To give a model the server's tools, client.chatTools() makes them Chat tools
// ({ name, description, parameters, handler }) whose handlers call the server;
// chatTools({ prefix: 'mcp_' }) puts a prefix before each name the model sees
// (mcp_add), so they cannot clash with local tools:
//
//   const tools = [...(await client.chatTools({ prefix: 'mcp_' })), myTool];
//   const reply = await Chat.fromEnv().completeWithTools(messages, tools);
//
// connect() sends `initialize` (offering PROTOCOL_VERSION) and then the
// `notifications/initialized` notification; every later request carries the
// Mcp-Session-Id the server gave (if any) and the MCP-Protocol-Version agreed on.
// Each request is one POST of a JSON-RPC 2.0 message, answered as
// application/json or as an event stream (text/event-stream) whose events may
// bring notifications before the answer: they are skipped, and the stream is left
// once the answer is in. Each POST counts in the turn's max_requests (16 by
// default): connecting costs 2, listing tools 1 per page, a call 1.
//
// Every failure throws an McpError: a request that fails or an HTTP error status
// (`status` set), a JSON-RPC error (`code` set), an answer that is not JSON-RPC,
// and a tool result marked isError (its message the tool's text, as it is, for a
// model to read; `toolError` true).

/** The protocol version this client offers in `initialize`. */
export const PROTOCOL_VERSION = '2025-11-25';

const VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];

const encoder = new TextEncoder();
const start = (text) => String(text).slice(0, 200);
const json = (value) => {
  try {
    return start(JSON.stringify(value));
  } catch {
    return start(value);
  }
};

/** An MCP server could not be reached or answered an error. */
export class McpError extends Error {
  constructor(message, { code, status, toolError = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'McpError';
    this.code = code;
    this.status = status;
    this.toolError = toolError;
  }
}

/**
 * Connects to the MCP server at `url` (its endpoint, e.g.
 * https://tools.example.com/mcp): `initialize`, then `notifications/initialized`.
 */
export async function connect(url) {
  const client = new McpClient(url);
  const params = {
    protocolVersion: PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: 'agent-sdk-js', version: '0.1.0' },
  };
  const { result, session } = await client._request('initialize', params, true);
  const version = result?.protocolVersion;
  if (typeof version !== 'string') {
    throw new McpError(`initialize answered no protocolVersion: ${json(result)}`);
  }
  if (!VERSIONS.includes(version)) {
    throw new McpError(
      `the MCP server speaks protocol version ${version}, which this client does not (it speaks ${VERSIONS.join(', ')})`,
    );
  }
  client.protocolVersion = version;
  client.sessionId = session;
  client.serverInfo = result.serverInfo;
  await client._post('notifications/initialized', { jsonrpc: '2.0', method: 'notifications/initialized' });
  return client;
}

/** `import { mcp } from 'agent-sdk/mcp'`: `mcp.connect(url)`. */
export const mcp = { connect, McpError, PROTOCOL_VERSION };

/** A connection to an MCP server (its session); made by connect(). */
export class McpClient {
  #nextId = 1;

  constructor(url) {
    this.url = url;
    this.sessionId = undefined;
    this.protocolVersion = PROTOCOL_VERSION;
    this.serverInfo = undefined;
  }

  /**
   * Every tool of the server (tools/list, following nextCursor), as
   * { name, description, inputSchema } objects (description '' and inputSchema
   * { type: 'object' } when the server gives none): what a model needs to call
   * it ({ name, description, parameters: inputSchema, handler: (args) =>
   * client.call(name, args) }).
   */
  async tools() {
    const tools = [];
    let cursor;
    for (;;) {
      const page = await this.request('tools/list', cursor === undefined ? {} : { cursor });
      if (!Array.isArray(page?.tools)) {
        throw new McpError(`tools/list answered no tools: ${json(page)}`);
      }
      for (const tool of page.tools) {
        if (typeof tool?.name !== 'string') {
          throw new McpError(`tools/list answered a tool that is not one: ${json(tool)}`);
        }
        tools.push({
          name: tool.name,
          description: typeof tool.description === 'string' ? tool.description : '',
          inputSchema:
            tool.inputSchema !== null && typeof tool.inputSchema === 'object' ? tool.inputSchema : { type: 'object' },
        });
      }
      const next = page.nextCursor;
      // A server that hands the same cursor back would never end.
      if (typeof next !== 'string' || next === cursor) return tools;
      cursor = next;
    }
  }

  /**
   * Every tool of the server (tools()) as a Chat tool for completeWithTools /
   * streamWithTools: { name: prefix + its name, description, parameters: its
   * inputSchema, handler }, the handler calling the tool by its own name
   * (call()). A tool's error (an McpError) is the handler's, which the loop tells
   * the model (`error: ...`). Costs one request per page of tools/list, and one
   * per call the model makes.
   */
  async chatTools({ prefix = '' } = {}) {
    return (await this.tools()).map(({ name, description, inputSchema }) => ({
      name: prefix + name,
      description,
      parameters: inputSchema,
      handler: (args) => this.call(name, args),
    }));
  }

  /**
   * Calls the tool `name` with `args` and resolves to the text of its result: its
   * text content blocks, one per line (other blocks as a short note, e.g.
   * `[image image/png]`; with no content, its structuredContent as JSON). A
   * result marked isError throws an McpError with that text (`toolError` true).
   */
  async call(name, args = {}) {
    const result = await this.request('tools/call', { name, arguments: args ?? {} });
    const text = resultText(result);
    if (result?.isError === true) {
      throw new McpError(text || `the tool ${name} failed without saying why`, { toolError: true });
    }
    return text;
  }

  /** Any other request (resources/list, prompts/get...): its JSON-RPC result. */
  async request(method, params = {}) {
    return (await this._request(method, params)).result;
  }

  async _request(method, params, first = false) {
    const id = this.#nextId++;
    const { reply, session } = await this._post(method, { jsonrpc: '2.0', id, method, params }, id, first);
    if (reply === undefined) {
      throw new McpError(`the MCP server answered ${method} with no JSON-RPC response`);
    }
    return { result: outcome(method, reply), session };
  }

  async _post(method, message, id, first = false) {
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    if (!first) {
      headers['mcp-protocol-version'] = this.protocolVersion;
      if (this.sessionId) headers['mcp-session-id'] = this.sessionId;
    }
    let response;
    try {
      // A body of bytes: it goes out with its Content-Length.
      response = await fetch(this.url, { method: 'POST', headers, body: encoder.encode(JSON.stringify(message)) });
    } catch (e) {
      throw new McpError(`POST ${this.url.split('?')[0]}: ${e?.message ?? e}`, { cause: e });
    }
    const session = response.headers.get('mcp-session-id') ?? undefined;
    if (!response.ok) {
      const body = await response.text().catch(() => '');
      throw statusError(method, response.status, body, this.sessionId !== undefined);
    }
    if (id === undefined) {
      await response.arrayBuffer().catch(() => undefined);
      return { reply: undefined, session };
    }
    const type = (response.headers.get('content-type') ?? '').trim().toLowerCase();
    if (type.startsWith('text/event-stream')) {
      return { reply: await fromEvents(response, id), session };
    }
    const text = await read(() => response.text());
    let value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new McpError(`the MCP server's answer is not JSON (${e.message}): ${start(text)}`);
    }
    const reply = responseToValue(id, value);
    if (reply === undefined) {
      throw new McpError(`the MCP server's answer is not the JSON-RPC response to request ${id}: ${start(text)}`);
    }
    return { reply, session };
  }
}

async function read(fn) {
  try {
    return await fn();
  } catch (e) {
    throw new McpError(`reading the MCP server's answer: ${e?.message ?? e}`, { cause: e });
  }
}

/** The response to request `id` from an event stream, read until it comes. */
async function fromEvents(response, id) {
  const events = new Events();
  const decoder = new TextDecoder();
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await read(() => reader.read());
      if (done) break;
      for (const data of events.push(decoder.decode(value, { stream: true }))) {
        const reply = responseTo(id, data);
        if (reply !== undefined) {
          // Left here: a server may keep the stream open after it.
          await reader.cancel().catch(() => undefined);
          return reply;
        }
      }
    }
  }
  for (const data of [...events.push(decoder.decode()), ...events.finish()]) {
    const reply = responseTo(id, data);
    if (reply !== undefined) return reply;
  }
  throw new McpError("the MCP server's event stream ended without the answer");
}

/** The error of a non-2xx answer: the JSON-RPC error it carries, if any. */
export function statusError(method, status, body, inSession) {
  let reply;
  try {
    reply = JSON.parse(body);
  } catch {
    reply = undefined;
  }
  if (reply !== null && typeof reply === 'object' && reply.error !== undefined && reply.error !== null) {
    try {
      outcome(method, reply);
    } catch (e) {
      e.status = status;
      return e;
    }
  }
  if (status === 404 && inSession) {
    return new McpError(`the MCP server no longer knows this session (404 to ${method}): connect again`, { status });
  }
  return new McpError(`the MCP server answered ${method} with ${status} (${start(body.trim())})`, { status });
}

/** The result of a JSON-RPC response, or its error thrown. */
export function outcome(method, reply) {
  if (reply === null || typeof reply !== 'object' || Array.isArray(reply)) {
    throw new McpError(`the MCP server answered ${method} with ${json(reply)}`);
  }
  const error = reply.error;
  if (error !== undefined && error !== null) {
    const code = Number.isInteger(error.code) ? error.code : undefined;
    const message = typeof error.message === 'string' ? error.message : json(error);
    if (code !== undefined) {
      throw new McpError(`the MCP server answered ${method} with error ${code}: ${message}`, { code });
    }
    throw new McpError(`the MCP server answered ${method} with an error: ${message}`);
  }
  if (!('result' in reply)) {
    throw new McpError(`the MCP server answered ${method} with no result`);
  }
  return reply.result;
}

/** The response to request `id` in an event's data, if it is that. */
export function responseTo(id, data) {
  let value;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  return responseToValue(id, value);
}

function responseToValue(id, value) {
  if (Array.isArray(value)) {
    // A batch (protocol 2025-03-26): the response among its messages.
    for (const message of value) {
      const reply = responseToValue(id, message);
      if (reply !== undefined) return reply;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object' || !('result' in value || 'error' in value)) return undefined;
  if (!('id' in value)) return undefined;
  // An error about a request the server could not read has id null.
  if (value.id === null) return 'error' in value ? value : undefined;
  return value.id === id || (typeof value.id === 'string' && value.id === String(id)) ? value : undefined;
}

/** The text of a tools/call result. */
export function resultText(result) {
  const parts = [];
  for (const block of Array.isArray(result?.content) ? result.content : []) {
    if (block === null || typeof block !== 'object') continue;
    if (block.type === 'text') parts.push(String(block.text ?? ''));
    else if (block.type === 'resource') {
      const resource = block.resource ?? {};
      parts.push(typeof resource.text === 'string' ? resource.text : `[resource ${resource.uri ?? ''}]`);
    } else if (block.type === 'resource_link') parts.push(`[resource ${block.uri ?? ''}]`);
    else parts.push(`[${block.type} ${block.mimeType ?? ''}]`);
  }
  if (parts.length === 0 && result?.structuredContent !== undefined && result?.structuredContent !== null) {
    return JSON.stringify(result.structuredContent);
  }
  return parts.join('\n');
}

/**
 * A server-sent event stream read as it arrives: the data of each `message`
 * event (the default type) that has data (an empty one primes a resumable
 * stream).
 */
export class Events {
  #pending = '';
  #data = [];
  #event = '';

  /** The events `text` completes. */
  push(text) {
    const done = [];
    const last = text.lastIndexOf('\n');
    if (last < 0) {
      this.#pending += text;
      return done;
    }
    const lines = (this.#pending + text.slice(0, last)).split('\n');
    this.#pending = text.slice(last + 1);
    for (const line of lines) this.#line(line.replace(/\r$/, ''), done);
    return done;
  }

  /** The last event, when the stream ends without a blank line after it. */
  finish() {
    const done = [];
    if (this.#pending) this.#line(this.#pending.replace(/\r$/, ''), done);
    this.#pending = '';
    this.#line('', done);
    return done;
  }

  #line(line, done) {
    if (line === '') {
      const data = this.#data.join('\n');
      const event = this.#event;
      this.#data = [];
      this.#event = '';
      if (data !== '' && (event === '' || event === 'message')) done.push(data);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
  }
}
