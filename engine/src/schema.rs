//! The JSON Schema of the runbook format, generated from the raw types and
//! the registered step kinds (each kind's `with` becomes a conditional
//! branch), so that editors check runbooks as `check` does: as strictly,
//! wherever JSON Schema can say it. What only `check` can see (the step
//! graph, templates and the names they read, the files a runbook names)
//! is listed in the book's format page.

use crate::parse::raw::Runbook;
use crate::step::{Registry, StepKind, TEMPLATE_KEYWORD, TemplatePlaces};
use serde_json::{Map, Value as Json, json};

/// Where `check` reads `null` as empty (a list or a mapping with nothing
/// in it: `FromNode` for `Vec` and `NamedMap`), so `needs: ~` is `needs:
/// []`. Everywhere else an empty value is an error, as it is for `check`.
const NULL_READS_AS_EMPTY: &[&str] = &[
    "/properties/inputs",
    "/properties/secrets",
    "/properties/vars",
    "/properties/plugins",
    "/properties/finally",
    "/$defs/Step/properties/needs",
    "/$defs/Step/properties/verify",
    "/$defs/Step/properties/outputs",
    "/$defs/StepBody/properties/verify",
];

/// The schema of format v1 with the `with` of every registered kind.
pub fn format_schema(registry: &Registry) -> Json {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.meta_schema = Some("https://json-schema.org/draft/2020-12/schema".into());
    let generator = settings.into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<Runbook>()).unwrap_or(Json::Null);
    // An `Option` field is optional, not nullable: `name:` with nothing
    // after it is an error for `check`.
    without_null(&mut schema);
    // A plugin's name is a name and not a built-in kind's prefix; its path
    // is not blank.
    if let Some(plugins) = schema.pointer_mut("/properties/plugins").and_then(Json::as_object_mut) {
        plugins.insert(
            "propertyNames".into(),
            json!({ "pattern": crate::words::NAME_PATTERN, "not": { "enum": crate::plugin::RESERVED } }),
        );
        plugins.insert(
            "additionalProperties".into(),
            json!({ "type": "string", "pattern": "\\S" }),
        );
    }
    for pointer in NULL_READS_AS_EMPTY {
        if let Some(place) = schema.pointer_mut(pointer) {
            one_of_these(place, json!({ "type": "null" }));
        }
    }
    // A `finally` step runs in its place at the end: no `needs`, no `rollback`.
    if let Some(items) = schema.pointer_mut("/properties/finally/anyOf/0/items") {
        *items = json!({
            "$ref": "#/$defs/Step",
            "properties": { "needs": false, "rollback": false }
        });
    }
    let Some(object) = schema.as_object_mut() else {
        return schema;
    };
    object.insert(
        "$id".into(),
        json!("https://runbook.dev/schemas/runbook-v1.schema.json"),
    );
    object.insert("required".into(), json!(["runbook", "steps"]));
    let defs = object
        .entry("$defs")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("schemars writes `$defs` as an object");
    defs.insert("StepKind".into(), kind_names(registry));
    defs.insert(
        "Template".into(),
        json!({
            "description": "A template (`{{ ... }}`), judged once the run renders it.",
            "type": "string",
            "pattern": crate::template::TEMPLATE_PATTERN
        }),
    );
    defs.insert(
        "NestedStep".into(),
        json!({
            "description": "A step body that the kind runs itself, such as `wait`'s probe.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "uses": { "description": "The step kind.", "$ref": "#/$defs/StepKind" },
                "with": { "description": "The kind's parameters (templates)." }
            },
            "required": ["uses"],
            "allOf": [{ "$ref": "#/$defs/KindParams" }]
        }),
    );
    for kind in registry.kinds() {
        defs.insert(format!("Params_{}", kind.name()), params_schema(kind.as_ref()));
    }
    defs.insert("KindParams".into(), json!({}));
    let branches: Vec<Json> = registry
        .kinds()
        .map(|kind| {
            let name = format!("Params_{}", kind.name());
            let mut then = json!({ "properties": { "with": { "$ref": format!("#/$defs/{name}") } } });
            // Without `with`, a step's parameters are `{}`: a kind that
            // needs some needs `with`.
            let document = json!({ "$ref": format!("#/$defs/{name}"), "$defs": defs });
            if jsonschema::validator_for(&document).is_ok_and(|v| !v.is_valid(&json!({}))) {
                then["required"] = json!(["with"]);
            }
            json!({
                "if": { "properties": { "uses": { "const": kind.name() } }, "required": ["uses"] },
                "then": then
            })
        })
        .collect();
    defs.insert(
        "KindParams".into(),
        json!({
            "description": "The `with` of the kind named in `uses`.",
            "allOf": branches
        }),
    );
    for (definition, required) in [("Step", json!(["id", "uses"])), ("StepBody", json!(["uses"]))] {
        if let Some(step) = defs.get_mut(definition).and_then(Json::as_object_mut) {
            step.insert("allOf".into(), json!([{ "$ref": "#/$defs/KindParams" }]));
            if let Some(uses) = step.get_mut("properties").and_then(|p| p.get_mut("uses")) {
                let description = uses.get("description").cloned().unwrap_or(Json::Null);
                *uses = json!({ "description": description, "$ref": "#/$defs/StepKind" });
            }
            step.insert("required".into(), required);
        }
    }
    schema
}

/// The kinds `uses` may name: the registered ones, or a plugin's
/// (`PLUGIN.KIND`, with a plugin name that is not a built-in prefix).
fn kind_names(registry: &Registry) -> Json {
    let names: Vec<&str> = registry.names().collect();
    let reserved = crate::plugin::RESERVED.join("|");
    json!({
        "type": "string",
        "anyOf": [
            { "enum": names },
            {
                "description": "A plugin's kind, `PLUGIN.KIND`.",
                "pattern": "^[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*$",
                "not": { "pattern": format!("^({reserved})\\.") }
            }
        ]
    })
}

/// A kind's `with`, as `check` reads it: its parameter schema and the
/// rules of its `validate` that JSON Schema can say, where a template may
/// stand for a value where the kind takes one ([`TemplatePlaces`]; `check`
/// judges it once rendered), and a nested step is checked as a step of its
/// own kind.
fn params_schema(kind: &dyn StepKind) -> Json {
    let mut params = kind.params_schema();
    match kind.template_places() {
        TemplatePlaces::Marked => templates_where_read(&mut params),
        TemplatePlaces::Anywhere => spare_templates(&mut params),
    }
    if let Some(object) = params.as_object_mut() {
        // One `$schema`, at the top of the document.
        object.remove("$schema");
        let mut rules = kind.params_rules();
        // `validate` judges text as written and leaves templates to the run.
        rules.iter_mut().for_each(spare_templates);
        // A child runbook is checked with this one, so it is named plainly.
        if let Some(param) = kind.child_runbook_param() {
            rules.push(json!({
                "properties": { param: { "not": { "pattern": crate::template::TEMPLATE_PATTERN } } }
            }));
        }
        if !rules.is_empty() {
            object.insert("allOf".into(), Json::Array(rules));
        }
    }
    for pointer in kind.nested_steps() {
        let at = pointer
            .trim_start_matches('/')
            .split('/')
            .fold(String::new(), |at, name| {
                format!("{at}/properties/{}", name.replace('~', "~0").replace('/', "~1"))
            });
        if let Some(nested) = params.pointer_mut(&at) {
            let description = nested.get("description").cloned().unwrap_or(Json::Null);
            *nested = json!({ "description": description, "$ref": "#/$defs/NestedStep" });
        }
    }
    params
}

/// Lets a template stand where [`TemplatePlaces::Marked`] says: at a place
/// marked with [`TEMPLATE_KEYWORD`], and at a place of text, whose rules
/// `check` leaves to the rendered value. Takes the marks out.
fn templates_where_read(schema: &mut Json) {
    let Json::Object(object) = schema else {
        return;
    };
    let (below, alike) = subschemas(object);
    below.into_iter().chain(alike).for_each(templates_where_read);
    let marked = object.remove(TEMPLATE_KEYWORD).is_some();
    // Text, not a choice among names (which no template reads as).
    let text =
        object.get("type") == Some(&json!("string")) && !object.contains_key("enum") && !object.contains_key("const");
    if (marked || text) && !accepts_every_string(object) {
        one_of_these(schema, json!({ "$ref": "#/$defs/Template" }));
    }
}

/// A schema that holds for the values under it except a template (not
/// for `rule` itself: `with` is a mapping): a rule of `validate`, which
/// leaves templates to the run, or the parameters of a kind that takes a
/// template anywhere.
fn spare_templates(rule: &mut Json) {
    let Some(object) = rule.as_object_mut() else {
        return;
    };
    let (below, alike) = subschemas(object);
    below.into_iter().for_each(template_or);
    alike.into_iter().for_each(spare_templates);
}

/// The schemas inside a schema: of the values below its value
/// (`properties`, `items`, ...), and of its value itself (`allOf`, `then`,
/// ...).
fn subschemas(object: &mut Map<String, Json>) -> (Vec<&mut Json>, Vec<&mut Json>) {
    let (mut below, mut alike) = (Vec::new(), Vec::new());
    for (key, value) in object.iter_mut() {
        match (key.as_str(), value) {
            ("properties" | "patternProperties", Json::Object(schemas)) => below.extend(schemas.values_mut()),
            ("prefixItems", Json::Array(schemas)) => below.extend(schemas.iter_mut()),
            ("additionalProperties" | "items", schema) => below.push(schema),
            ("allOf" | "anyOf" | "oneOf", Json::Array(schemas)) => alike.extend(schemas.iter_mut()),
            ("then" | "else", schema) => alike.push(schema),
            _ => {}
        }
    }
    (below, alike)
}

/// The place `rule` judges, where a template is spared.
fn template_or(rule: &mut Json) {
    spare_templates(rule);
    let Some(object) = rule.as_object() else {
        // `true` takes anything; `false` takes nothing, templates included.
        return;
    };
    if !accepts_every_string(object) {
        one_of_these(rule, json!({ "$ref": "#/$defs/Template" }));
    }
}

/// The place `schema` describes, taking `other` as well. What editors show
/// stays at the place; the value's rules go inside.
fn one_of_these(schema: &mut Json, other: Json) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let mut shown = Map::new();
    for key in ["description", "title", "default", "examples"] {
        if let Some(value) = object.remove(key) {
            shown.insert(key.into(), value);
        }
    }
    shown.insert("anyOf".into(), json!([Json::Object(std::mem::take(object)), other]));
    *object = shown;
}

/// Whether a schema takes every string: no type other than `string`, and
/// nothing that judges a string's text.
fn accepts_every_string(object: &Map<String, Json>) -> bool {
    let judging = [
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "format",
        "not",
        "anyOf",
        "oneOf",
        "allOf",
    ];
    let strings = match object.get("type") {
        None => true,
        Some(Json::String(ty)) => ty == "string",
        Some(Json::Array(types)) => types.iter().any(|t| t == "string"),
        Some(_) => false,
    };
    strings && !judging.iter().any(|key| object.contains_key(*key))
}

/// Takes `null` out of every type and alternative under `schema`.
fn without_null(schema: &mut Json) {
    match schema {
        Json::Object(object) => {
            if let Some(Json::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    let only = only.clone();
                    object.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Json::Array(members)) = object.get_mut(key) {
                    members.retain(|m| m != &json!({ "type": "null" }));
                    if let [only] = members.as_slice() {
                        // One alternative left: it is the schema.
                        let only = only.clone();
                        object.remove(key);
                        if let Json::Object(only) = only {
                            for (k, v) in only {
                                object.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
            object.values_mut().for_each(without_null);
        }
        Json::Array(items) => items.iter_mut().for_each(without_null),
        _ => {}
    }
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
    use super::*;

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

    /// Every place that reads `null` as empty is in the schema: a renamed
    /// field would otherwise be left out quietly.
    #[test]
    fn the_places_that_read_null_as_empty_exist() {
        let schema = format_schema(&Registry::new());
        for pointer in NULL_READS_AS_EMPTY {
            let place = schema.pointer(pointer).unwrap_or_else(|| panic!("no {pointer}"));
            assert_eq!(place["anyOf"][1], json!({ "type": "null" }), "{pointer}");
        }
    }

    #[test]
    fn the_template_pattern_finds_what_is_template_finds() {
        let validator = jsonschema::validator_for(&json!({ "pattern": crate::template::TEMPLATE_PATTERN })).unwrap();
        for text in [
            "{{ inputs.a }}",
            "a {% if x %}b{% endif %}",
            "{# note #}",
            "{",
            "{ {",
            "x}}",
            "plain",
            "",
        ] {
            assert_eq!(
                validator.is_valid(&json!(text)),
                crate::template::is_template(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_template_may_stand_where_the_kind_reads_one() {
        let mut params = json!({
            "type": "object",
            "properties": {
                "count": { "type": "integer", "description": "How many.", TEMPLATE_KEYWORD: true },
                "name": { "type": "string", TEMPLATE_KEYWORD: true },
                "codes": { "type": "array", "items": { "type": "integer", TEMPLATE_KEYWORD: true } },
                "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                "mode": { "type": "string", "pattern": "^[0-7]+$" },
                "format": { "type": "string", "enum": ["dir", "tar.gz"] }
            }
        });
        templates_where_read(&mut params);
        assert_eq!(
            params["properties"]["count"],
            json!({ "description": "How many.", "anyOf": [{ "type": "integer" }, { "$ref": "#/$defs/Template" }] })
        );
        assert_eq!(params["properties"]["name"], json!({ "type": "string" }));
        assert_eq!(
            params["properties"]["codes"]["items"]["anyOf"][1],
            json!({ "$ref": "#/$defs/Template" })
        );
        assert_eq!(
            params["properties"]["headers"],
            json!({ "type": "object", "additionalProperties": { "type": "string" } }),
            "`check` reads no template for a mapping the kind does not take as one"
        );
        assert_eq!(
            params["properties"]["mode"]["anyOf"][1],
            json!({ "$ref": "#/$defs/Template" }),
            "text is judged once rendered"
        );
        assert_eq!(
            params["properties"]["format"],
            json!({ "type": "string", "enum": ["dir", "tar.gz"] })
        );
    }

    /// A kind that judges its parameters once rendered, as a plugin's do.
    struct Loose;

    impl StepKind for Loose {
        fn name(&self) -> &'static str {
            "loose"
        }
        fn summary(&self) -> &'static str {
            "Takes a template anywhere."
        }
        fn params_schema(&self) -> Json {
            json!({
                "type": "object",
                "properties": { "times": { "type": "integer" }, "tags": { "type": "object" } },
                "additionalProperties": false
            })
        }
        fn describe(&self, _: &Json) -> String {
            "loose".into()
        }
        fn run(&self, cx: crate::step::StepContext) -> crate::step::StepFuture<'_> {
            Box::pin(async move { Ok(cx.params) })
        }
    }

    #[test]
    fn a_kind_that_takes_a_template_anywhere_takes_it_in_the_schema_too() {
        let mut registry = Registry::new();
        registry.register(Loose);
        let validator = jsonschema::validator_for(&format_schema(&registry)).unwrap();
        let with = |params: &str| format!("runbook: 1\nsteps:\n  - id: a\n    uses: loose\n    with: {params}\n");
        for params in [
            r#"{ times: "{{ run.id }}", tags: "{{ run.id }}" }"#,
            "{ times: 3, tags: {} }",
        ] {
            let text = with(params);
            let source = crate::SourceFile::new("t.yaml", text.as_str());
            assert!(crate::load(&source, &registry).is_ok(), "check refuses {params}");
            let value: Json = serde_saphyr::from_str(&text).unwrap();
            assert!(validator.is_valid(&value), "the schema refuses {params}");
        }
        let value: Json = serde_saphyr::from_str(&with("{ times: three }")).unwrap();
        assert!(!validator.is_valid(&value));
    }

    #[test]
    fn a_rule_of_validate_spares_templates() {
        let mut rule = json!({ "properties": { "url": { "pattern": "^https?://" }, "verify": false } });
        spare_templates(&mut rule);
        assert_eq!(
            rule["properties"]["url"],
            json!({ "anyOf": [{ "pattern": "^https?://" }, { "$ref": "#/$defs/Template" }] })
        );
        assert_eq!(rule["properties"]["verify"], json!(false));
    }
}
