// Unit tests of app.js and of agent-sdk/llm's tools, with plain node against the
// Python model stand-in (tests/servers/chat_completions.py, started here; under
// node, fetch is node's own):
// node --test tests/plugins/js-tools-agent/app.test.js

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';

// First: it maps agent-sdk and the WIT imports to the in-memory host.
import { Store } from '../../../guest-sdk/js/testing.js';

const { handler } = await import('./app.js');
const { Chat, MaxStepsError, trimHistory, toolToOpenAI } = await import('agent-sdk/llm');

const dir = mkdtempSync(join(tmpdir(), 'js-tools-'));
const log = join(dir, 'requests.jsonl');
let server;
let env;

before(async () => {
  const script = new URL('../../servers/chat_completions.py', import.meta.url).pathname;
  server = spawn('python3', [script, '--log', log], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: server.stdout });
  const [port] = await new Promise((resolve) => lines.once('line', (line) => resolve([line.trim()])));
  env = { MODEL_URL: `http://127.0.0.1:${port}/v1`, MODEL: 'small' };
});

after(() => {
  server.kill();
  rmSync(dir, { recursive: true, force: true });
});

const requests = () =>
  existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(JSON.parse(line).body))
    : [];

test('a multi-step loop, streamed and not', async () => {
  for (const stream of ['true', 'false']) {
    const store = new Store({ env: { ...env, MODEL_STREAM: stream } });
    const first = requests().length;
    const answer = await store.run(handler, 's', 'add 2 and 3 steps=2');
    assert.equal(answer, 'Tools said ["5"]; I saw 6 messages.');
    assert.equal(store.emitted.join(''), answer);
    if (stream === 'true') assert.ok(store.emitted.length > 1, store.emitted);
    const sent = requests().slice(first);
    assert.equal(sent.length, 3);
    assert.deepEqual(
      sent[0].tools.map((t) => t.function.name),
      ['add', 'divide', 'note'],
    );
    const call = sent[1].messages[2];
    assert.equal(call.role, 'assistant');
    assert.equal(call.content, null);
    assert.deepEqual(call.tool_calls[0].function, { name: 'add', arguments: '{"a":2,"b":3}' });
    assert.deepEqual(sent[1].messages[3], { role: 'tool', tool_call_id: call.tool_calls[0].id, content: '5' });
    const history = store.session('s').history;
    assert.deepEqual(
      history.map((m) => m.role),
      ['user', 'assistant', 'tool', 'assistant', 'tool', 'assistant'],
    );
    assert.deepEqual(history.at(-1), { role: 'assistant', content: answer });
  }
});

test('errors are fed back to the model', async () => {
  const store = new Store({ env: { ...env, MODEL_STREAM: 'true' } });
  assert.equal(await store.run(handler, 's', 'divide 1 by 0'), 'Tools said ["error: division by zero"]; I saw 4 messages.');
  assert.equal(
    await store.run(handler, 't', 'add 1 2 unknown-tool'),
    'Tools said ["error: unknown tool \\"no_such_tool\\""]; I saw 4 messages.',
  );
  const bad = await store.run(handler, 'u', 'add 1 2 bad-args');
  assert.ok(bad.startsWith('Tools said ["error: the arguments are not JSON ('), bad);
  assert.equal(await store.run(handler, 'v', 'add 1 2 parallel'), 'Tools said ["3","3"]; I saw 5 messages.');
});

test('max steps and the history across turns', async () => {
  for (const stream of ['true', 'false']) {
    const store = new Store({ env: { ...env, MODEL_STREAM: stream } });
    assert.equal(await store.run(handler, 's', 'note buy flour'), 'Tools said ["noted, 1 in all"]; I saw 4 messages.');
    assert.deepEqual(store.session('s').state, { notes: ['note buy flour'] });
    let first = requests().length;
    await assert.rejects(store.run(handler, 's', 'forever add 1 2'), /max_steps/);
    assert.equal(requests().length - first, 8);
    assert.equal(store.session('s').history.length, 4);
    first = requests().length;
    assert.equal(await store.run(handler, 's', 'add 2.5 and 3'), 'Tools said ["5.5"]; I saw 8 messages.');
    const sent = requests()[first].messages;
    assert.deepEqual(
      sent.map((m) => m.role),
      ['system', 'user', 'assistant', 'tool', 'assistant', 'user'],
    );
    assert.equal(sent[3].content, 'noted, 1 in all');
    assert.equal(store.session('s').history.length, 8);
  }
});

test('the SDK: maxSteps, a MaxStepsError, tools as OpenAI names them, trimming', async () => {
  const chat = new Chat(env.MODEL_URL, 'small', { maxSteps: 2 });
  const calls = [];
  const tool = { name: 'add', description: 'd', parameters: { type: 'object', properties: {} }, handler: (args) => { calls.push(args); return { ok: true }; } };
  const messages = [{ role: 'user', content: 'add forever' }];
  await assert.rejects(chat.completeWithTools(messages, [tool]), (e) => e instanceof MaxStepsError);
  assert.deepEqual(calls, [{}]);
  assert.deepEqual(messages.map((m) => m.role), ['user', 'assistant', 'tool']);
  assert.equal(messages[2].content, '{"ok":true}');
  assert.deepEqual(toolToOpenAI(tool), { type: 'function', function: { name: 'add', description: 'd', parameters: { type: 'object', properties: {} } } });
  const history = [
    { role: 'user', content: 'one' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', function: { name: 'add', arguments: '{}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: '1' },
    { role: 'assistant', content: 'two' },
  ];
  assert.deepEqual(trimHistory(history, { maxItems: 10 }), history);
  assert.deepEqual(trimHistory(history, { maxItems: 3 }), history.slice(1));
  assert.deepEqual(trimHistory(history, { maxItems: 2 }), history.slice(3));
  assert.deepEqual(trimHistory(history, { maxTokens: 5 }), history.slice(3));
  assert.deepEqual(trimHistory(history, { maxItems: 0 }), []);
});
