"""Test plugin: schedules its own follow-up turns; the same as `remind` (Rust, whose
doc says what each input does; `remind-then-trap` is only there) and `js-remind`.
Every turn first appends its input (its UTF-8 bytes, not JSON) to the history; a
schedule call's `StateError` is the answer `error KIND: DETAIL`."""

import json

from agent_sdk import AgentError, Handler, Session, StateError, _call, _wit, agent, schedule

__all__ = ["Handler"]


def _number_and_text(rest: str):
    number, _, text = rest.partition(" ")
    if not (number.isascii() and number.isdigit()):
        raise AgentError(f"{number!r}: not a number")
    return int(number), f"reminder: {text}"


def _pending(session: Session) -> str:
    pending = [
        {"id": s.id, "at_ms": s.at_ms, "input": s.input, "attempts": s.attempts}
        for s in schedule.pending(session)
    ]
    return json.dumps(pending, separators=(",", ":"), ensure_ascii=False)


def _answer(session: Session, input: str) -> str:
    command, _, rest = input.partition(" ")
    if command in ("remind", "remind-then-fail"):
        seconds, text = _number_and_text(rest)
        id = schedule.after(session, seconds, text)
        if command == "remind-then-fail":
            raise AgentError("failing on purpose")
        return f"scheduled {id}"
    if command == "remind-at":
        unix_ms, text = _number_and_text(rest)
        return f"scheduled {schedule.at(session, unix_ms, text)}"
    if command == "cancel":
        return f"cancelled {'true' if schedule.cancel(rest) else 'false'}"
    if input == "pending":
        return _pending(session)
    if input == "reminder: fail":
        raise AgentError("reminder failed")
    if input.startswith("reminder: "):
        return f"got {input}"
    return f"echo {input}"


@agent(name="py-remind")
def handle(session: Session, input: str) -> str:
    _call(_wit.append, session.id, [input.encode()])
    try:
        return _answer(session, input)
    except StateError as e:
        return f"error {e}"
