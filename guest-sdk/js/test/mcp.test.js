// Unit tests of agent-sdk/mcp's parsing (no server): node --test guest-sdk/js/test/
// (tests/tests/mcp_client.rs runs the client against a real MCP server).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Events, McpClient, McpError, outcome, responseTo, resultText, statusError } from '../mcp.js';

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

// A client whose requests are answered here: a listing, then calls.
function fakeClient() {
  const client = new McpClient('http://127.0.0.1:1/mcp');
  client.sent = [];
  client.request = async (method, params) => {
    client.sent.push([method, params]);
    if (method === 'tools/list') {
      return {
        tools: [
          { name: 'add', description: 'Adds.', inputSchema: { type: 'object', properties: { a: {} } } },
          { name: 'bare' },
        ],
      };
    }
    if (params.name === 'bare') return { content: [{ type: 'text', text: 'no such thing' }], isError: true };
    return { content: [{ type: 'text', text: '5' }] };
  };
  return client;
}

test('chatTools are the server tools, prefixed, calling it', async () => {
  const client = fakeClient();
  const tools = await client.chatTools({ prefix: 'mcp_' });
  assert.deepEqual(
    tools.map((t) => t.name),
    ['mcp_add', 'mcp_bare'],
  );
  assert.equal(tools[0].description, 'Adds.');
  assert.deepEqual(tools[0].parameters, { type: 'object', properties: { a: {} } });
  assert.deepEqual(tools[1].parameters, { type: 'object' });
  assert.equal(await tools[0].handler({ a: 2, b: 3 }), '5');
  assert.deepEqual(client.sent.at(-1), ['tools/call', { name: 'add', arguments: { a: 2, b: 3 } }]);
  assert.deepEqual(
    (await client.chatTools()).map((t) => t.name),
    ['add', 'bare'],
  );
});

test('a chatTools error is the handler error', async () => {
  const tools = await fakeClient().chatTools({ prefix: 'mcp_' });
  await assert.rejects(tools[1].handler({}), (e) => e instanceof McpError && e.toolError && e.message === 'no such thing');
});
