// Unit tests of app.js with plain node (no component, no host):
// node --test tests/plugins/js-doc/app.test.js

import assert from 'node:assert/strict';
import { test } from 'node:test';

// First: it maps agent-sdk and the WIT imports to the in-memory host.
import { AgentError, StateError, Store } from '../../../guest-sdk/js/testing.js';

const { handler } = await import('./app.js');

test('a conversation over two turns and a conflict', async () => {
  const store = new Store();
  assert.equal(await store.run(handler, 'doc', 'show'), 'empty');
  assert.equal(await store.run(handler, 'doc', 'write 0 hello'), 'saved v1');
  assert.deepEqual(store.emitted, ['v1']);
  assert.equal(await store.run(handler, 'doc', 'write 1 hello world'), 'saved v2');
  assert.equal(await store.run(handler, 'doc', 'show'), 'v2: hello world');

  // A write over a version that is not the stored one conflicts, writes nothing.
  await assert.rejects(store.run(handler, 'doc', 'write 1 stale'), {
    name: 'AgentError',
    message: 'conflict: the document is at version 2',
  });
  const doc = store.session('doc');
  assert.equal(doc.state, 'hello world');
  assert.equal(doc.version, 2n);
  assert.deepEqual(doc.history, ['hello', 'hello world']);

  // So does one over a version another writer replaced since.
  doc.save('theirs');
  await assert.rejects(store.run(handler, 'doc', 'write 2 mine'), /at version 3/);
  assert.equal(await store.run(handler, 'doc', 'write 3 mine'), 'saved v4');
});

test('a crash writes nothing', async () => {
  const store = new Store();
  await store.run(handler, 'doc', 'write 0 kept');
  await assert.rejects(store.run(handler, 'doc', 'crash'), TypeError);
  assert.equal(store.session('doc').state, 'kept');
  assert.equal(await store.run(handler, 'doc', 'show'), 'v1: kept');
  await assert.rejects(store.run(handler, 'doc', 'nope'), AgentError);
  await assert.rejects(store.run(handler, '', 'show'), (e) => e instanceof StateError && e.kind === 'invalid-key');
});

test('sessions and values are the plugin\'s', async () => {
  const store = new Store();
  for (const session of ['b', 'a', 'c']) {
    await store.run(handler, session, 'write 0 x');
    await store.run(handler, session, 'count');
  }
  assert.deepEqual(store.sessions(), ['a', 'b', 'c']);
  assert.equal(store.value('writes'), 3);
  assert.equal(await new Store().run(handler, 'a', 'show'), 'empty');
});

test('expiry runs on the store\'s clock', async () => {
  const store = new Store({ defaultTtl: 60 });
  await store.run(handler, 'doc', 'write 0 x');
  store.advance(59);
  assert.equal(store.session('doc').ttl, 1);
  store.advance(1);
  assert.equal(store.session('doc').exists, false);
  assert.equal(await store.run(handler, 'doc', 'show'), 'empty');
});
