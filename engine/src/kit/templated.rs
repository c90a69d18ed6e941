//! Parameters that may still stand in for a value known only later: a
//! template before the run, a placeholder or a masked secret in a plan.

use crate::step::{StepError, TEMPLATE_KEYWORD};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

/// Which parameters are being read, and so which text stands in for a value
/// not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// As written in the runbook (`check`): a template is read as such.
    AsWritten,
    /// As a plan or a progress line shows them: templates, placeholders
    /// such as `<steps.resolve.outputs.pop>` and masked secrets (`***`)
    /// are read as such.
    Shown,
    /// Rendered, for running: every value must be what it says.
    #[default]
    Rendered,
}

impl Reading {
    fn defers(self, text: &str) -> bool {
        match self {
            Reading::AsWritten => crate::template::is_template(text),
            Reading::Shown => {
                crate::template::is_template(text) || text.contains(crate::secrets::MASK) || holds_placeholder(text)
            }
            Reading::Rendered => false,
        }
    }
}

/// Whether `text` holds a placeholder such as `<inputs.pause>`.
fn holds_placeholder(text: &str) -> bool {
    text.split('<').skip(1).any(|rest| {
        rest.split_once('>').is_some_and(|(path, _)| {
            !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        })
    })
}

thread_local! {
    static READING: Cell<Reading> = const { Cell::new(Reading::Rendered) };
}

/// Sets how parameters are read on this thread until dropped.
pub(super) struct Scope(Reading);

impl Scope {
    pub(super) fn enter(reading: Reading) -> Self {
        Self(READING.with(|r| r.replace(reading)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        READING.with(|r| r.set(self.0));
    }
}

/// A parameter that is not a plain string, such as a duration, a number or
/// a choice, which may be written as a template (`"{{ inputs.timeout }}"`)
/// and so is known only once rendered. When a run renders it, it must read
/// as `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Templated<T> {
    /// The value.
    Value(T),
    /// The text that stands in for it until the run renders it.
    Later(String),
}

impl<T> Templated<T> {
    /// The value, when it is known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Templated::Value(value) => Some(value),
            Templated::Later(_) => None,
        }
    }

    /// The value, for running. Rendered parameters hold no stand-ins, so the
    /// error is for a kind run on parameters that were not.
    pub fn get(&self) -> Result<&T, StepError> {
        match self {
            Templated::Value(value) => Ok(value),
            Templated::Later(text) => Err(StepError::new(format!("`{text}` was not rendered"))),
        }
    }
}

impl<T: Default> Default for Templated<T> {
    fn default() -> Self {
        Templated::Value(T::default())
    }
}

impl<T> From<T> for Templated<T> {
    fn from(value: T) -> Self {
        Templated::Value(value)
    }
}

impl<T: fmt::Display> fmt::Display for Templated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Templated::Value(value) => value.fmt(f),
            Templated::Later(text) => f.write_str(text),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Templated<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Json::deserialize(deserializer)?;
        if let Json::String(text) = &value
            && READING.with(Cell::get).defers(text)
        {
            return Ok(Templated::Later(text.clone()));
        }
        T::deserialize(value)
            .map(Templated::Value)
            .map_err(serde::de::Error::custom)
    }
}

/// Written as the value, or as the text that stands in for it (so that a
/// parameter's default shows in its schema).
impl<T: Serialize> Serialize for Templated<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Templated::Value(value) => value.serialize(serializer),
            Templated::Later(text) => serializer.serialize_str(text),
        }
    }
}

/// `T`'s schema, marked with [`TEMPLATE_KEYWORD`]: `check` judges a
/// template here once the run renders it.
impl<T: JsonSchema> JsonSchema for Templated<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = generator.subschema_for::<T>();
        schema.ensure_object().insert(TEMPLATE_KEYWORD.into(), Json::Bool(true));
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::HumanDuration;
    use serde_json::json;

    fn read(value: Json, reading: Reading) -> Result<Templated<HumanDuration>, String> {
        let _scope = Scope::enter(reading);
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn stand_ins_are_read_only_where_they_may_be() {
        let template = json!("{{ inputs.t }}");
        assert_eq!(
            read(template.clone(), Reading::AsWritten),
            Ok(Templated::Later("{{ inputs.t }}".into()))
        );
        assert!(read(template, Reading::Rendered).is_err());
        for shown in ["<inputs.t>", "<steps.a.outputs.b>s", "***"] {
            assert_eq!(read(json!(shown), Reading::Shown), Ok(Templated::Later(shown.into())));
            assert!(read(json!(shown), Reading::AsWritten).is_err(), "{shown}");
        }
        assert_eq!(
            read(json!("90s"), Reading::Shown),
            Ok(Templated::Value(HumanDuration::from_secs(90)))
        );
        let error = read(json!("soon"), Reading::AsWritten).unwrap_err();
        assert!(error.contains("`soon` is not a duration"), "{error}");
    }

    #[test]
    fn the_reading_is_restored_after_a_scope() {
        {
            let _scope = Scope::enter(Reading::Shown);
        }
        assert!(serde_json::from_value::<Templated<u8>>(json!("<inputs.n>")).is_err());
    }
}
