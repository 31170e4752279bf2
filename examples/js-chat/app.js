// A chat agent in JavaScript that calls its model: the JavaScript twin of
// examples/llm-chat. It sends the last messages of the session's history and the
// new input to an OpenAI-compatible chat-completions endpoint (with the standard
// fetch) and stores both sides. It holds no API key: the host adds it. When the
// model fails, the turn answers "the model is unavailable" and stores nothing.
//
// Build: guest-sdk/js/build.sh examples/js-chat/app.js js_chat.wasm

import { AgentError, agent, emit } from 'agent-sdk';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

const CONTEXT = 20;
const SYSTEM = 'You are a helpful assistant. Answer briefly.';

function env(name) {
  const found = getEnvironment().find(([key]) => key === name);
  return found ? found[1] : undefined;
}

async function complete(messages) {
  const base = env('MODEL_URL');
  const model = env('MODEL');
  if (!base || !model) {
    throw new Error("MODEL_URL and MODEL must be set in the plugin's env");
  }
  const response = await fetch(`${base.replace(/\/$/, '')}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages }),
  });
  if (!response.ok) {
    throw new Error(`the model answered ${response.status}`);
  }
  const reply = await response.json();
  return reply.choices[0].message.content;
}

export const handler = agent({ name: 'js-chat', version: '0.1.0' }, async (session, input) => {
  const messages = [{ role: 'system', content: env('SYSTEM_PROMPT') ?? SYSTEM }];
  messages.push(...session.last(CONTEXT));
  messages.push({ role: 'user', content: input });
  let reply;
  try {
    reply = await complete(messages);
  } catch (e) {
    // Nothing was written yet: a failed call stores nothing.
    throw new AgentError(`the model is unavailable (${e.message ?? e})`);
  }
  session.append({ role: 'user', content: input }, { role: 'assistant', content: reply });
  // Shown at once to a caller that streams (Accept: text/event-stream).
  emit(reply);
  return reply;
});
