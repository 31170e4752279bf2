// Test plugin: a tool loop in JavaScript; the same as `tools-agent` (Rust) and
// `py-tools-agent`. Tools: add(a, b), divide(a, b) (an error for b = 0, which
// the model is told) and note(text), which keeps the note in the session's state
// ({ notes: [...] }). The history keeps every message of each turn (the user's,
// the tool calls, their results, the answer) and the last 40 of them, trimmed so
// a call is not cut from its results, go to the model with the next input. The
// answer is streamed unless MODEL_STREAM = "false"; a failed model (or one that
// calls tools 8 times without answering) is the error "the model is unavailable
// (...)", and the history is left as it was. With MCP_URL set, the tools of that
// MCP server come first, prefixed mcp_ (mcp_add...); an MCP server that cannot be
// reached is the error "the MCP server is unavailable (...)".
//
// Build: guest-sdk/js/build.sh tests/plugins/js-tools-agent/app.js js_tools_agent.wasm

import { AgentError, agent, emit } from 'agent-sdk';
import { Chat, trimHistory } from 'agent-sdk/llm';
import { mcp } from 'agent-sdk/mcp';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

const CONTEXT = 40;
const SYSTEM = 'You are a helpful assistant. Use the tools for arithmetic and notes.';

function env(name) {
  const found = getEnvironment().find(([key]) => key === name);
  return found ? found[1] : undefined;
}

const numbers = {
  type: 'object',
  properties: { a: { type: 'number' }, b: { type: 'number' } },
  required: ['a', 'b'],
};

const add = {
  name: 'add',
  description: 'Adds two numbers.',
  parameters: numbers,
  handler: ({ a, b }) => String(a + b),
};

const divide = {
  name: 'divide',
  description: 'Divides a by b.',
  parameters: numbers,
  handler: ({ a, b }) => {
    if (b === 0) throw new Error('division by zero');
    return String(a / b);
  },
};

export const handler = agent({ name: 'js-tools-agent', version: '0.1.0' }, async (session, input) => {
  const note = {
    name: 'note',
    description: 'Keeps a note in the session.',
    parameters: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    // A Promise is fine too.
    handler: async ({ text }) => {
      const state = session.load() ?? {};
      const notes = [...(state.notes ?? []), text];
      session.save({ ...state, notes });
      return `noted, ${notes.length} in all`;
    },
  };
  const history = trimHistory(session.last(CONTEXT), { maxItems: CONTEXT });
  const messages = [{ role: 'system', content: SYSTEM }, ...history, { role: 'user', content: input }];
  const start = messages.length - 1;
  const tools = [];
  if (env('MCP_URL')) {
    try {
      const client = await mcp.connect(env('MCP_URL'));
      tools.push(...(await client.chatTools({ prefix: 'mcp_' })));
    } catch (e) {
      throw new AgentError(`the MCP server is unavailable (${e.message ?? e})`);
    }
  }
  tools.push(add, divide, note);
  let reply;
  try {
    const chat = Chat.fromEnv();
    if (env('MODEL_STREAM') === 'false') {
      reply = await chat.completeWithTools(messages, tools);
      emit(reply);
    } else {
      reply = await chat.streamWithTools(messages, tools);
    }
  } catch (e) {
    throw new AgentError(`the model is unavailable (${e.message ?? e})`);
  }
  session.append(...messages.slice(start));
  return reply;
});
