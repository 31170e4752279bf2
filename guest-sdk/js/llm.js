// A chat-completions client for OpenAI-compatible servers (OpenAI, a local
// llama.cpp or vLLM server...), over the standard fetch (wasi:http).
//
//   import { Chat } from 'agent-sdk/llm';
//   const chat = Chat.fromEnv();
//   const reply = await chat.complete([{ role: 'user', content: 'Hello' }]);  // whole
//   const streamed = await chat.stream([{ role: 'user', content: 'Hello' }]); // emitted piece by piece
//
// The plugin holds no key: the operator lists the model's origin in the plugin's
// [[plugin.outbound]] with the key as a secret header, and the host adds it. The
// base URL and the model come from the plugin's env (MODEL_URL, MODEL). Both calls
// throw a ModelError when the model cannot be reached, answers an error, or answers
// no text (never an empty reply as if the model had said it).
//
// Tools (OpenAI's function calling): a tool is a plain object { name, description,
// parameters (a JSON Schema of its arguments), handler(args) } whose handler
// returns a string (or a Promise of one). completeWithTools (and
// streamWithTools) send the tools, run each call the model asks for, send the
// results back, and so on until the model answers with text (at most maxSteps
// requests, 8 by default, else a MaxStepsError). Every message of the loop (the
// assistant's calls, one `tool` message per call, the final answer) is pushed
// onto the caller's `messages` array, so the plugin stores them for the next
// turn; trimHistory cuts a history to a budget without separating calls from
// their results.
//
//   const add = { name: 'add', description: 'Adds two numbers.',
//     parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } },
//     handler: ({ a, b }) => String(a + b) };
//   const messages = [{ role: 'user', content: 'What is 2 + 3?' }];
//   const reply = await chat.completeWithTools(messages, [add]);
//   session.append(...messages);   // the question, the call, its result, the answer

import { getEnvironment } from 'wasi:cli/environment@0.2.12';
import { emit } from './agent-sdk.js';

const encoder = new TextEncoder();

/** The model could not be reached, answered an error, or answered no text. */
export class ModelError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'ModelError';
  }
}

/** The model still called tools after `maxSteps` requests. */
export class MaxStepsError extends ModelError {
  constructor(message) {
    super(message);
    this.name = 'MaxStepsError';
  }
}

/** How many requests completeWithTools makes at most, unless told. */
export const DEFAULT_MAX_STEPS = 8;

const start = (text) => String(text).slice(0, 200);

/** A tool as a request names it: { type: 'function', function: {...} }. */
export function toolToOpenAI(tool) {
  return {
    type: 'function',
    function: { name: tool.name, description: tool.description ?? '', parameters: tool.parameters ?? { type: 'object', properties: {} } },
  };
}

/**
 * The end of `history` that fits in `maxItems` messages and, if given, about
 * `maxTokens` tokens (4 characters a token, 4 a message): for the messages of
 * past turns to send again. It never starts with a tool's result whose call was
 * cut off (servers refuse that): an assistant message that calls tools is kept
 * with its results or dropped with them.
 */
export function trimHistory(history, { maxItems = Infinity, maxTokens } = {}) {
  let from = Math.max(0, history.length - maxItems);
  if (maxTokens !== undefined && maxTokens !== null) {
    let used = 0;
    let fits = history.length;
    while (fits > from) {
      used += tokens(history[fits - 1]);
      if (used > maxTokens) break;
      fits -= 1;
    }
    from = fits;
  }
  while (from < history.length && history[from]?.role === 'tool') from += 1;
  return history.slice(from);
}

function tokens(message) {
  if (message === null || typeof message !== 'object') {
    return 4 + Math.ceil(String(JSON.stringify(message)).length / 4);
  }
  let size = typeof message.content === 'string' ? message.content.length : 0;
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    size += (call?.id ?? '').length + (call?.function?.name ?? '').length + (call?.function?.arguments ?? '').length;
  }
  return 4 + Math.ceil(size / 4);
}

/** Runs one call: its result, or `error: ...` for the model to read. */
async function runCall(tools, call) {
  const name = call.function.name;
  const tool = tools.find((t) => t.name === name);
  if (!tool) return `error: unknown tool ${JSON.stringify(name)}`;
  const raw = (call.function.arguments ?? '').trim();
  let args;
  try {
    args = raw === '' ? {} : JSON.parse(raw);
  } catch (e) {
    return `error: the arguments are not JSON (${e.message})`;
  }
  try {
    const result = await tool.handler(args);
    return typeof result === 'string' ? result : JSON.stringify(result ?? null);
  } catch (e) {
    return `error: ${e?.message ?? e}`;
  }
}

/** A model behind an OpenAI-compatible `/chat/completions` endpoint. */
export class Chat {
  constructor(baseUrl, model, { maxSteps = DEFAULT_MAX_STEPS } = {}) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.model = model;
    this.maxSteps = maxSteps;
  }

  /** The model named by the plugin's MODEL_URL and MODEL variables. */
  static fromEnv() {
    const env = new Map(getEnvironment());
    const missing = ['MODEL_URL', 'MODEL'].filter((name) => !env.get(name));
    if (missing.length > 0) {
      throw new ModelError(`${missing.join(', ')} not set in the plugin's env (see [[plugin]] env)`);
    }
    return new Chat(env.get('MODEL_URL'), env.get('MODEL'));
  }

  /** The model's answer to `messages` ({ role, content } objects), whole. */
  async complete(messages) {
    return text((await this.#ask(messages, [], false)).text);
  }

  /**
   * The model's answer to `messages`, streamed: each piece of it is emitted
   * (`emit`) as the model sends it, so a caller that asked for a stream sees it
   * come; resolves to the whole answer. It asks for an event stream with the
   * token usage at its end (stream_options.include_usage, which servers that do
   * not know it ignore); a server that does not stream and answers one JSON
   * completion is fine too (its answer is emitted in one piece).
   */
  async stream(messages) {
    return text((await this.#ask(messages, [], true)).text);
  }

  /**
   * The model's answer to `messages` when it may call `tools`: each call it asks
   * for is run and its result sent back, until it answers with text, which the
   * promise resolves to.
   *
   * Every message of the loop is pushed onto `messages` (the caller's array):
   * per round of calls the assistant's message (with its tool_calls) and one
   * { role: 'tool', tool_call_id, content } per call, then the final
   * { role: 'assistant', content }. Store messages.slice(start) (start: the
   * index of the user's message) in the session's history to keep the whole
   * exchange for the next turn.
   *
   * A handler that throws (or rejects), a call of a tool not in `tools` and
   * arguments that are not JSON are told to the model as that call's result
   * (`error: ...`), not thrown. No text within `maxSteps` requests (the
   * Chat's, 8 by default) throws a MaxStepsError; the calls of the last answer
   * are not run, and `messages` then ends with the last results sent.
   */
  async completeWithTools(messages, tools, { maxSteps } = {}) {
    return this.#loop(messages, tools, maxSteps, false);
  }

  /**
   * completeWithTools, each answer streamed: the final answer's text is emitted
   * as it comes, as by stream (and so is any text the model says alongside its
   * tool calls, which is rare). Tool calls streamed in pieces are put together.
   */
  async streamWithTools(messages, tools, { maxSteps } = {}) {
    return this.#loop(messages, tools, maxSteps, true);
  }

  async #loop(messages, tools, maxSteps, stream) {
    const steps = Math.max(1, maxSteps ?? this.maxSteps ?? DEFAULT_MAX_STEPS);
    const specs = tools.map(toolToOpenAI);
    for (let step = 1; step <= steps; step += 1) {
      const reply = await this.#ask(messages, specs, stream);
      if (reply.toolCalls.length === 0) {
        const answer = text(reply.text);
        messages.push({ role: 'assistant', content: answer });
        return answer;
      }
      if (step === steps) break;
      messages.push({ role: 'assistant', content: reply.text || null, tool_calls: reply.toolCalls });
      for (const call of reply.toolCalls) {
        messages.push({ role: 'tool', tool_call_id: call.id, content: await runCall(tools, call) });
      }
    }
    throw new MaxStepsError(`the model still called tools after ${steps} requests (max_steps)`);
  }

  /** One request: the answer's text and tool calls (at least one of them). */
  async #ask(messages, tools, stream) {
    const request = { model: this.model, messages };
    if (tools.length > 0) request.tools = tools;
    if (!stream) {
      const response = await this.#post(request, 'application/json');
      return checked(reply(await response.text()));
    }
    request.stream = true;
    request.stream_options = { include_usage: true };
    const response = await this.#post(request, 'text/event-stream, application/json');
    const answer = new Answer(emit);
    const decoder = new TextDecoder();
    let pending = '';
    const take = (text) => {
      // Only the new text is searched: a long line costs its length once.
      const last = text.lastIndexOf('\n');
      if (last < 0) {
        pending += text;
        return;
      }
      const lines = (pending + text.slice(0, last)).split('\n');
      pending = text.slice(last + 1);
      for (const line of lines) {
        answer.line(line.replace(/\r$/, ''));
      }
    };
    // Only a failed read is the model's: decoding and parsing failing here (out
    // of memory on a huge answer: TextDecoder's "Decoding failed") crash the turn.
    const read = async (reader) => {
      try {
        return await reader.read();
      } catch (e) {
        throw new ModelError(`reading the model's answer: ${e?.message ?? e}`, { cause: e });
      }
    };
    if (response.body) {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await read(reader);
        if (done) break;
        take(decoder.decode(value, { stream: true }));
      }
    }
    take(decoder.decode());
    if (pending) answer.line(pending.replace(/\r$/, ''));
    return answer.finishReply();
  }

  async #post(request, accept) {
    // A body of bytes whose length is known: it goes out with its Content-Length
    // (servers that read only that header take a chunked body for an empty one).
    const body = encoder.encode(JSON.stringify(request));
    let response;
    try {
      response = await fetch(`${this.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept },
        body,
      });
    } catch (e) {
      throw new ModelError(`POST ${this.baseUrl}/chat/completions: ${e?.message ?? e}`, { cause: e });
    }
    if (!response.ok) {
      const text = await startOfBody(response);
      throw new ModelError(`the model answered ${response.status} (${start(text)})`);
    }
    return response;
  }
}

/** The first KiB of an error answer's body: the rest is not waited for (it may
 * stream on until the turn's deadline). */
async function startOfBody(response) {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const pieces = [];
  let size = 0;
  try {
    while (size < 1024) {
      const { done, value } = await reader.read();
      if (done) break;
      pieces.push(value);
      size += value.length;
    }
  } catch {
    // What was read is enough for the message.
  }
  reader.cancel().catch(() => {});
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const piece of pieces) {
    bytes.set(piece, at);
    at += piece.length;
  }
  return new TextDecoder().decode(bytes.subarray(0, 1024));
}

function parse(text, what) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelError(`${what} (${e.message}): ${start(text)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelError(`${what}: ${start(text)}`);
  }
  if (value.error !== undefined && value.error !== null) {
    const message = typeof value.error.message === 'string' ? value.error.message : JSON.stringify(value.error);
    throw new ModelError(`the model answered an error: ${start(message)}`);
  }
  return value;
}

function text(content) {
  if (content !== undefined && content !== null && typeof content !== 'string') {
    throw new ModelError(`the model's answer has content that is not text: ${start(JSON.stringify(content))}`);
  }
  if (!content) {
    throw new ModelError("the model's answer has no text");
  }
  return content;
}

/** An answer with neither text nor a tool call is an error. */
function checked(answer) {
  if (answer.toolCalls.length === 0) text(answer.text);
  return answer;
}

function toolCall(index, raw) {
  return {
    id: raw?.id || `call_${index}`,
    type: 'function',
    function: { name: raw?.function?.name ?? '', arguments: raw?.function?.arguments ?? '' },
  };
}

/** A whole JSON completion's text and tool calls (choices[0].message). */
function reply(body) {
  const value = parse(body, "the model's answer is not a chat completion");
  if (!Array.isArray(value.choices) || value.choices.length === 0) {
    throw new ModelError('the model answered no choice');
  }
  const message = value.choices[0]?.message ?? {};
  const content = message.content;
  if (content !== undefined && content !== null && typeof content !== 'string') {
    throw new ModelError(`the model's answer has content that is not text: ${start(JSON.stringify(content))}`);
  }
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls.map((c, i) => toolCall(i, c)) : [];
  return { text: content ?? '', toolCalls: calls };
}

/**
 * An answer read line by line, in either form: an event stream of completion
 * chunks (`data: {...}` events, then `data: [DONE]`), or a whole JSON completion
 * (a server that does not stream). A JSON completion starts with `{`, which no
 * event-stream line can.
 */
class Answer {
  constructor(piece) {
    this.piece = piece;
    this.form = undefined;
    this.pending = [];
    this.first = '';
    this.events = 0;
    this.text = '';
    // Tool calls streamed so far, by index.
    this.calls = new Map();
  }

  line(line) {
    if (this.form === undefined) {
      if (line.trim() === '') return;
      this.first = start(line);
      this.form = line.trimStart().startsWith('{') ? 'json' : 'events';
    }
    if (this.form === 'json') {
      this.pending.push(line);
    } else if (line === '') {
      this.#dispatch();
    } else if (line.startsWith('data:')) {
      // Other fields (event:, id:, retry:) and comments (:) carry no text.
      const data = line.slice(5);
      this.pending.push(data.startsWith(' ') ? data.slice(1) : data);
    }
  }

  /** The answer's text and tool calls (at least one of them). */
  finishReply() {
    if (this.form === undefined) {
      throw new ModelError("the model's answer is empty");
    }
    if (this.form === 'json') {
      const whole = checked(reply(this.pending.join('\n')));
      if (whole.text) this.piece(whole.text);
      return whole;
    }
    this.#dispatch();
    if (this.events === 0) {
      throw new ModelError(`the model's answer is neither a chat completion nor an event stream: ${this.first}`);
    }
    const calls = [...this.calls.entries()].sort((a, b) => a[0] - b[0]).map(([, call]) => call);
    return checked({ text: this.text, toolCalls: calls });
  }

  /** A piece of a streamed tool call: a new index starts a call, the next pieces
   * of that index add to its id, name and arguments. */
  #callPiece(piece) {
    if (piece === null || typeof piece !== 'object') return;
    const index = Number.isInteger(piece.index) ? piece.index : this.calls.size;
    let call = this.calls.get(index);
    if (!call) {
      call = { id: `call_${index}`, type: 'function', function: { name: '', arguments: '' } };
      this.calls.set(index, call);
    }
    if (typeof piece.id === 'string' && piece.id) call.id = piece.id;
    const fn = piece.function;
    // The name comes whole in the first piece; said again, it is not added.
    if (typeof fn?.name === 'string' && fn.name !== call.function.name) call.function.name += fn.name;
    if (typeof fn?.arguments === 'string') call.function.arguments += fn.arguments;
  }

  #dispatch() {
    const data = this.pending.join('\n').trim();
    this.pending = [];
    if (data === '') return;
    this.events += 1;
    if (data === '[DONE]') return;
    const chunk = parse(data, "the model's event stream has an event that is not a completion chunk");
    for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
      const content = choice?.delta?.content;
      if (content !== undefined && content !== null && typeof content !== 'string') {
        throw new ModelError(`the model's event stream has content that is not text: ${start(JSON.stringify(content))}`);
      }
      if (content) {
        this.piece(content);
        this.text += content;
      }
      for (const piece of Array.isArray(choice?.delta?.tool_calls) ? choice.delta.tool_calls : []) {
        this.#callPiece(piece);
      }
    }
  }
}
