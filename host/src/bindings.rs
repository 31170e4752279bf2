//! Host-side bindings of the `agent-plugin` world, generated once from `wit/`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "agent-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    trappable_error_type: {
        "agent:state/agent-state.error" => crate::error::StateError,
    },
});

pub use agent::state::{agent_state, output};

/// Host-side bindings of `wasi:keyvalue@0.2.0-draft2` (`wit/deps/keyvalue/`), whose
/// resources are the host's own types (see `keyvalue`).
pub(crate) mod keyvalue {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": crate::keyvalue::Cas,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::keyvalue::KvError,
        },
    });
}
