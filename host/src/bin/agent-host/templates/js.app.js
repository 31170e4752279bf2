// {{name}}: an agent plugin. Each turn gets the session's state, saves it back and
// answers; the host keeps the state between turns (README.md). Other modules of
// this project and npm packages (dependencies, `npm install`) can be imported:
// the build bundles them.
import { agent } from 'agent-sdk';

export const handler = agent({ name: '{{name}}', version: '0.1.0' }, (session, input) => {
  const turns = (session.load() ?? 0) + 1;
  const previous = session.last(1);
  session.append(input);
  session.save(turns);
  return `turn ${turns}: you said ${JSON.stringify(input)}, before that ${JSON.stringify(previous)}`;
});
