//! Time limits: a duration parameter that bounds how long something may
//! take cannot be zero.

use runbook_engine::kit::Templated;
use runbook_engine::step::ParamProblem;
use runbook_engine::words::{HumanDuration, parse_timeout};

/// The problem of a time limit `name` that is zero: it would stop
/// everything at once.
pub(crate) fn time_limit(name: &str, value: &Templated<HumanDuration>) -> Option<ParamProblem> {
    let error = parse_timeout(&value.known()?.to_string()).err()?;
    Some(
        ParamProblem::new(format!("/{name}"), format!("`{name}` is not a duration: {error}"))
            .with_help(HumanDuration::HELP),
    )
}

/// The schema rule of [`time_limit`] for the parameter `name`: not zero.
pub(crate) fn time_limit_rule(name: &str) -> serde_json::Value {
    runbook_engine::kit::param_rule(
        name,
        serde_json::json!({ "not": { "pattern": HumanDuration::ZERO_PATTERN } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_limit_of_zero_is_a_problem() {
        assert_eq!(time_limit("t", &Templated::Later("{{ inputs.t }}".into())), None);
        assert_eq!(time_limit("t", &Templated::Value(HumanDuration::from_secs(5))), None);
        let problem = time_limit("t", &Templated::Value(HumanDuration::from_secs(0))).unwrap();
        assert_eq!(problem.pointer, "/t");
        assert!(problem.message.contains("would stop everything at once"), "{problem:?}");
    }
}
