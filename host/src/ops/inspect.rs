//! Looking into a component without compiling or running it: [`inspect_component`].
//!
//! It reads the outer component's import and export sections (wasmparser, which
//! wasmtime uses itself) and matches the names against the interfaces the host
//! links (`sandbox::linker`). Compiling a Python or JavaScript component takes
//! seconds (15-23 s in a debug build); reading its sections takes milliseconds.
//! Types are not checked here: `Host::load_plugin` checks them when it links.

use wasmparser::{Chunk, Encoding, Parser, Payload};

use crate::error::Error;

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
    /// The world it fits: `agent-plugin`, `agent-plugin-http`, `keyvalue-plugin`
    /// or `keyvalue-plugin with wasi:http` (`None` when it fits none).
    pub world: Option<String>,
}

/// What an import is for: it decides the world a component fits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// WASI 0.2 (cli, clocks, filesystem, io, random, sockets): every world has it.
    Wasi,
    /// `agent-state`, `output` and `schedule`.
    State,
    /// `wasi:http` (types, outgoing-handler).
    Http,
    /// `wasi:keyvalue@0.2.0-draft2`.
    KeyValue,
}

/// The interfaces the host links, by package: the package, the versions it
/// answers (`0.2`: any 0.2.x release, as wasmtime's linker matches them; a
/// pre-release: that one), and the interfaces. `sandbox::linker` links these
/// (wasmtime-wasi's WASI 0.2, its wasi:http client, our keyvalue and
/// agent-state); the test `the_table_is_the_wit_the_host_links` keeps the table in
/// step with `wit/`.
const PROVIDED: &[(&str, &str, &[&str], Role)] = &[
    ("wasi:io", "0.2", &["error", "poll", "streams"], Role::Wasi),
    (
        "wasi:clocks",
        "0.2",
        &["wall-clock", "monotonic-clock"],
        Role::Wasi,
    ),
    ("wasi:filesystem", "0.2", &["types", "preopens"], Role::Wasi),
    (
        "wasi:random",
        "0.2",
        &["random", "insecure", "insecure-seed"],
        Role::Wasi,
    ),
    (
        "wasi:cli",
        "0.2",
        &[
            "exit",
            "environment",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
        Role::Wasi,
    ),
    (
        "wasi:sockets",
        "0.2",
        &[
            "tcp",
            "udp",
            "tcp-create-socket",
            "udp-create-socket",
            "instance-network",
            "network",
            "ip-name-lookup",
        ],
        Role::Wasi,
    ),
    (
        "wasi:http",
        "0.2",
        &["types", "outgoing-handler"],
        Role::Http,
    ),
    (
        "agent:state",
        "0.1",
        &["agent-state", "output", "schedule"],
        Role::State,
    ),
    (
        "wasi:keyvalue",
        "0.2.0-draft2",
        &["store", "atomics", "batch"],
        Role::KeyValue,
    ),
];

/// The export every world has: the turn handler.
const HANDLER: (&str, &str, &str) = ("agent:state", "0.1", "handler");

/// Reads `wasm`'s imports and exports and tells the world it fits: the host can
/// link every import (by name and version) and it exports the handler. Neither
/// compiles nor runs it.
pub fn inspect_component(wasm: &[u8]) -> Result<ComponentReport, Error> {
    let invalid = |reason: String| {
        Error::Invalid(crate::StateError::InvalidArgument(format!(
            "not a valid component: {reason}"
        )))
    };
    if !wasm.starts_with(b"\0asm") {
        return Err(invalid(
            "not a WebAssembly file (it does not start with \\0asm)".into(),
        ));
    }
    let (imports, exports) = read_names(wasm).map_err(invalid)?;
    let fits = fits(&imports, &exports);
    Ok(ComponentReport {
        imports,
        exports,
        world: fits.as_ref().ok().cloned(),
        fits: fits.map(drop),
    })
}

/// The names in the outer component's import and export sections, in order.
fn read_names(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut parser = Parser::new(0);
    let mut data = wasm;
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let one_line = |e: wasmparser::BinaryReaderError| e.to_string().replace('\n', " ");
    loop {
        let (consumed, payload) = match parser.parse(data, true).map_err(one_line)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => return Err("the file ends early".into()),
        };
        data = &data[consumed..];
        match payload {
            Payload::Version { encoding, .. } if encoding != Encoding::Component => {
                return Err("a core WebAssembly module, not a component (build for \
                            wasm32-wasip2, or wrap it with `wasm-tools component new`)"
                    .into());
            }
            Payload::ComponentImportSection(section) => {
                for import in section {
                    imports.push(import.map_err(one_line)?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) => {
                for export in section {
                    exports.push(export.map_err(one_line)?.name.name.to_string());
                }
            }
            // Nested modules and components are the implementation: skip them
            // (the parser has counted their bytes; only the slice moves on).
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                data = data
                    .get(unchecked_range.len()..)
                    .ok_or("a nested module runs past the end of the file")?;
            }
            Payload::End(_) => return Ok((imports, exports)),
            _ => {}
        }
    }
}

/// `ns:pkg/interface@version` split into its package, interface and version.
fn split_name(name: &str) -> Option<(&str, &str, &str)> {
    let (path, version) = name.split_once('@')?;
    let (package, interface) = path.split_once('/')?;
    Some((package, interface, version))
}

/// Whether `version` is one the rule answers: `0.2` any 0.2.x release; a
/// version with a pre-release part only itself.
fn compatible(rule: &str, version: &str) -> bool {
    if rule.contains('-') {
        return rule == version;
    }
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && version.starts_with(&format!("{rule}."))
}

fn role(name: &str) -> Option<Role> {
    let (package, interface, version) = split_name(name)?;
    PROVIDED
        .iter()
        .find(|(p, rule, names, _)| {
            *p == package && names.contains(&interface) && compatible(rule, version)
        })
        .map(|(_, _, _, role)| *role)
}

/// The world a component with these imports and exports fits, or why none.
fn fits(imports: &[String], exports: &[String]) -> Result<String, String> {
    let mut roles = Vec::new();
    for import in imports {
        match role(import) {
            Some(role) => roles.push(role),
            None => {
                return Err(format!(
                    "it imports {import}, which the host does not provide"
                ));
            }
        }
    }
    let (package, rule, interface) = HANDLER;
    let handler = exports.iter().any(|name| {
        split_name(name)
            .is_some_and(|(p, i, v)| p == package && i == interface && compatible(rule, v))
    });
    if !handler {
        return Err(format!(
            "it does not export {package}/{interface}@{rule}.x (the handler every world exports)"
        ));
    }
    let http = roles.contains(&Role::Http);
    Ok(match (roles.contains(&Role::KeyValue), http) {
        (true, true) => "keyvalue-plugin with wasi:http",
        (true, false) => "keyvalue-plugin",
        (false, true) => "agent-plugin-http",
        (false, false) => "agent-plugin",
    }
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::{PROVIDED, fits, inspect_component};

    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A component that only imports `names`, each an instance with no exports,
    /// written out by hand.
    fn importing(names: &[String]) -> Vec<u8> {
        let mut wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
        // Type section: one instance type with no declarations.
        wasm.extend_from_slice(&[7, 3, 1, 0x42, 0]);
        let mut body = Vec::new();
        leb(names.len(), &mut body);
        for name in names {
            body.push(0x00);
            leb(name.len(), &mut body);
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(&[0x05, 0]); // an instance of type 0
        }
        wasm.push(10);
        leb(body.len(), &mut wasm);
        wasm.extend(body);
        wasm
    }

    /// Interfaces of the WIT packages in `wit/` the host does not link: exports
    /// (the handler, `run`, `incoming-handler`) and WASI's unstable timezone.
    const NOT_IMPORTS: &[&str] = &[
        "agent:state/handler",
        "wasi:cli/run",
        "wasi:http/incoming-handler",
        "wasi:clocks/timezone",
    ];

    /// The table lists every interface of the WIT in `wit/` (what plugins are
    /// built against) that `sandbox::linker` links: WASI 0.2, wasi:http,
    /// wasi:keyvalue and agent-state. (That every plugin the host loads fits is
    /// checked on real plugins in `host/tests/cli.rs`.)
    #[test]
    fn the_table_is_the_wit_the_host_links() {
        let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut files = vec![wit.join("agent-state.wit")];
        for dir in [wit.join("deps"), wit.join("deps/keyvalue")] {
            let mut found: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "wit"))
                .collect();
            found.sort();
            files.extend(found);
        }
        let mut from_wit = Vec::new();
        let mut keyvalue = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let package = text
                .lines()
                .find_map(|l| l.strip_prefix("package ")?.strip_suffix(';'));
            let names: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("interface ")?.strip_suffix(" {"))
                .map(str::to_string)
                .collect();
            match package {
                Some(package) => {
                    from_wit.extend(names.iter().map(|i| (package.to_string(), i.clone())))
                }
                // wasi:keyvalue's files share the package line of world.wit.
                None => keyvalue.extend(names),
            }
        }
        let kv = "wasi:keyvalue@0.2.0-draft2".to_string();
        from_wit.extend(keyvalue.into_iter().map(|i| (kv.clone(), i)));
        let mut wit_names: Vec<String> = from_wit
            .iter()
            .filter_map(|(package, interface)| {
                let (name, version) = package.split_once('@').unwrap();
                let path = format!("{name}/{interface}");
                (!NOT_IMPORTS.contains(&path.as_str())).then(|| format!("{path}@{version}"))
            })
            .collect();
        wit_names.sort();
        for name in &wit_names {
            assert!(
                super::role(name).is_some(),
                "{name} is in wit/ but not in PROVIDED"
            );
        }
        let listed: usize = PROVIDED.iter().map(|(_, _, names, _)| names.len()).sum();
        assert_eq!(
            listed,
            wit_names.len(),
            "PROVIDED lists more than wit/: {wit_names:?}"
        );
        for missing in [
            "wasi:sockets/nope@0.2.0",
            "wasi:http/incoming-handler@0.2.0",
            "wasi:cli/environment@0.3.0",
            "wasi:cli/environment@0.2",
            "wasi:cli/environment",
            "agent:state/agent-state@0.2.0",
        ] {
            assert!(super::role(missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn the_world_follows_the_imports() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let handler = names(&["agent:state/handler@0.1.3"]);
        let base = ["wasi:cli/stdout@0.2.3", "agent:state/agent-state@0.1.0"];
        assert_eq!(fits(&names(&base), &handler).unwrap(), "agent-plugin");
        let http = [&base[..], &["wasi:http/types@0.2.12"]].concat();
        assert_eq!(fits(&names(&http), &handler).unwrap(), "agent-plugin-http");
        let kv = ["wasi:keyvalue/store@0.2.0-draft2", "wasi:io/poll@0.2.0"];
        assert_eq!(fits(&names(&kv), &handler).unwrap(), "keyvalue-plugin");
        let error = fits(&names(&base), &[]).unwrap_err();
        assert!(
            error.contains("does not export agent:state/handler@0.1.x"),
            "{error}"
        );
        let error = fits(&names(&["wasi:keyvalue/store@0.2.0-draft3"]), &handler).unwrap_err();
        assert!(
            error.contains("imports wasi:keyvalue/store@0.2.0-draft3"),
            "{error}"
        );
    }

    #[test]
    fn what_is_not_a_component_is_named() {
        let error = |wasm: &[u8]| inspect_component(wasm).unwrap_err().to_string();
        assert!(error(b"hello").contains("does not start with \\0asm"));
        assert!(error(b"\0asm\x01\0\0\0").contains("a core WebAssembly module"));
        let mut cut = importing(&["wasi:io/poll@0.2.0".into()]);
        cut.truncate(cut.len() - 3);
        assert!(error(&cut).contains("not a valid component"));
        let report = inspect_component(&importing(&["wasi:io/poll@0.2.0".into()])).unwrap();
        assert_eq!(report.imports, ["wasi:io/poll@0.2.0"]);
        assert!(report.fits.is_err());
    }
}
