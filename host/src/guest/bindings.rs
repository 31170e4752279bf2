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

pub use agent::state::{agent_state, output, schedule};
