//! A chat agent with memory: it keeps the conversation in the session's history and
//! a running summary (turn count, topics) in the session's state, and answers from
//! both. Swap `reply` for a call to your model; the state handling stays the same.

use std::collections::BTreeMap;

use agent_sdk::{Agent, Result, Session};
use serde::{Deserialize, Serialize};

/// The running summary of a conversation.
#[derive(Default, Serialize, Deserialize)]
struct Memory {
    turns: u32,
    topics: BTreeMap<String, u32>,
}

/// One message of the history.
#[derive(Serialize, Deserialize)]
struct Message {
    role: String,
    text: String,
}

/// How many past messages the agent looks at.
const CONTEXT: u32 = 10;

struct ChatMemory;

impl Agent for ChatMemory {
    fn handle(session: &Session, input: &str) -> Result<String> {
        let mut memory: Memory = session.load()?.unwrap_or_default();
        let recent: Vec<Message> = session.last(CONTEXT)?;
        memory.turns += 1;
        for topic in topics(input) {
            *memory.topics.entry(topic).or_default() += 1;
        }
        let answer = reply(&memory, &recent, input);
        session.append(&[
            Message {
                role: "user".into(),
                text: input.into(),
            },
            Message {
                role: "agent".into(),
                text: answer.clone(),
            },
        ])?;
        session.save(&memory)?;
        Ok(answer)
    }
}

/// Common words that are never topics.
const STOP_WORDS: &[&str] = &[
    "about", "after", "again", "could", "hello", "there", "their", "these", "thing", "think",
    "those", "where", "which", "while", "would", "should", "works", "learn",
];

/// Words of five letters or more that are not stop words, lowercased: a stand-in for
/// topic extraction.
fn topics(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 5)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
}

fn reply(memory: &Memory, recent: &[Message], input: &str) -> String {
    let mut out = format!("Turn {}. You said: \"{input}\".", memory.turns);
    match recent.iter().rev().find(|m| m.role == "user") {
        Some(previous) => out.push_str(&format!(" Before that you said: \"{}\".", previous.text)),
        None => out.push_str(" This is the start of our conversation."),
    }
    let mut top: Vec<(&String, &u32)> = memory.topics.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !top.is_empty() {
        let list: Vec<String> = top
            .iter()
            .take(3)
            .map(|(t, n)| format!("{t} ({n})"))
            .collect();
        out.push_str(&format!(" Topics so far: {}.", list.join(", ")));
    }
    out
}

agent_sdk::export_agent!(ChatMemory);

/// Unit tests, run natively (`cargo test -p chat-memory`): the SDK's state calls
/// go to `agent_sdk::testing`'s in-memory store.
#[cfg(test)]
mod tests {
    use agent_sdk::testing::Store;

    use super::{ChatMemory, Memory, Message};

    #[test]
    fn the_second_turn_remembers_the_first() -> agent_sdk::Result<()> {
        let store = Store::new();
        let first = store.run(ChatMemory, "alice", "I bake sourdough bread")?;
        assert_eq!(
            first,
            "Turn 1. You said: \"I bake sourdough bread\". This is the start of our \
             conversation. Topics so far: bread (1), sourdough (1)."
        );
        let second = store.run(ChatMemory, "alice", "Which flour for sourdough?")?;
        assert!(second.starts_with("Turn 2."), "{second}");
        assert!(second.contains("Before that you said: \"I bake sourdough bread\""));
        assert!(second.contains("sourdough (2)"), "{second}");

        let memory: Memory = store.session("alice").state()?.unwrap();
        assert_eq!(memory.turns, 2);
        let history: Vec<Message> = store.session("alice").history()?;
        let roles: Vec<&str> = history.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "agent", "user", "agent"]);
        // Another session starts from nothing.
        let bob = store.run(ChatMemory, "bob", "hello")?;
        assert!(bob.starts_with("Turn 1."), "{bob}");
        Ok(())
    }
}
