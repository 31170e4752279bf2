"""A chat-completions client for OpenAI-compatible servers, over `agent_sdk.http`.

The plugin holds no key: the operator lists the model's origin in the plugin's
`[[plugin.outbound]]` with the key as a secret header, and the host adds it. The
base URL and the model come from the plugin's env (`MODEL_URL`, `MODEL`).

    from agent_sdk.llm import Chat
    reply = Chat.from_env().complete([{"role": "user", "content": "Hello"}])
"""

from __future__ import annotations

import os
from typing import Dict, List

from . import http

__all__ = ["Chat"]

Message = Dict[str, str]


class Chat:
    """A model behind an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, base_url: str, model: str):
        self.base_url = base_url.rstrip("/")
        self.model = model

    @classmethod
    def from_env(cls) -> "Chat":
        """The model named by the plugin's `MODEL_URL` and `MODEL` variables."""
        missing = [n for n in ("MODEL_URL", "MODEL") if not os.environ.get(n)]
        if missing:
            raise http.HttpError(f"{', '.join(missing)} not set in the plugin's env (see [[plugin]] env)")
        return cls(os.environ["MODEL_URL"], os.environ["MODEL"])

    def complete(self, messages: List[Message]) -> str:
        """The model's answer to `messages` (dicts with `role` and `content`)."""
        url = f"{self.base_url}/chat/completions"
        reply = http.post_json(url, {"model": self.model, "messages": messages})
        if not reply.ok:
            raise http.HttpError(f"the model answered {reply.status} ({reply.text()[:200]})")
        choices = reply.json().get("choices") or []
        if not choices:
            raise http.HttpError("the model answered no choice")
        return choices[0]["message"]["content"]
