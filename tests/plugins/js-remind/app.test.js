// Unit tests of app.js and of agent-sdk/testing's schedules, with plain node:
// node --test tests/plugins/js-remind/app.test.js

import assert from 'node:assert/strict';
import { test } from 'node:test';

// First: it maps agent-sdk and the WIT imports to the in-memory host.
import { Store } from '../../../guest-sdk/js/testing.js';

const { handler } = await import('./app.js');
const { agent, schedule } = await import('agent-sdk');

test('schedules are committed with their turn and run when due', async () => {
  const store = new Store();
  const later = (await store.run(handler, 's', 'remind 60 later')).replace('scheduled ', '');
  assert.match(later, /^[0-9a-f]{24}$/);
  await store.run(handler, 's', 'remind 10 sooner');
  await store.run(handler, 't', 'remind 30 elsewhere');
  const pending = JSON.parse(await store.run(handler, 's', 'pending'));
  assert.deepEqual(
    pending.map((p) => p.input),
    ['reminder: sooner', 'reminder: later'],
  );
  assert.equal(pending[0].at_ms + 50_000, pending[1].at_ms);
  assert.deepEqual([pending[1].id, pending[1].attempts], [later, 0]);
  assert.equal(await store.run(handler, 's', `cancel ${later}`), 'cancelled true');
  assert.equal(await store.run(handler, 's', `cancel ${later}`), 'cancelled false');

  assert.deepEqual(await store.runDue(handler), []);
  store.advance(30);
  const ran = await store.runDue(handler);
  assert.deepEqual(
    ran.map((r) => r.answer),
    ['got reminder: sooner', 'got reminder: elsewhere'],
  );
  assert.deepEqual(store.scheduled(), []);
});

test('a failed turn keeps its schedules and a crash drops them', async () => {
  const store = new Store();
  // AgentError is the host's `err`: what the turn scheduled is committed.
  await assert.rejects(store.run(handler, 's', 'remind-then-fail 5 x'), {
    name: 'AgentError',
    message: 'failing on purpose',
  });
  const [made] = store.scheduled();
  assert.deepEqual([made.session, made.input, made.attempts], ['s', 'reminder: x', 0]);

  // Anything else thrown (a trap, in a component) schedules and cancels nothing.
  const crash = agent({ name: 'crash' }, (session) => {
    schedule.after(session, 5, 'lost');
    schedule.cancel(made.id);
    throw new RangeError('crashing after scheduling and cancelling');
  });
  await assert.rejects(store.run(crash, 's', 'crash'), { name: 'RangeError' });
  assert.deepEqual(
    store.scheduled().map((s) => s.input),
    ['reminder: x'],
  );

  store.advance(5);
  const [{ answer }] = await store.runDue(handler);
  assert.equal(answer, 'got reminder: x');
  assert.deepEqual(store.scheduled(), []);
});

test('schedule errors, and a failed run is retried', async () => {
  const store = new Store();
  assert.match(await store.run(handler, 's', 'remind 0 x'), /^error invalid-argument: /);
  assert.match(await store.run(handler, 's', 'remind-at 0 x'), /^error invalid-argument: /);
  assert.match(await store.run(handler, 's', 'cancel not-an-id'), /^error invalid-argument: /);
  const long = `remind 5 ${'x'.repeat(65536)}`;
  assert.equal(await store.run(handler, 's', long), 'error too-large: 65536');

  await store.run(handler, 's', 'remind 5 fail');
  store.advance(5);
  for (const attempts of [1, 2]) {
    const [{ scheduled, error }] = await store.runDue(handler);
    assert.deepEqual([scheduled.attempts, error.message], [attempts, 'reminder failed']);
  }
  assert.equal(store.scheduled()[0].attempts, 2);
  assert.equal(await store.run(handler, 's', 'hello'), 'echo hello');
});
