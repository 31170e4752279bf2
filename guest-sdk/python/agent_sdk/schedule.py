"""Turns that run later on their own (WIT `agent:state/schedule`, since 0.1.3).

    from datetime import timedelta
    from agent_sdk import Session, agent, schedule

    @agent(name="reminder")
    def handle(session: Session, input: str) -> str:
        if input.startswith("remind me "):
            id = schedule.after(session, timedelta(minutes=1), input[len("remind me "):])
            return f"in a minute ({id})"
        return f"reminder: {input}"

A schedule made by a turn is written with that turn's commit, like its state
writes: a turn that answers or raises `AgentError`/`StateError` keeps its
schedules and cancels (so a turn that hit a model's rate limit can raise its
error and schedule its own retry); a turn that raises anything else, runs out of
time or memory, or conflicts schedules and cancels nothing. When it is due, the
host runs a turn of its session with its input, once; a run that fails is
retried with backoff up to the operator's `schedule_retries`.

The due time must be 1 s to 366 days from now, else `StateError("invalid-argument")`;
past the plugin's pending schedules or schedules per turn,
`StateError("quota-exceeded")`. A session is a `Session` or its id.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, List, Union

from agent_sdk import Session, _call

if sys.platform == "wasi":
    from wit_world.imports import schedule as _wit
else:
    from agent_sdk._native import _schedule as _wit

__all__ = ["Scheduled", "after", "at", "cancel", "pending"]


@dataclass(frozen=True)
class Scheduled:
    """A schedule that has not run yet (`pending`)."""

    id: str
    """24 lowercase hex digits."""
    session: str
    at_ms: int
    """When it is due (unix ms)."""
    input: str
    attempts: int
    """Runs of it that failed so far."""


def _id(session: Union[Session, str]) -> str:
    return session.id if isinstance(session, Session) else session


def at(session: Union[Session, str], when: Union[int, datetime], input: str) -> str:
    """Runs a turn of `session` with `input` at `when`: unix ms, or a datetime
    (a naive one is local time). Returns the schedule's id."""
    when_ms = round(when.timestamp() * 1000) if isinstance(when, datetime) else int(when)
    return _call(_wit.at, _id(session), max(0, when_ms), input)


def after(session: Union[Session, str], delay: Union[int, float, timedelta], input: str) -> str:
    """Runs a turn of `session` with `input` after `delay` (seconds or a
    timedelta, counted in ms). Returns the schedule's id."""
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    return _call(_wit.after, _id(session), max(0, round(seconds * 1000)), input)


def cancel(id: str) -> bool:
    """Cancels a pending schedule of the plugin; False if there is none with this
    id (it ran, was cancelled, or never was)."""
    return _call(_wit.cancel, id)


def pending(session: Union[Session, str]) -> List[Scheduled]:
    """The session's pending schedules, soonest first, this turn's own included."""
    return [_scheduled(s) for s in _call(_wit.pending, _id(session))]


def _scheduled(s: Any) -> Scheduled:
    """The WIT record as a `Scheduled`."""
    return Scheduled(s.id, s.session, s.at_ms, s.input, s.attempts)
