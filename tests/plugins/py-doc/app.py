"""A shared document with optimistic versions, the Python twin of the doc plugin
of guest-sdk/tests/testing.rs: `write V TEXT` saves TEXT over version V (0: a new
document) and notes it in the history; `show` answers it with its version;
`count` bumps a plugin-wide counter. Its unit tests (test_app.py) run with plain
python3; it builds as a component like any plugin:
guest-sdk/python/build.sh tests/plugins/py-doc app doc.wasm
"""

from agent_sdk import AgentError, Handler, Session, StateError, agent, emit, values

__all__ = ["Handler"]


@agent(name="py-doc", version="0.1.0")
def handle(session: Session, input: str) -> str:
    command, _, rest = input.partition(" ")
    if command == "write":
        version, _, text = rest.partition(" ")
        try:
            new = session.save(text, if_version=int(version))
        except StateError as e:
            if e.kind != "conflict":
                raise
            current = session.load_versioned()
            raise AgentError(f"conflict: the document is at version {current[1] if current else 0}")
        session.append(text)
        emit(f"v{new}")
        return f"saved v{new}"
    if command == "show":
        doc = session.load_versioned()
        return "empty" if doc is None else f"v{doc[1]}: {doc[0]}"
    if command == "count":
        return str(values.increment("writes"))
    if command == "crash":
        session.save("half-written")
        raise RuntimeError("crashing after a save")
    raise AgentError("commands: write V TEXT, show, count, crash")
