pub mod diagnostic;
pub mod parse;
pub mod step;
pub mod validate { pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_]*$"; }
