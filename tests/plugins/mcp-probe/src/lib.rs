//! Test plugin: an MCP client (`agent_sdk::mcp`), the same as `py-mcp-probe` and
//! `js-mcp-probe`. Its input is the server's URL and a command:
//!
//! - `URL tools`: the names of the server's tools, as a JSON list.
//! - `URL call NAME JSONARGS`: the text of the tool's result, or `error MESSAGE`
//!   when it fails (a tool error's message is the tool's text).
//!
//! Every turn connects anew (`initialize`, `notifications/initialized`).

use agent_sdk::{Agent, Error, Result, Session, mcp};

struct McpProbe;

impl Agent for McpProbe {
    fn handle(_session: &Session, input: &str) -> Result<String> {
        match run(input) {
            Ok(answer) => Ok(answer),
            Err(Error::Mcp(message)) => Ok(format!("error {message}")),
            Err(e) => Ok(format!("error {e}")),
        }
    }
}

fn run(input: &str) -> Result<String> {
    let mut words = input.splitn(4, ' ');
    let (Some(url), Some(command)) = (words.next(), words.next()) else {
        return Err(Error::msg("usage: URL tools | URL call NAME JSONARGS"));
    };
    let client = mcp::connect(url)?;
    match command {
        "tools" => {
            let names: Vec<String> = client.tools()?.into_iter().map(|t| t.name).collect();
            Ok(serde_json::to_string(&names)?)
        }
        "call" => {
            let name = words.next().unwrap_or_default();
            let args = match words.next() {
                Some(args) => serde_json::from_str(args)?,
                None => serde_json::json!({}),
            };
            client.call(name, args)
        }
        other => Err(Error::msg(format!("unknown command {other:?}"))),
    }
}

agent_sdk::export_agent!(McpProbe);
