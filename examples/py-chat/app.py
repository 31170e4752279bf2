"""A chat agent in Python that calls its model: the Python twin of
examples/llm-chat. It sends the last messages of the session's history and the
new input to an OpenAI-compatible chat-completions endpoint and stores both sides.

It holds no API key: the operator's config names the model (`env`) and lets the
plugin reach it (`[[plugin.outbound]]`, with the key as a secret header the host
adds). The model's answer is streamed: each piece is emitted as it arrives, so a
caller that asked for a stream sees it come; with `MODEL_STREAM = "false"` in
the env it asks for the whole answer at once (and emits it in one piece). When
the model fails or answers no text, the turn answers "the model is unavailable"
and stores nothing.

Build: guest-sdk/python/build.sh examples/py-chat app py_chat.wasm
"""

import os

from agent_sdk import AgentError, Handler, Session, agent, emit
from agent_sdk.http import HttpError
from agent_sdk.llm import Chat

__all__ = ["Handler"]

CONTEXT = 20
SYSTEM = "You are a helpful assistant. Answer briefly."


@agent(name="py-chat", version="0.1.0")
def handle(session: Session, input: str) -> str:
    messages = [{"role": "system", "content": os.environ.get("SYSTEM_PROMPT", SYSTEM)}]
    messages += session.last(CONTEXT)
    messages.append({"role": "user", "content": input})
    try:
        chat = Chat.from_env()
        if os.environ.get("MODEL_STREAM") == "false":
            reply = chat.complete(messages)
            # Shown at once to a caller that streams (Accept: text/event-stream).
            emit(reply)
        else:
            reply = chat.stream(messages)
    except HttpError as e:
        # Nothing was written yet: a failed call stores nothing.
        raise AgentError(f"the model is unavailable ({e})")
    session.append({"role": "user", "content": input}, {"role": "assistant", "content": reply})
    return reply
