// A chat agent in JavaScript that calls its model: the JavaScript twin of
// examples/llm-chat. It sends the last messages of the session's history and the
// new input to an OpenAI-compatible chat-completions endpoint (agent-sdk/llm, over
// the standard fetch) and stores both sides. It holds no API key: the host adds it.
// The model's answer is streamed: each piece is emitted as it arrives, so a caller
// that asked for a stream sees it come; with MODEL_STREAM = "false" in the env it
// asks for the whole answer at once (and emits it in one piece). When the model
// fails or answers no text, the turn answers "the model is unavailable" and stores
// nothing.
//
// Build: guest-sdk/js/build.sh examples/js-chat/app.js js_chat.wasm

import { AgentError, agent, emit } from 'agent-sdk';
import { Chat } from 'agent-sdk/llm';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

const CONTEXT = 20;
const SYSTEM = 'You are a helpful assistant. Answer briefly.';

function env(name) {
  const found = getEnvironment().find(([key]) => key === name);
  return found ? found[1] : undefined;
}

export const handler = agent({ name: 'js-chat', version: '0.1.0' }, async (session, input) => {
  const messages = [{ role: 'system', content: env('SYSTEM_PROMPT') ?? SYSTEM }];
  messages.push(...session.last(CONTEXT));
  messages.push({ role: 'user', content: input });
  let reply;
  try {
    const chat = Chat.fromEnv();
    if (env('MODEL_STREAM') === 'false') {
      reply = await chat.complete(messages);
      // Shown at once to a caller that streams (Accept: text/event-stream).
      emit(reply);
    } else {
      reply = await chat.stream(messages);
    }
  } catch (e) {
    // Nothing was written yet: a failed call stores nothing.
    throw new AgentError(`the model is unavailable (${e.message ?? e})`);
  }
  session.append({ role: 'user', content: input }, { role: 'assistant', content: reply });
  return reply;
});
