"""Unit tests of app.py, with plain python3 (no component, no host):
PYTHONPATH=guest-sdk/python python3 -m unittest discover -s tests/plugins/py-doc
"""

import unittest

import app  # noqa: F401 - registers the @agent handler
from agent_sdk import AgentError, StateError
from agent_sdk.testing import Store


class DocTest(unittest.TestCase):
    def test_a_conversation_over_two_turns_and_a_conflict(self):
        store = Store()
        self.assertEqual(store.run("doc", "show"), "empty")
        self.assertEqual(store.run("doc", "write 0 hello"), "saved v1")
        self.assertEqual(store.emitted, ["v1"])
        self.assertEqual(store.run("doc", "write 1 hello world"), "saved v2")
        self.assertEqual(store.run("doc", "show"), "v2: hello world")

        # A write over a version that is not the stored one conflicts and
        # writes nothing.
        with self.assertRaises(AgentError) as raised:
            store.run("doc", "write 1 stale")
        self.assertEqual(str(raised.exception), "conflict: the document is at version 2")
        doc = store.session("doc")
        self.assertEqual((doc.state, doc.version), ("hello world", 2))
        self.assertEqual(doc.history, ["hello", "hello world"])

        # So does one over a version another writer replaced since.
        doc.save("theirs")
        with self.assertRaisesRegex(AgentError, "at version 3"):
            store.run("doc", "write 2 mine")
        self.assertEqual(store.run("doc", "write 3 mine"), "saved v4")

    def test_a_crash_writes_nothing(self):
        store = Store()
        store.run("doc", "write 0 kept")
        with self.assertRaisesRegex(RuntimeError, "crashing after a save"):
            store.run("doc", "crash")
        self.assertEqual(store.session("doc").state, "kept")
        self.assertEqual(store.run("doc", "show"), "v1: kept")
        with self.assertRaises(StateError) as raised:
            store.run("", "show")
        self.assertEqual(raised.exception.kind, "invalid-key")

    def test_sessions_and_values_are_the_plugins(self):
        store = Store()
        for session in ["b", "a", "c"]:
            store.run(session, "write 0 x")
            store.run(session, "count")
        self.assertEqual(store.sessions(), ["a", "b", "c"])
        self.assertEqual(store.value("writes"), 3)
        self.assertEqual(Store().run("a", "show"), "empty")

    def test_expiry_runs_on_the_stores_clock(self):
        store = Store(default_ttl=60)
        store.run("doc", "write 0 x")
        store.advance(59)
        self.assertEqual(store.session("doc").ttl, 1)
        store.advance(1)
        self.assertFalse(store.session("doc").exists)
        self.assertEqual(store.run("doc", "show"), "empty")


if __name__ == "__main__":
    unittest.main()
