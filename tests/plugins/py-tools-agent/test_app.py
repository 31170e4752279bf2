"""Unit tests of app.py and of agent_sdk.llm's tools, with plain python3 against
the Python model stand-in (tests/servers/chat_completions.py, started here): the
SDK's HTTP calls, which need a host in a component, go through urllib instead.

PYTHONPATH=guest-sdk/python python3 -m unittest discover -s tests/plugins/py-tools-agent
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request
from typing import List, Optional

import app  # noqa: F401 - registers the @agent handler
from agent_sdk import AgentError, http
from agent_sdk.llm import MaxStepsError, Tool, _Answer, tool, trim_history
from agent_sdk.testing import Store

HERE = os.path.dirname(os.path.abspath(__file__))
STAND_IN = os.path.join(HERE, "..", "..", "servers", "chat_completions.py")


def _post_json(url, body, headers=()):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request) as response:
        return http.Response(response.status, list(response.headers.items()), response.read())


def _send_lines(method, url, headers, body, line):
    request = urllib.request.Request(url, data=body, method=method)
    for name, value in headers:
        request.add_header(name, value)
    with urllib.request.urlopen(request) as response:
        for raw in response:
            line(raw.decode().rstrip("\r\n"))
    return 200


class ToolsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.log = os.path.join(cls.dir.name, "requests.jsonl")
        cls.server = subprocess.Popen(
            [sys.executable, STAND_IN, "--log", cls.log], stdout=subprocess.PIPE, text=True
        )
        cls.port = int(cls.server.stdout.readline())
        cls.saved = (http.post_json, http.send_lines)
        http.post_json, http.send_lines = _post_json, _send_lines

    @classmethod
    def tearDownClass(cls):
        http.post_json, http.send_lines = cls.saved
        cls.server.kill()
        cls.server.wait()
        cls.server.stdout.close()
        cls.dir.cleanup()

    def setUp(self):
        os.environ["MODEL_URL"] = f"http://127.0.0.1:{self.port}/v1"
        os.environ["MODEL"] = "small"

    def requests(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as log:
            return [json.loads(json.loads(line)["body"]) for line in log]

    def test_a_multi_step_loop_streamed_and_not(self):
        for stream in ("true", "false"):
            os.environ["MODEL_STREAM"] = stream
            store = Store()
            before = len(self.requests())
            answer = store.run("s", "add 2 and 3 steps=2")
            self.assertEqual(answer, 'Tools said ["5"]; I saw 6 messages.')
            self.assertEqual("".join(store.emitted), answer)
            if stream == "true":
                self.assertGreater(len(store.emitted), 1)
            sent = self.requests()[before:]
            self.assertEqual(len(sent), 3)
            names = [t["function"]["name"] for t in sent[0]["tools"]]
            self.assertEqual(names, ["add", "divide", "note"])
            self.assertEqual(sent[0]["tools"][0]["function"]["parameters"]["required"], ["a", "b"])
            self.assertEqual(sent[0]["tools"][0]["type"], "function")
            call = sent[1]["messages"][2]
            self.assertEqual(call["role"], "assistant")
            self.assertIsNone(call["content"])
            self.assertEqual(call["tool_calls"][0]["function"], {"name": "add", "arguments": '{"a":2,"b":3}'})
            self.assertEqual(
                sent[1]["messages"][3], {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "5"}
            )
            history = store.session("s").history
            self.assertEqual(
                [m["role"] for m in history], ["user", "assistant", "tool", "assistant", "tool", "assistant"]
            )
            self.assertEqual(history[-1], {"role": "assistant", "content": answer})

    def test_errors_are_fed_back_to_the_model(self):
        os.environ["MODEL_STREAM"] = "true"
        store = Store()
        self.assertEqual(store.run("s", "divide 1 by 0"), 'Tools said ["error: division by zero"]; I saw 4 messages.')
        self.assertEqual(store.run("t", "add 1 2 unknown-tool"), 'Tools said ["error: unknown tool \\"no_such_tool\\""]; I saw 4 messages.')
        bad = store.run("u", "add 1 2 bad-args")
        self.assertTrue(bad.startswith('Tools said ["error: the arguments are not JSON ('), bad)
        two = store.run("v", "add 1 2 parallel")
        self.assertEqual(two, 'Tools said ["3","3"]; I saw 5 messages.')

    def test_max_steps_and_the_history_across_turns(self):
        for stream in ("true", "false"):
            os.environ["MODEL_STREAM"] = stream
            store = Store()
            self.assertEqual(store.run("s", "note buy flour"), 'Tools said ["noted, 1 in all"]; I saw 4 messages.')
            self.assertEqual(store.session("s").state, {"notes": ["note buy flour"]})
            before = len(self.requests())
            with self.assertRaises(AgentError) as failed:
                store.run("s", "forever add 1 2")
            self.assertIn("max_steps", str(failed.exception))
            self.assertEqual(len(self.requests()) - before, 8)
            self.assertEqual(len(store.session("s").history), 4)
            # The next turn's model sees the first turn: its call and result too.
            before = len(self.requests())
            self.assertEqual(store.run("s", "add 2.5 and 3"), 'Tools said ["5.5"]; I saw 8 messages.')
            first = self.requests()[before]["messages"]
            self.assertEqual([m["role"] for m in first], ["system", "user", "assistant", "tool", "assistant", "user"])
            self.assertEqual(first[3]["content"], "noted, 1 in all")
            self.assertEqual(len(store.session("s").history), 8)


class SdkTest(unittest.TestCase):
    def test_the_schema_of_a_function(self):
        @tool
        def find(query: str, limit: int, exact: bool = False, tags: Optional[List[str]] = None) -> str:
            """Finds things."""
            return query

        self.assertEqual(
            find.to_openai(),
            {
                "type": "function",
                "function": {
                    "name": "find",
                    "description": "Finds things.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "query": {"type": "string"},
                            "limit": {"type": "integer"},
                            "exact": {"type": "boolean"},
                            "tags": {"type": "array", "items": {"type": "string"}},
                        },
                        "required": ["query", "limit"],
                    },
                },
            },
        )
        self.assertEqual(find.call({"query": "x", "limit": 1}), "x")
        named = tool(name="other", description="d")(find.function)
        self.assertEqual((named.name, named.description), ("other", "d"))
        plain = Tool("t", "d", {"type": "object"}, lambda args: {"got": args})
        self.assertEqual(plain.call({"a": 1}), '{"got": {"a": 1}}')

    def test_streamed_tool_calls_are_assembled(self):
        pieces = []
        answer = _Answer(pieces.append)
        for event in [
            {"delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "a", "function": {"name": "add", "arguments": ""}}]}},
            {"delta": {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "note", "arguments": "{}"}}]}},
            {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}},
            {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}},
        ]:
            answer.line("data: " + json.dumps({"choices": [event]}))
            answer.line("")
        answer.line("data: [DONE]")
        text, calls = answer.finish_reply()
        self.assertEqual((text, pieces), ("", []))
        self.assertEqual(
            [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls],
            [("a", "add", '{"a": 1}'), ("b", "note", "{}")],
        )

    def test_trimming_keeps_calls_with_their_results(self):
        history = [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "add", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "assistant", "content": "two"},
            "an old item that is not a message",
        ]
        self.assertEqual(trim_history(history, 10), history)
        self.assertEqual(trim_history(history, 4), history[1:])
        self.assertEqual(trim_history(history, 3), history[3:])
        self.assertEqual(trim_history(history, 0), [])
        # The last two: about 13 and 5 tokens.
        self.assertEqual(len(trim_history(history, 10, max_tokens=18)), 2)
        self.assertEqual(len(trim_history(history, 10, max_tokens=17)), 1)


if __name__ == "__main__":
    unittest.main()
