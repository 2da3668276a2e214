//! The FHIR R4 datatypes the served resources use, as typed serde structs: only the
//! elements Polyclinic fills, each named and cased as the specification names it.
//!
//! Why our own structs rather than a generated model crate: the generated R4 models on
//! crates.io (fhirbolt, fhir) carry every one of R4's 146 resources (fhirbolt is about 1.5
//! million lines) and would multiply the workspace's compile time on two cores, for the
//! thirteen resources served here. The output is checked against HL7's R4 JSON schema and
//! FHIR.js's structure, cardinality and binding rules by the tests instead.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// An `instant` or `dateTime` with a time: UTC, to the second, as FHIR's regex wants it.
pub fn instant<S: Serializer>(value: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// [`instant`] for an optional element (left out when `None`).
pub fn optional_instant<S: Serializer>(
    value: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => instant(value, serializer),
        None => serializer.serialize_none(),
    }
}

/// A `Reference` to another resource: `Type/id`, with a display name where one is known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Reference {
    /// `resource_type/id`.
    pub fn to(resource_type: &str, id: impl std::fmt::Display) -> Self {
        Self {
            reference: Some(format!("{resource_type}/{id}")),
            display: None,
        }
    }

    /// A reference that only names (an actor with no resource of its own).
    pub fn named(display: impl Into<String>) -> Self {
        Self {
            reference: None,
            display: Some(display.into()),
        }
    }

    pub fn with_display(mut self, display: impl Into<String>) -> Self {
        self.display = Some(display.into());
        self
    }
}

/// A `Coding`: a code of a code system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    pub fn new(system: &str, code: &str, display: Option<&str>) -> Self {
        Self {
            system: system.to_owned(),
            code: code.to_owned(),
            display: display.map(str::to_owned),
        }
    }
}

/// A `CodeableConcept`: codings and/or text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeableConcept {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    pub fn coded(coding: Coding) -> Self {
        Self {
            coding: vec![coding],
            text: None,
        }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self {
            coding: Vec::new(),
            text: Some(text.into()),
        }
    }
}

/// An `Identifier`: a business id in a naming system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

/// A `HumanName`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HumanName {
    #[serde(rename = "use")]
    pub kind: &'static str,
    pub family: String,
    pub given: Vec<String>,
    pub text: String,
}

impl HumanName {
    /// The official name of someone called `first` `last`.
    pub fn official(first: &str, last: &str) -> Self {
        Self {
            kind: "official",
            family: last.to_owned(),
            given: vec![first.to_owned()],
            text: format!("{first} {last}"),
        }
    }
}

/// A `ContactPoint`: `system` is `phone` or `email`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactPoint {
    pub system: &'static str,
    pub value: String,
}

/// An `Address` as the platform keeps it: one line of text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Address {
    pub text: String,
}

/// A `Period` of whole dates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatePeriod {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// A `Quantity` in UCUM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantity {
    pub value: f64,
    pub unit: String,
    pub system: &'static str,
    pub code: String,
}

impl Quantity {
    /// `value` in the UCUM unit `code` (shown as `unit`).
    pub fn ucum(value: f64, code: &str, unit: &str) -> Self {
        Self {
            value,
            unit: unit.to_owned(),
            system: crate::systems::UCUM,
            code: code.to_owned(),
        }
    }
}

/// A plain count (`Quantity` without a unit), as `dispenseRequest.quantity` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub value: i64,
}

/// An `Extension` with a string, integer or dateTime value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_integer: Option<i64>,
    #[serde(
        serialize_with = "optional_instant",
        skip_serializing_if = "Option::is_none"
    )]
    pub value_date_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_uri: Option<String>,
    /// A complex extension's parts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
}

impl Extension {
    fn empty(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            value_string: None,
            value_integer: None,
            value_date_time: None,
            value_uri: None,
            extension: Vec::new(),
        }
    }

    /// A complex extension made of `parts`.
    pub fn complex(url: &str, parts: Vec<Extension>) -> Self {
        Self {
            extension: parts,
            ..Self::empty(url)
        }
    }

    pub fn string(url: &str, value: impl Into<String>) -> Self {
        Self {
            value_string: Some(value.into()),
            ..Self::empty(url)
        }
    }

    pub fn integer(url: &str, value: i64) -> Self {
        Self {
            value_integer: Some(value),
            ..Self::empty(url)
        }
    }

    pub fn date_time(url: &str, value: DateTime<Utc>) -> Self {
        Self {
            value_date_time: Some(value),
            ..Self::empty(url)
        }
    }

    pub fn uri(url: &str, value: impl Into<String>) -> Self {
        Self {
            value_uri: Some(value.into()),
            ..Self::empty(url)
        }
    }
}

/// A resource's `meta`: the profiles it claims.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meta {
    pub profile: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_is_written_in_utc_to_the_second() {
        #[derive(Serialize)]
        struct At {
            #[serde(serialize_with = "instant")]
            at: DateTime<Utc>,
        }
        let at = DateTime::parse_from_rfc3339("2026-12-03T09:30:00.123+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            serde_json::to_value(At { at }).unwrap(),
            serde_json::json!({ "at": "2026-12-03T08:30:00Z" })
        );
    }

    #[test]
    fn empty_elements_are_left_out_not_written_as_null() {
        let concept = CodeableConcept::text("Amoxicillin 500 mg");
        assert_eq!(
            serde_json::to_value(concept).unwrap(),
            serde_json::json!({ "text": "Amoxicillin 500 mg" })
        );
        let extension = Extension::string("urn:x", "y");
        assert_eq!(
            serde_json::to_value(extension).unwrap(),
            serde_json::json!({ "url": "urn:x", "valueString": "y" })
        );
    }
}
