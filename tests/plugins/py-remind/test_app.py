"""Unit tests of app.py and of agent_sdk.testing's schedules, with plain python3:
PYTHONPATH=guest-sdk/python python3 -m unittest discover -s tests/plugins/py-remind
"""

import json
import unittest

import app  # noqa: F401 - registers the @agent handler
from agent_sdk import AgentError, schedule
from agent_sdk.testing import Store


class RemindTest(unittest.TestCase):
    def test_schedules_are_committed_with_their_turn_and_run_when_due(self):
        store = Store()
        later = store.run("s", "remind 60 later").removeprefix("scheduled ")
        self.assertRegex(later, "^[0-9a-f]{24}$")
        store.run("s", "remind 10 sooner")
        store.run("t", "remind 30 elsewhere")
        pending = json.loads(store.run("s", "pending"))
        self.assertEqual([p["input"] for p in pending], ["reminder: sooner", "reminder: later"])
        self.assertEqual(pending[0]["at_ms"] + 50_000, pending[1]["at_ms"])
        self.assertEqual(pending[1]["id"], later)
        self.assertEqual(pending[1]["attempts"], 0)
        self.assertEqual(store.run("s", f"cancel {later}"), "cancelled true")
        self.assertEqual(store.run("s", f"cancel {later}"), "cancelled false")

        self.assertEqual(store.run_due(), [])
        store.advance(30)
        ran = store.run_due()
        answers = [answer for _, answer in ran]
        self.assertEqual(answers, ["got reminder: sooner", "got reminder: elsewhere"])
        self.assertEqual(store.scheduled(), [])
        # The history holds every input as its UTF-8 bytes, the scheduled ones too.
        history = store.items("s", None)
        self.assertEqual((len(history), history[-1]), (6, b"reminder: sooner"))

    def test_a_failed_turn_keeps_its_schedules_and_a_crash_drops_them(self):
        store = Store()
        # AgentError is the host's `err`: what the turn scheduled is committed.
        with self.assertRaisesRegex(AgentError, "failing on purpose"):
            store.run("s", "remind-then-fail 5 x")
        [made] = store.scheduled()
        self.assertEqual((made.session, made.input, made.attempts), ("s", "reminder: x", 0))
        self.assertEqual(store.items("s", None), [b"remind-then-fail 5 x"])

        # Any other exception (a trap, in a component) schedules and cancels nothing.
        def crash(session, input):
            schedule.after(session, 5, "lost")
            schedule.cancel(made.id)
            raise RuntimeError("crashing after scheduling and cancelling")

        with self.assertRaisesRegex(RuntimeError, "crashing"):
            store.run("s", "crash", crash)
        self.assertEqual([s.input for s in store.scheduled()], ["reminder: x"])

        store.advance(5)
        [(_, answer)] = store.run_due()
        self.assertEqual(answer, "got reminder: x")
        self.assertEqual(store.scheduled(), [])

    def test_schedule_errors_and_a_failed_run_is_retried(self):
        store = Store()
        self.assertRegex(store.run("s", "remind 0 x"), "^error invalid-argument: ")
        self.assertRegex(store.run("s", "remind-at 0 x"), "^error invalid-argument: ")
        self.assertRegex(store.run("s", "cancel not-an-id"), "^error invalid-argument: ")
        self.assertEqual(store.run("s", "remind 5 " + "x" * 65536), "error too-large: 65536")

        store.run("s", "remind 5 fail")
        store.advance(5)
        for attempts in (1, 2):
            [(scheduled, raised)] = store.run_due()
            self.assertEqual((scheduled.attempts, str(raised)), (attempts, "reminder failed"))
        self.assertEqual(store.scheduled()[0].attempts, 2)
        self.assertEqual(store.run("s", "hello"), "echo hello")


if __name__ == "__main__":
    unittest.main()
