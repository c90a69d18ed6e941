//! The JSON Schema of the runbook format, generated from the raw types and
//! the registered step kinds (each kind's `with` becomes a conditional
//! branch), so editors complete and check runbooks as `check` does.

use crate::parse::raw::Runbook;
use crate::step::Registry;
use serde_json::{Value as Json, json};

/// The schema of format v1 with the `with` of every registered kind.
pub fn format_schema(registry: &Registry) -> Json {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.meta_schema = Some("https://json-schema.org/draft/2020-12/schema".into());
    let generator = settings.into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<Runbook>()).unwrap_or(Json::Null);
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            json!("https://runbook.dev/schemas/runbook-v1.schema.json"),
        );
        object.insert("required".into(), json!(["runbook", "steps"]));
    }
    let kinds: Vec<&str> = registry.names().collect();
    let branches: Vec<Json> = registry
        .kinds()
        .map(|kind| {
            json!({
                "if": { "properties": { "uses": { "const": kind.name() } }, "required": ["uses"] },
                "then": { "properties": { "with": kind.params_schema() } }
            })
        })
        .collect();
    for definition in ["Step", "StepBody"] {
        if let Some(step) = schema
            .pointer_mut(&format!("/$defs/{definition}"))
            .and_then(Json::as_object_mut)
        {
            step.insert("allOf".into(), Json::Array(branches.clone()));
            if let Some(uses) = step
                .get_mut("properties")
                .and_then(|p| p.get_mut("uses"))
                .and_then(Json::as_object_mut)
            {
                uses.insert("examples".into(), json!(kinds));
            }
            let required = if definition == "Step" {
                json!(["id", "uses"])
            } else {
                json!(["uses"])
            };
            step.insert("required".into(), required);
        }
    }
    schema
}

/// The schema of one line of `runbook run --output json`: an event with its time.
pub fn events_schema() -> Json {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.meta_schema = Some("https://json-schema.org/draft/2020-12/schema".into());
    let generator = settings.into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<crate::execute::EventLine<'static>>())
        .unwrap_or(Json::Null);
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            json!("https://runbook.dev/schemas/run-events-v1.schema.json"),
        );
        object.insert("title".into(), json!("runbook run --output json: one event per line"));
    }
    schema
}

#[cfg(test)]
mod tests {
    /// The checked-in schema of the event stream is the one the code makes.
    #[test]
    fn the_events_schema_is_checked_in() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/run-events-v1.schema.json");
        let made = format!("{}\n", serde_json::to_string_pretty(&super::events_schema()).unwrap());
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        if std::env::var_os("RUNBOOK_UPDATE_SCHEMAS").is_some() {
            std::fs::write(path, &made).unwrap();
            return;
        }
        assert!(
            checked_in == made,
            "schemas/run-events-v1.schema.json differs from the events' types; regenerate it with\n  RUNBOOK_UPDATE_SCHEMAS=1 cargo test -p runbook-engine --lib schema"
        );
    }
}
