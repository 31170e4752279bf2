"""{{name}}: an agent plugin. Each turn gets the session's state, saves it back and
answers; the host keeps the state between turns (README.md)."""

from agent_sdk import Handler, Session, agent  # Handler: the component's export


@agent(name="{{name}}", version="0.1.0")
def handle(session: Session, input: str) -> str:
    turns = (session.load() or 0) + 1
    previous = session.last(1)
    session.append(input)
    session.save(turns)
    return f"turn {turns}: you said {input!r}, before that {previous}"
