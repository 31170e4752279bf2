// A shared document with optimistic versions, the JavaScript twin of the doc
// plugin of guest-sdk/tests/testing.rs: `write V TEXT` saves TEXT over version V
// (0: a new document) and notes it in the history; `show` answers it with its
// version; `count` bumps a plugin-wide counter. Its unit tests (app.test.js) run
// with plain node; it builds as a component like any plugin:
// guest-sdk/js/build.sh tests/plugins/js-doc/app.js doc.wasm

import { AgentError, StateError, agent, emit, values } from 'agent-sdk';

export const handler = agent({ name: 'js-doc', version: '0.1.0' }, (session, input) => {
  const [command, ...rest] = input.split(' ');
  switch (command) {
    case 'write': {
      const [version, ...words] = rest;
      const text = words.join(' ');
      let saved;
      try {
        saved = session.save(text, { ifVersion: BigInt(version) });
      } catch (e) {
        if (!(e instanceof StateError && e.kind === 'conflict')) throw e;
        const now = session.loadVersioned()?.version ?? 0n;
        throw new AgentError(`conflict: the document is at version ${now}`);
      }
      session.append(text);
      emit(`v${saved}`);
      return `saved v${saved}`;
    }
    case 'show': {
      const doc = session.loadVersioned();
      return doc === undefined ? 'empty' : `v${doc.version}: ${doc.value}`;
    }
    case 'count':
      return String(values.increment('writes'));
    case 'crash':
      session.save('half-written');
      throw new TypeError('crashing after a save');
    default:
      throw new AgentError('commands: write V TEXT, show, count, crash');
  }
});
