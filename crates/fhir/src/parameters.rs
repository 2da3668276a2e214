//! `Parameters`: what an operation takes ([`Input`]).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use polyclinic_http::ApiError;
use serde_json::Value;
use uuid::Uuid;

use crate::search::reference_id;

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameters", detail.into())
}

/// An operation's input: a `Parameters` resource, read leniently as to which `value[x]` a
/// client chose (a date as `valueDate`, `valueDateTime` or `valueInstant`; a reference as
/// `valueReference` or a plain string) and strictly as to which names it may use.
#[derive(Debug, Clone, Default)]
pub struct Input {
    parameters: Vec<(String, Value)>,
}

impl Input {
    /// Reads `body` (a Parameters resource, or nothing); `supported` are the names the
    /// operation takes. 400 for anything else.
    pub fn parse(body: &[u8], supported: &[&str]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let document: Value = serde_json::from_slice(body)
            .map_err(|err| ApiError::bad_request("malformed_json", err.to_string()))?;
        if document["resourceType"] != "Parameters" {
            return Err(invalid("The body must be a Parameters resource."));
        }
        let mut parameters = Vec::new();
        for parameter in document["parameter"].as_array().into_iter().flatten() {
            let name = parameter["name"]
                .as_str()
                .ok_or_else(|| invalid("Every parameter needs a name."))?;
            if !supported.contains(&name) {
                return Err(invalid(format!(
                    "`{name}` is not a parameter of this operation (it takes: {}).",
                    supported.join(", ")
                )));
            }
            let value = parameter
                .as_object()
                .and_then(|fields| {
                    fields
                        .iter()
                        .find(|(key, _)| key.starts_with("value"))
                        .map(|(key, value)| (key.clone(), value.clone()))
                })
                .ok_or_else(|| invalid(format!("`{name}` has no value.")))?;
            parameters.push((name.to_owned(), serde_json::json!({ value.0: value.1 })));
        }
        Ok(Self { parameters })
    }

    fn one(&self, name: &str) -> Result<Option<(&str, &Value)>, ApiError> {
        let mut found = self.parameters.iter().filter(|(key, _)| key == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(invalid(format!("`{name}` is given more than once.")));
        }
        Ok(first.and_then(|(_, value)| {
            value
                .as_object()
                .and_then(|fields| fields.iter().next())
                .map(|(kind, value)| (kind.as_str(), value))
        }))
    }

    /// A text parameter (`valueString`, `valueCode`, a Coding's code or a concept's text).
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some((kind, value)) = self.one(name)? else {
            return Ok(None);
        };
        let text = match kind {
            "valueCoding" => value["code"].as_str(),
            "valueCodeableConcept" => value["text"]
                .as_str()
                .or_else(|| value["coding"][0]["code"].as_str()),
            _ => value.as_str(),
        };
        text.map(|text| Some(text.trim().to_owned()))
            .filter(|text| {
                text.as_deref()
                    .is_some_and(|text| !text.is_empty() && !text.contains('\0'))
            })
            .ok_or_else(|| invalid(format!("`{name}` must be text.")))
    }

    /// An instant parameter; a date means its start in `zone`.
    pub fn instant(&self, name: &str, zone: Tz) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some((_, value)) = self.one(name)? else {
            return Ok(None);
        };
        let text = value
            .as_str()
            .ok_or_else(|| invalid(format!("`{name}` must be a date or dateTime.")))?;
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Some(at.with_timezone(&Utc)));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .and_then(|midnight| {
                use chrono::TimeZone;
                zone.from_local_datetime(&midnight).earliest()
            })
            .map(|at| Some(at.with_timezone(&Utc)))
            .ok_or_else(|| {
                invalid(format!(
                    "`{name}` must be a date or dateTime (got `{text}`)."
                ))
            })
    }

    /// The id a reference parameter names (`valueReference` or a string `Type/<id>`).
    pub fn reference(&self, name: &str, resource_type: &str) -> Result<Option<Uuid>, ApiError> {
        let Some((kind, value)) = self.one(name)? else {
            return Ok(None);
        };
        let text = match kind {
            "valueReference" => value["reference"].as_str(),
            _ => value.as_str(),
        };
        text.and_then(|text| reference_id(text, resource_type))
            .map(Some)
            .ok_or_else(|| invalid(format!("`{name}` must reference a {resource_type}.")))
    }

    /// The raw reference text of `name` (for references to ids that are not UUIDs).
    pub fn reference_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some((kind, value)) = self.one(name)? else {
            return Ok(None);
        };
        let text = match kind {
            "valueReference" => value["reference"].as_str(),
            _ => value.as_str(),
        };
        text.map(|text| Some(text.to_owned()))
            .ok_or_else(|| invalid(format!("`{name}` must be a reference.")))
    }

    /// A whole number parameter.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some((_, value)) = self.one(name)? else {
            return Ok(None);
        };
        value
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("`{name}` must be a whole number.")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_reads_whichever_value_type_the_client_chose() {
        let id = Uuid::new_v4();
        let body = serde_json::json!({"resourceType": "Parameters", "parameter": [
            {"name": "start", "valueDate": "2026-12-03"},
            {"name": "end", "valueDateTime": "2026-12-10T00:00:00Z"},
            {"name": "practitioner", "valueReference": {"reference": format!("Practitioner/{id}")}},
            {"name": "specialty", "valueCodeableConcept": {"text": "Cardiology"}}
        ]});
        let input = Input::parse(
            &serde_json::to_vec(&body).unwrap(),
            &["start", "end", "practitioner", "specialty"],
        )
        .unwrap();
        assert_eq!(
            input
                .instant("start", Tz::UTC)
                .unwrap()
                .unwrap()
                .to_rfc3339(),
            "2026-12-03T00:00:00+00:00"
        );
        assert!(input.instant("end", Tz::UTC).unwrap().is_some());
        assert_eq!(
            input.reference("practitioner", "Practitioner").unwrap(),
            Some(id)
        );
        assert_eq!(
            input.text("specialty").unwrap().as_deref(),
            Some("Cardiology")
        );
        assert_eq!(input.text("nothing").unwrap(), None);
    }

    #[test]
    fn an_input_refuses_what_the_operation_does_not_take() {
        let body = br#"{"resourceType": "Parameters", "parameter": [{"name": "colour", "valueString": "red"}]}"#;
        assert_eq!(
            Input::parse(body, &["start"]).unwrap_err().code(),
            "invalid_parameters"
        );
        let body = br#"{"resourceType": "Patient"}"#;
        assert_eq!(
            Input::parse(body, &["start"]).unwrap_err().code(),
            "invalid_parameters"
        );
        assert!(Input::parse(b"", &["start"]).is_ok());
    }
}
