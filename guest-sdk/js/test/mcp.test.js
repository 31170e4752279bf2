// Unit tests of agent-sdk/mcp's parsing (no server): node --test guest-sdk/js/test/
// (tests/tests/mcp_client.rs runs the client against a real MCP server).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Events, McpError, outcome, responseTo, resultText, statusError } from '../mcp.js';

test('notifications and priming events are skipped wherever the stream is cut', () => {
  const stream =
    'id: 0\nretry: 100\ndata:\n\n: a comment\r\nevent: message\r\n' +
    'data: {"jsonrpc":"2.0","method":"notifications/message"}\r\n\r\n' +
    'event: message\ndata: {"jsonrpc":"2.0",\ndata: "id":7,"result":{}}\n\n' +
    'event: other\ndata: x\n\n';
  for (let cut = 0; cut < stream.length; cut++) {
    const events = new Events();
    const got = [...events.push(stream.slice(0, cut)), ...events.push(stream.slice(cut)), ...events.finish()];
    assert.equal(got.length, 2, `cut at ${cut}: ${got}`);
    assert.equal(responseTo(7, got[0]), undefined);
    assert.deepEqual(responseTo(7, got[1]), { jsonrpc: '2.0', id: 7, result: {} });
  }
});

test('an event without a blank line at the end counts', () => {
  const events = new Events();
  assert.deepEqual(events.push('data: {"id":1,"result":{}}'), []);
  assert.deepEqual(events.finish(), ['{"id":1,"result":{}}']);
});

test('only the response to the request is taken', () => {
  assert.equal(responseTo(2, '{"id":1,"result":{}}'), undefined);
  assert.equal(responseTo(2, '{"id":2,"method":"ping"}'), undefined);
  assert.equal(responseTo(2, '{"result":{}}'), undefined);
  assert.notEqual(responseTo(2, '{"id":"2","result":{}}'), undefined);
  assert.notEqual(responseTo(2, '{"id":null,"error":{"code":-32600}}'), undefined);
  assert.notEqual(responseTo(2, '[{"method":"x"},{"id":2,"result":1}]'), undefined);
});

test('errors and results', () => {
  assert.throws(
    () => outcome('tools/call', { id: 1, error: { code: -32001, message: 'no' } }),
    (e) => e instanceof McpError && e.code === -32001 && e.message === 'the MCP server answered tools/call with error -32001: no',
  );
  assert.equal(outcome('x', { id: 1, result: 5 }), 5);
  assert.throws(() => outcome('x', { id: 1 }), McpError);
  const body = '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Missing session ID"}}';
  assert.equal(statusError('tools/list', 400, body, true).code, -32600);
  assert.match(statusError('tools/list', 404, '', true).message, /connect again/);
});

test('the text of a result', () => {
  const result = {
    content: [
      { type: 'text', text: 'one' },
      { type: 'image', data: 'AAAA', mimeType: 'image/png' },
      { type: 'resource', resource: { uri: 'file:///a', text: 'two' } },
      { type: 'resource_link', uri: 'file:///b', name: 'b' },
    ],
  };
  assert.equal(resultText(result), 'one\n[image image/png]\ntwo\n[resource file:///b]');
  assert.equal(resultText({ content: [], structuredContent: { result: 5 } }), '{"result":5}');
});
