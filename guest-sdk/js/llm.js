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

const start = (text) => String(text).slice(0, 200);

/** A model behind an OpenAI-compatible `/chat/completions` endpoint. */
export class Chat {
  constructor(baseUrl, model) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.model = model;
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
    const response = await this.#post({ model: this.model, messages }, 'application/json');
    return completion(await response.text());
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
    const request = {
      model: this.model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    };
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
    return answer.finish();
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
      const text = await response.text().catch(() => '');
      throw new ModelError(`the model answered ${response.status} (${start(text)})`);
    }
    return response;
  }
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

/** The text of a whole JSON completion (choices[0].message.content). */
function completion(body) {
  const value = parse(body, "the model's answer is not a chat completion");
  if (!Array.isArray(value.choices) || value.choices.length === 0) {
    throw new ModelError('the model answered no choice');
  }
  return text(value.choices[0]?.message?.content);
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

  finish() {
    if (this.form === undefined) {
      throw new ModelError("the model's answer is empty");
    }
    if (this.form === 'json') {
      const whole = completion(this.pending.join('\n'));
      this.piece(whole);
      return whole;
    }
    this.#dispatch();
    if (this.events === 0) {
      throw new ModelError(`the model's answer is neither a chat completion nor an event stream: ${this.first}`);
    }
    return text(this.text);
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
    }
  }
}
