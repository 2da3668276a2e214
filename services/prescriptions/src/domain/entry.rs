//! Entries of a medical record: a closed set of kinds, each with typed fields checked when
//! they are read from a request.

use polyclinic_http::text::Rule;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The kinds of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Diagnosis,
    Note,
    Vitals,
    Allergy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Diagnosis => "DIAGNOSIS",
            Kind::Note => "NOTE",
            Kind::Vitals => "VITALS",
            Kind::Allergy => "ALLERGY",
        }
    }
}

/// How bad an allergic reaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Mild,
    Moderate,
    Severe,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Mild => "MILD",
            Severity::Moderate => "MODERATE",
            Severity::Severe => "SEVERE",
        }
    }
}

/// Measurements; at least one is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    #[schema(minimum = 50, maximum = 260)]
    pub systolic_mmhg: Option<i16>,
    #[schema(minimum = 25, maximum = 160)]
    pub diastolic_mmhg: Option<i16>,
    #[schema(minimum = 20, maximum = 250)]
    pub pulse_bpm: Option<i16>,
    #[schema(minimum = 30, maximum = 45)]
    pub temperature_c: Option<f64>,
    #[schema(minimum = 4, maximum = 70)]
    pub respiratory_rate: Option<i16>,
    #[schema(minimum = 50, maximum = 100)]
    pub spo2_percent: Option<i16>,
    #[schema(minimum = 0.3, maximum = 500)]
    pub weight_kg: Option<f64>,
    #[schema(minimum = 20, maximum = 260)]
    pub height_cm: Option<f64>,
}

polyclinic_http::text_kind!(
    /// A diagnosis in words.
    DiagnosisText = Rule::paragraphs(1, 2000), "1 to 2000 characters (line breaks allowed)."
);
polyclinic_http::text_kind!(
    /// One part of a visit note (subjective, objective, assessment, plan).
    NotePart = Rule::paragraphs(0, 10_000), "At most 10000 characters (line breaks allowed)."
);
polyclinic_http::text_kind!(
    /// What a patient is allergic to.
    Substance = Rule::line(1, 200), "1 to 200 characters on one line."
);
polyclinic_http::text_kind!(
    /// How the allergy shows.
    Reaction = Rule::paragraphs(0, 1000), "At most 1000 characters (line breaks allowed)."
);

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum Content {
    Diagnosis {
        /// ICD-10, such as `J45.909`.
        #[schema(pattern = "^[A-Z][0-9][0-9AB](\\.[0-9A-Z]{1,4})?$")]
        icd10_code: String,
        #[schema(value_type = DiagnosisText)]
        description: String,
    },
    /// At least one part has text.
    Note {
        #[serde(default)]
        #[schema(value_type = NotePart)]
        subjective: String,
        #[serde(default)]
        #[schema(value_type = NotePart)]
        objective: String,
        #[serde(default)]
        #[schema(value_type = NotePart)]
        assessment: String,
        #[serde(default)]
        #[schema(value_type = NotePart)]
        plan: String,
    },
    /// At least one measurement; blood pressure as both numbers, systolic above diastolic.
    Vitals(Vitals),
    Allergy {
        #[schema(value_type = Substance)]
        substance: String,
        #[serde(default)]
        #[schema(value_type = Reaction)]
        reaction: String,
        severity: Severity,
    },
}

impl Content {
    pub fn kind(&self) -> Kind {
        match self {
            Content::Diagnosis { .. } => Kind::Diagnosis,
            Content::Note { .. } => Kind::Note,
            Content::Vitals(_) => Kind::Vitals,
            Content::Allergy { .. } => Kind::Allergy,
        }
    }

    /// Checks every field; the errors name the fields.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        let text = |errors: &mut Vec<(String, String)>, field: &str, value: &str, rule: Rule| {
            if let Err(message) = rule.check(value) {
                errors.push((field.to_owned(), message));
            }
        };
        match self {
            Content::Diagnosis {
                icd10_code,
                description,
            } => {
                if !is_icd10(icd10_code) {
                    errors.push((
                        "icd10_code".into(),
                        "not an ICD-10 code such as J45.909".into(),
                    ));
                }
                text(&mut errors, "description", description, DiagnosisText::RULE);
            }
            Content::Note {
                subjective,
                objective,
                assessment,
                plan,
            } => {
                for (field, value) in [
                    ("subjective", subjective),
                    ("objective", objective),
                    ("assessment", assessment),
                    ("plan", plan),
                ] {
                    text(&mut errors, field, value, NotePart::RULE);
                }
                if [subjective, objective, assessment, plan]
                    .iter()
                    .all(|part| part.trim().is_empty())
                {
                    errors.push(("note".into(), "a note needs at least one part".into()));
                }
            }
            Content::Vitals(vitals) => errors.extend(check_vitals(vitals)),
            Content::Allergy {
                substance,
                reaction,
                ..
            } => {
                text(&mut errors, "substance", substance, Substance::RULE);
                text(&mut errors, "reaction", reaction, Reaction::RULE);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Whether `code` has the shape of an ICD-10 code: a letter, two digits (the second may be
/// A or B), optionally a dot and one to four more characters.
pub fn is_icd10(code: &str) -> bool {
    let bytes = code.as_bytes();
    let head = bytes.len() >= 3
        && bytes[0].is_ascii_uppercase()
        && bytes[1].is_ascii_digit()
        && (bytes[2].is_ascii_digit() || bytes[2] == b'A' || bytes[2] == b'B');
    let tail = match &code.get(3..) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('.').is_some_and(|rest| {
            (1..=4).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        }),
        None => false,
    };
    head && tail
}

fn check_vitals(vitals: &Vitals) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut range = |field: &str, value: Option<f64>, low: f64, high: f64| {
        if value.is_some_and(|value| !(low..=high).contains(&value) || !value.is_finite()) {
            errors.push((
                field.to_owned(),
                format!("must be between {low} and {high}"),
            ));
        }
    };
    let int = |value: Option<i16>| value.map(f64::from);
    range("systolic_mmhg", int(vitals.systolic_mmhg), 50.0, 260.0);
    range("diastolic_mmhg", int(vitals.diastolic_mmhg), 25.0, 160.0);
    range("pulse_bpm", int(vitals.pulse_bpm), 20.0, 250.0);
    range("temperature_c", vitals.temperature_c, 30.0, 45.0);
    range("respiratory_rate", int(vitals.respiratory_rate), 4.0, 70.0);
    range("spo2_percent", int(vitals.spo2_percent), 50.0, 100.0);
    range("weight_kg", vitals.weight_kg, 0.3, 500.0);
    range("height_cm", vitals.height_cm, 20.0, 260.0);
    match (vitals.systolic_mmhg, vitals.diastolic_mmhg) {
        (Some(systolic), Some(diastolic)) if systolic <= diastolic => {
            errors.push((
                "diastolic_mmhg".into(),
                "must be below the systolic pressure".into(),
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            errors.push((
                "diastolic_mmhg".into(),
                "blood pressure needs both numbers".into(),
            ));
        }
        _ => {}
    }
    let given = [
        int(vitals.systolic_mmhg),
        int(vitals.pulse_bpm),
        vitals.temperature_c,
        int(vitals.respiratory_rate),
        int(vitals.spo2_percent),
        vitals.weight_kg,
        vitals.height_cm,
    ];
    if given.iter().all(Option::is_none) {
        errors.push(("vitals".into(), "give at least one measurement".into()));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_codes_are_checked_for_shape() {
        for good in [
            "J45", "J45.9", "J45.909", "E11.65", "B20", "Z00.00", "O9A.1",
        ] {
            assert!(is_icd10(good), "{good}");
        }
        for bad in [
            "",
            "j45",
            "J4",
            "45J",
            "J45.",
            "J45.12345",
            "J45-9",
            "JJ5",
            "J45 .9",
        ] {
            assert!(!is_icd10(bad), "{bad}");
        }
    }

    #[test]
    fn impossible_vitals_are_refused_field_by_field() {
        let vitals = Vitals {
            systolic_mmhg: Some(80),
            diastolic_mmhg: Some(120),
            pulse_bpm: Some(400),
            temperature_c: Some(12.0),
            ..Vitals::default()
        };
        let errors = Content::Vitals(vitals).validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(fields, ["pulse_bpm", "temperature_c", "diastolic_mmhg"]);
        assert!(
            Content::Vitals(Vitals::default()).validate().is_err(),
            "nothing measured"
        );
        let fine = Vitals {
            pulse_bpm: Some(72),
            spo2_percent: Some(98),
            ..Vitals::default()
        };
        assert!(Content::Vitals(fine).validate().is_ok());
    }

    #[test]
    fn notes_need_a_part_and_texts_are_bounded() {
        let empty = Content::Note {
            subjective: " ".into(),
            objective: String::new(),
            assessment: String::new(),
            plan: String::new(),
        };
        assert!(empty.validate().is_err());
        let huge = Content::Diagnosis {
            icd10_code: "J45".into(),
            description: "x".repeat(2001),
        };
        assert!(huge.validate().is_err());
    }
}
