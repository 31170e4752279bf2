// Test plugin: an MCP client (agent-sdk/mcp), the same as `mcp-probe` (Rust, whose
// doc says what each input does) and `py-mcp-probe`: `URL tools` answers the tool
// names as a JSON list, `URL call NAME JSONARGS` the tool's text or
// `error MESSAGE`.

import { AgentError, agent } from 'agent-sdk';
import { McpError, mcp } from 'agent-sdk/mcp';

async function run(input) {
  const [url, command, name = '', ...rest] = input.split(' ');
  if (!url || !command) throw new AgentError('usage: URL tools | URL call NAME JSONARGS');
  const client = await mcp.connect(url);
  if (command === 'tools') {
    return JSON.stringify((await client.tools()).map((tool) => tool.name));
  }
  if (command === 'call') {
    const args = rest.length > 0 ? JSON.parse(rest.join(' ')) : {};
    return await client.call(name, args);
  }
  throw new AgentError(`unknown command ${JSON.stringify(command)}`);
}

export const handler = agent({ name: 'js-mcp-probe', version: '0.1.0' }, async (session, input) => {
  try {
    return await run(input);
  } catch (e) {
    if (e instanceof McpError) return `error ${e.message}`;
    throw e;
  }
});
