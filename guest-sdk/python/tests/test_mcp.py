"""Unit tests of agent_sdk.mcp's parsing (no server):
PYTHONPATH=guest-sdk/python python3 guest-sdk/python/tests/test_mcp.py
(tests/tests/mcp_client.rs runs the client against a real MCP server)."""

import unittest

from agent_sdk import mcp
from agent_sdk.http import HttpError


class Events(unittest.TestCase):
    def test_notifications_and_priming_are_skipped_wherever_the_stream_is_cut(self):
        stream = (
            b"id: 0\nretry: 100\ndata:\n\n: a comment\r\nevent: message\r\n"
            b'data: {"jsonrpc":"2.0","method":"notifications/message"}\r\n\r\n'
            b'event: message\ndata: {"jsonrpc":"2.0",\ndata: "id":7,"result":{}}\n\n'
            b"event: other\ndata: x\n\n"
        )
        for cut in range(len(stream)):
            events = mcp._Events()
            got = events.push(stream[:cut]) + events.push(stream[cut:]) + events.finish()
            self.assertEqual(len(got), 2, (cut, got))
            self.assertIsNone(mcp._response_to(7, got[0]))
            self.assertEqual(mcp._response_to(7, got[1]), {"jsonrpc": "2.0", "id": 7, "result": {}})

    def test_an_event_without_a_blank_line_at_the_end_counts(self):
        events = mcp._Events()
        self.assertEqual(events.push(b'data: {"id":1,"result":{}}'), [])
        self.assertEqual(events.finish(), ['{"id":1,"result":{}}'])


class Responses(unittest.TestCase):
    def test_only_the_response_to_the_request_is_taken(self):
        self.assertIsNone(mcp._response_to_value(2, {"id": 1, "result": {}}))
        self.assertIsNone(mcp._response_to_value(2, {"id": 2, "method": "ping"}))
        self.assertIsNone(mcp._response_to_value(2, {"result": {}}))
        self.assertIsNotNone(mcp._response_to_value(2, {"id": "2", "result": {}}))
        self.assertIsNotNone(mcp._response_to_value(2, {"id": None, "error": {"code": -32600}}))
        self.assertIsNotNone(mcp._response_to_value(2, [{"method": "x"}, {"id": 2, "result": 1}]))

    def test_errors_and_results(self):
        with self.assertRaises(mcp.McpError) as caught:
            mcp._outcome("tools/call", {"id": 1, "error": {"code": -32001, "message": "no"}})
        self.assertEqual(str(caught.exception), "the MCP server answered tools/call with error -32001: no")
        self.assertEqual(caught.exception.code, -32001)
        self.assertEqual(mcp._outcome("x", {"id": 1, "result": 5}), 5)
        with self.assertRaises(mcp.McpError):
            mcp._outcome("x", {"id": 1})

    def test_an_error_status_carries_its_json_rpc_error_or_is_http(self):
        body = '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Missing session ID"}}'
        self.assertIsInstance(mcp._status_error("tools/list", 400, body, True), mcp.McpError)
        self.assertIsInstance(mcp._status_error("tools/list", 404, "", True), HttpError)
        self.assertIn("connect again", str(mcp._status_error("tools/list", 404, "", True)))


class Results(unittest.TestCase):
    def test_the_text_of_a_result(self):
        result = {
            "content": [
                {"type": "text", "text": "one"},
                {"type": "image", "data": "AAAA", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "file:///a", "text": "two"}},
                {"type": "resource_link", "uri": "file:///b", "name": "b"},
            ]
        }
        self.assertEqual(mcp._result_text(result), "one\n[image image/png]\ntwo\n[resource file:///b]")
        self.assertEqual(mcp._result_text({"content": [], "structuredContent": {"result": 5}}), '{"result":5}')

    def test_connecting_outside_a_component_is_an_http_error(self):
        with self.assertRaises(HttpError) as caught:
            mcp.connect("http://127.0.0.1:1/mcp")
        self.assertIn("no host", str(caught.exception))


class ChatTools(unittest.TestCase):
    def client(self):
        """A client whose requests are answered here: a listing, then calls."""
        client = mcp.Client("http://127.0.0.1:1/mcp")
        client.sent = []

        def request(method, params=None):
            client.sent.append((method, params))
            if method == "tools/list":
                return {
                    "tools": [
                        {"name": "add", "description": "Adds.", "inputSchema": {"type": "object", "properties": {"a": {}}}},
                        {"name": "bare"},
                    ]
                }
            if params["name"] == "bare":
                return {"content": [{"type": "text", "text": "no such thing"}], "isError": True}
            return {"content": [{"type": "text", "text": "5"}]}

        client.request = request
        return client

    def test_the_tools_are_the_servers_prefixed_and_call_it(self):
        from agent_sdk import llm

        client = self.client()
        tools = client.chat_tools("mcp_")
        self.assertTrue(all(isinstance(t, llm.Tool) for t in tools))
        self.assertEqual([t.name for t in tools], ["mcp_add", "mcp_bare"])
        self.assertEqual(tools[0].description, "Adds.")
        self.assertEqual(tools[0].parameters, {"type": "object", "properties": {"a": {}}})
        self.assertEqual(tools[1].parameters, {"type": "object"})
        self.assertEqual(tools[0].call({"a": 2, "b": 3}), "5")
        self.assertEqual(client.sent[-1], ("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}}))
        self.assertEqual([t.name for t in client.chat_tools()], ["add", "bare"])

    def test_a_tool_error_is_told_to_the_model(self):
        from agent_sdk import llm

        tools = self.client().chat_tools("mcp_")
        call = {"id": "c1", "type": "function", "function": {"name": "mcp_bare", "arguments": "{}"}}
        self.assertEqual(llm._run_call(tools, call), "error: no such thing")
        with self.assertRaises(mcp.McpError):
            tools[1].call({})


if __name__ == "__main__":
    unittest.main()
