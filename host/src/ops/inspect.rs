//! Looking into a component without running it: [`inspect_component`].

use crate::error::Error;
use crate::guest::bindings::AgentPluginPre;
use crate::host::sandbox;
use crate::ops::cache;

/// What [`inspect_component`] finds in a component.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ComponentReport {
    /// Names of the interfaces and functions it imports.
    pub imports: Vec<String>,
    /// Names of the interfaces and functions it exports.
    pub exports: Vec<String>,
    /// `Ok` if the host can run it as an agent plugin, or why not.
    pub fits: Result<(), String>,
}

/// Compiles `wasm` and reports its imports, exports and whether it fits a world
/// the host serves (`agent-plugin`, `agent-plugin-http`, `keyvalue-plugin`, or a
/// mix of their imports: the host can link what it imports and it exports the
/// handler). Does not run it.
pub fn inspect_component(wasm: &[u8]) -> Result<ComponentReport, Error> {
    let engine = sandbox::engine(sandbox::Pool {
        slots: 0,
        max_memory: 256 << 20,
        keep_resident: 0,
    })?;
    let (component, _, _) = cache::compile(&engine, wasm, None).map_err(|reason| {
        Error::Invalid(crate::StateError::InvalidArgument(format!(
            "not a valid component: {reason}"
        )))
    })?;
    let ty = component.component_type();
    let imports = ty
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports = ty
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let linker = sandbox::linker(&engine)?;
    let fits = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("cannot be linked: {e:#}"))
        .and_then(|pre| {
            AgentPluginPre::new(pre)
                .map(drop)
                .map_err(|e| format!("does not export the agent-plugin world: {e:#}"))
        });
    Ok(ComponentReport {
        imports,
        exports,
        fits,
    })
}
