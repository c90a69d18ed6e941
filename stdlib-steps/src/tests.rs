//! Tests over every built-in kind at once, and the helpers each kind's own
//! tests share.

use runbook_engine::step::{ParamProblem, Registry};
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

pub fn registry() -> Registry {
    let mut registry = Registry::new();
    crate::register(&mut registry);
    registry
}

/// Every problem `check` would report: the schema's, then the kind's own.
pub fn problems(name: &str, params: &Json) -> Vec<ParamProblem> {
    let registry = registry();
    let mut problems = registry.check_schema(name, params, &|_| false);
    problems.extend(registry.get(name).expect("a registered kind").validate(params));
    problems
}

/// The parameters pass the schema and the kind's checks, and, unless they
/// still hold templates, read into the kind's parameter struct.
pub fn assert_valid<P: DeserializeOwned>(name: &str, params: Json) {
    let problems = problems(name, &params);
    assert!(problems.is_empty(), "{name} {params}: {problems:#?}");
    if !params.to_string().contains("{{")
        && let Err(e) = serde_json::from_value::<P>(params.clone())
    {
        panic!("{name} {params} passed the checks but does not read: {e}");
    }
}

/// The parameters are rejected with a problem at `pointer` whose message
/// contains `message`. Returns that problem.
pub fn assert_rejected(name: &str, params: Json, pointer: &str, message: &str) -> ParamProblem {
    let problems = problems(name, &params);
    problems
        .iter()
        .find(|p| p.pointer == pointer && p.message.contains(message))
        .cloned()
        .unwrap_or_else(|| panic!("{name} {params}: no problem at `{pointer}` saying “{message}”: {problems:#?}"))
}

/// What `describe` says for each of `examples`, one paragraph each, for a
/// snapshot.
pub fn describe_all(name: &str, examples: &[Json]) -> String {
    let registry = registry();
    let kind = registry.get(name).expect("a registered kind");
    examples
        .iter()
        .map(|params| format!("{params}\n→ {}\n", kind.describe(params)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn registers_every_built_in_kind() {
    let names: Vec<_> = registry().names().collect();
    assert_eq!(names, ["shell", "http", "wait", "assert", "sleep", "confirm", "log"]);
    for kind in registry().kinds() {
        assert!(kind.summary().ends_with('.'), "{}: {}", kind.name(), kind.summary());
    }
}

/// Calls `visit` on every schema object inside `schema`, itself included.
fn walk(schema: &Json, path: &str, visit: &mut dyn FnMut(&str, &serde_json::Map<String, Json>)) {
    match schema {
        Json::Object(map) => {
            visit(path, map);
            for (key, value) in map {
                walk(value, &format!("{path}/{key}"), visit);
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}/{i}"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn schemas_compile_are_closed_and_self_contained() {
    let registry = registry();
    for kind in registry.kinds() {
        let name = kind.name();
        let schema = kind.params_schema();
        let problems = registry.check_schema(name, &json!({}), &|_| false);
        assert!(
            !problems.iter().any(|p| p.message.contains("invalid parameter schema")),
            "{name}: {problems:#?}"
        );
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
        walk(&schema, "", &mut |path, map| {
            assert!(!map.contains_key("$ref"), "{name}: a `$ref` at {path}");
            if map.contains_key("properties") && !path.ends_with("/properties") {
                assert_eq!(
                    map.get("additionalProperties"),
                    Some(&json!(false)),
                    "{name}: an open object at {path}"
                );
            }
        });
        for (param, property) in schema["properties"].as_object().expect("properties") {
            assert!(
                property.get("description").is_some_and(|d| d.is_string()),
                "{name}: `{param}` has no description"
            );
        }
        for pointer in kind.expression_params().iter().chain(kind.nested_steps()) {
            let property = format!("/properties/{}", pointer.trim_start_matches('/'));
            assert!(
                schema.pointer(&property).is_some(),
                "{name}: {pointer} is not a parameter"
            );
        }
    }
}

#[test]
fn schemas() {
    let schemas: serde_json::Map<String, Json> = registry()
        .kinds()
        .map(|kind| (kind.name().to_string(), kind.params_schema()))
        .collect();
    insta::assert_snapshot!(serde_json::to_string_pretty(&schemas).expect("JSON"));
}

#[test]
fn odd_params_never_panic() {
    let odd = [
        json!(null),
        json!([]),
        json!({}),
        json!("run"),
        json!(5),
        json!(true),
        json!({"url": 5}),
        json!({"url": null, "method": ["GET"], "headers": [1], "query": {"a": null, "b": [1], "c": {"d": 1}}}),
        json!({"url": "", "json": null, "body": 3, "expect_status": "2xx", "timeout": -1}),
        json!({"run": [], "argv": [null, {}, [1], ""], "env": "A", "cwd": 1, "ok_codes": "3"}),
        json!({"run": "", "ok_codes": [null, "x"], "env": {"": null}}),
        json!({"probe": 5, "until": [], "interval": {}, "timeout": "{{"}),
        json!({"probe": {"uses": [], "with": 3}, "until": null, "interval": "0s"}),
        json!({"that": [1, null, []], "message": {"a": 1}}),
        json!({"that": "", "duration": "", "level": 7}),
        json!({"message": "\n\n", "level": "loud", "duration": "99999999999999999999y"}),
        json!({"message": "é".repeat(300), "run": "\u{0}\u{202e}"}),
    ];
    let registry = registry();
    for kind in registry.kinds() {
        for params in &odd {
            let _ = kind.describe(params);
            let _ = kind.validate(params);
            let _ = registry.check_schema(kind.name(), params, &|_| false);
        }
    }
}
