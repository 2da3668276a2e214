//! Collecting every invalid field of a request into one 422 answer.

use serde::Serialize;

use crate::ApiError;

/// One field that failed to parse.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Collects field errors while a request body is parsed into domain types, so the client
/// learns about every bad field at once: 422 `validation_failed` with an `errors` list.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value of `result`, or records its error against `field`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.add(field, err);
                None
            }
        }
    }

    /// Like [`Violations::check`] for an optional input.
    pub fn check_opt<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Option<Result<T, E>>,
    ) -> Option<Option<T>> {
        match result {
            None => Some(None),
            Some(result) => self.check(field, result).map(Some),
        }
    }

    /// Records that `field` is invalid.
    pub fn add(&mut self, field: &str, message: impl std::fmt::Display) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.to_string(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, otherwise the 422.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    /// The 422 describing every recorded field. Use it in the `else` of a
    /// `let (Some(a), Some(b)) = (a, b) else { ... }` over checked values.
    pub fn into_error(self) -> ApiError {
        if self.0.is_empty() {
            return ApiError::internal(anyhow::anyhow!(
                "a checked value is missing although no field error was recorded"
            ));
        }
        let detail = self
            .0
            .iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::unprocessable("validation_failed", detail)
            .with_extension("errors", serde_json::to_value(&self.0).unwrap_or_default())
    }
}
