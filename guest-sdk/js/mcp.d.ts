// Types of agent-sdk/mcp (see mcp.js).

import type { Tool } from './llm';

/** The protocol version this client offers in `initialize`. */
export const PROTOCOL_VERSION: string;

/**
 * An MCP server could not be reached (`status` set for an HTTP error status) or
 * answered an error: a JSON-RPC error (`code` set), an answer that is not
 * JSON-RPC, or a tool result marked isError (`toolError` true; the message is the
 * tool's text).
 */
export class McpError extends Error {
  readonly code?: number;
  readonly status?: number;
  readonly toolError: boolean;
}

/** A tool of an MCP server, as tools/list describes it. */
export interface McpTool {
  name: string;
  /** '' when the server says nothing. */
  description: string;
  /** The JSON Schema of its arguments ({ type: 'object' } when the server gives none). */
  inputSchema: Record<string, unknown>;
}

/** A connection to an MCP server (its session). */
export class McpClient {
  readonly url: string;
  /** The Mcp-Session-Id the server gave, if it keeps sessions. */
  readonly sessionId?: string;
  /** The protocol version agreed on in `initialize`. */
  readonly protocolVersion: string;
  /** The server's serverInfo, as it sent it. */
  readonly serverInfo?: { name: string; version: string; [key: string]: unknown };
  /** Every tool of the server (tools/list, following nextCursor). */
  tools(): Promise<McpTool[]>;
  /**
   * Every tool of the server as a Chat tool (for completeWithTools /
   * streamWithTools): `prefix` (default '') before the name the model sees, e.g.
   * 'mcp_' so they cannot clash with local tools; the handler calls the tool by
   * its own name, and its McpError is told to the model as `error: ...`.
   */
  chatTools(options?: { prefix?: string }): Promise<Tool[]>;
  /** The text of the tool's result; throws McpError (toolError) for a result marked isError. */
  call(name: string, args?: Record<string, unknown>): Promise<string>;
  /** Any other request: its JSON-RPC result. */
  request(method: string, params?: Record<string, unknown>): Promise<unknown>;
}

/** Connects to the MCP server at `url`: initialize, then notifications/initialized. */
export function connect(url: string): Promise<McpClient>;

export const mcp: {
  connect: typeof connect;
  McpError: typeof McpError;
  PROTOCOL_VERSION: string;
};
