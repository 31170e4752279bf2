//! Test plugin: writes to every kind of state, then dies the way `input` says:
//! `trap` (a panic), `abort`, `alloc-error` (an allocation that fails without the
//! host refusing memory), `spin` (an endless loop) or `hog` (unbounded allocation).
//! `ok` returns normally, to show the same writes do land; `slow MS` returns
//! normally after MS milliseconds.

use std::time::Duration;

use agent_sdk::{Agent, Error, Result, Session, values};

struct Wreck;

impl Agent for Wreck {
    fn handle(session: &Session, input: &str) -> Result<String> {
        session.save(&format!("written by a turn that ends with {input}"))?;
        session.push(&input)?;
        session.touch(Some(Duration::from_secs(3600)))?;
        Session::new("other").save(&1)?;
        values::set("value", &input, None)?;
        values::increment("counter", 1)?;
        match input {
            "trap" => panic!("wreck: trapping after writing"),
            "abort" => std::process::abort(),
            "alloc-error" => {
                std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 1 << 20]>())
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut blocks = Vec::new();
                loop {
                    blocks.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&blocks);
                }
            }
            "ok" => Ok("written".into()),
            // Returns normally after MS milliseconds of work (a slow turn).
            slow if slow.starts_with("slow ") => {
                let ms: u64 = slow[5..].parse().map_err(Error::msg)?;
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_millis(ms) {
                    std::hint::spin_loop();
                }
                Ok(format!("slept {ms} ms"))
            }
            other => Err(Error::msg(format!("unknown mode {other:?}"))),
        }
    }
}

agent_sdk::export_agent!(Wreck);
