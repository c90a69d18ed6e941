//! `runbook plugins FILE`: the step plugins a runbook can use, where each
//! was found, and what each of its kinds takes.

use crate::{Terminal, print_stdout, read};
use runbook_engine::{Registry, exit};
use serde_json::Value as Json;
use std::path::Path;

pub fn plugins(terminal: &Terminal, registry: &Registry, path: Option<&Path>) -> i32 {
    let bytes = match path {
        Some(path) => match read(terminal, path) {
            Some(bytes) => Some(bytes),
            None => return exit::INVALID,
        },
        None => None,
    };
    let found = runbook_engine::plugin::list(registry, path.zip(bytes.as_deref()));
    if found.is_empty() {
        return print_stdout(&match path {
            Some(path) => format!("{} uses no plugins\n", path.display()),
            None => "no plugins in ./plugins/ or on PATH (runbook-plugin-NAME)\n".to_string(),
        });
    }
    let mut text = String::new();
    let mut code = exit::SUCCESS;
    for (name, plugin) in found {
        match plugin {
            Ok(plugin) => {
                text.push_str(&format!("{name}: {} ({})\n", plugin.shown, plugin.source.words()));
                for kind in &plugin.kinds {
                    let mut traits = Vec::new();
                    if kind.read_only {
                        traits.push("read-only");
                    }
                    if kind.undo {
                        traits.push("can undo");
                    }
                    let traits = if traits.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", traits.join(", "))
                    };
                    text.push_str(&format!("  {name}.{}{traits}: {}\n", kind.name, kind.summary));
                    text.push_str(&parameters(&kind.params));
                }
            }
            Err(why) => {
                code = exit::INVALID;
                text.push_str(&format!("{name}: cannot be used: {}\n", why.message));
                if let Some(help) = why.help {
                    text.push_str(&format!("  help: {help}\n"));
                }
            }
        }
    }
    match print_stdout(&text) {
        exit::SUCCESS => code,
        other => other,
    }
}

/// A kind's parameters, one per line: name, type, whether required, what it is.
fn parameters(schema: &Json) -> String {
    let Some(properties) = schema.get("properties").and_then(Json::as_object) else {
        return String::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let mut text = String::new();
    for (name, property) in properties {
        let ty = match property.get("type") {
            Some(Json::String(ty)) => ty.clone(),
            Some(Json::Array(types)) => types.iter().filter_map(Json::as_str).collect::<Vec<_>>().join(" or "),
            _ => "any".to_string(),
        };
        let needed = if required.contains(&name.as_str()) {
            ", required"
        } else {
            ""
        };
        let about = property
            .get("description")
            .and_then(Json::as_str)
            .map(|d| format!(": {}", d.lines().next().unwrap_or_default()))
            .unwrap_or_default();
        text.push_str(&format!("    {name} ({ty}{needed}){about}\n"));
    }
    text
}
