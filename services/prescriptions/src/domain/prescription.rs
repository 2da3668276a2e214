//! Prescriptions: what a doctor writes, its lifecycle, and the allergy check.

use polyclinic_http::text::Rule;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a prescription is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Active,
    Completed,
    Cancelled,
    /// Ended early by the doctor (a side effect, say), with a reason.
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Completed => "COMPLETED",
            Status::Cancelled => "CANCELLED",
            Status::Stopped => "STOPPED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::Active,
            Status::Completed,
            Status::Cancelled,
            Status::Stopped,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a stored status (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for Status {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Status::parse(&text).ok_or_else(|| format!("unknown prescription status {text}"))
    }
}

/// One medication of a prescription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// `Amoxicillin`.
    #[schema(value_type = Medication)]
    pub medication: String,
    /// `500 mg`.
    #[schema(value_type = ItemDetail)]
    pub strength: String,
    /// `capsule`.
    #[schema(value_type = ItemDetail)]
    pub form: String,
    /// `1 capsule`.
    #[schema(value_type = ItemDetail)]
    pub dose: String,
    /// `oral`.
    #[schema(value_type = ItemDetail)]
    pub route: String,
    /// `every 8 hours`.
    #[schema(value_type = ItemDetail)]
    pub frequency: String,
    /// `7 days`.
    #[schema(value_type = ItemDetail)]
    pub duration: String,
    /// 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: i32,
    #[serde(default)]
    #[schema(value_type = Instructions)]
    pub instructions: String,
}

polyclinic_http::text_kind!(
    /// A medication's name.
    Medication = Rule::line(1, 200), "A medication: 1 to 200 characters on one line."
);
polyclinic_http::text_kind!(
    /// Strength, form, dose, route, frequency or duration of an item.
    ItemDetail = Rule::line(1, 100), "1 to 100 characters on one line."
);
polyclinic_http::text_kind!(
    /// What the patient should know about taking it.
    Instructions = Rule::paragraphs(0, 1000), "At most 1000 characters (line breaks allowed)."
);
polyclinic_http::text_kind!(
    /// A reason that must be given (ending a prescription, declining a refill).
    RequiredReason = Rule::paragraphs(1, 500), "1 to 500 characters (line breaks allowed)."
);
polyclinic_http::text_kind!(
    /// Why a doctor prescribes despite a recorded allergy.
    OverrideReason = Rule::paragraphs(0, 1000), "At most 1000 characters (line breaks allowed)."
);

impl Item {
    /// Checks every field; errors name `items[i].field`.
    pub fn validate(&self, index: usize, errors: &mut Vec<(String, String)>) {
        let mut text = |field: &str, value: &str, rule: Rule| {
            if let Err(message) = rule.check(value) {
                errors.push((format!("items[{index}].{field}"), message));
            }
        };
        text("medication", &self.medication, Medication::RULE);
        for (field, value) in [
            ("strength", &self.strength),
            ("form", &self.form),
            ("dose", &self.dose),
            ("route", &self.route),
            ("frequency", &self.frequency),
            ("duration", &self.duration),
        ] {
            text(field, value, ItemDetail::RULE);
        }
        text("instructions", &self.instructions, Instructions::RULE);
        if !(1..=10_000).contains(&self.quantity) {
            errors.push((format!("items[{index}].quantity"), "1 to 10000".to_owned()));
        }
    }
}

/// Checks the items of a new prescription.
pub fn validate_items(items: &[Item]) -> Result<(), Vec<(String, String)>> {
    let mut errors = Vec::new();
    if items.is_empty() || items.len() > 20 {
        errors.push(("items".to_owned(), "1 to 20 medications".to_owned()));
    }
    for (index, item) in items.iter().enumerate() {
        item.validate(index, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The words of a name, lower-cased, without punctuation.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether a medication named `medication` contains the allergen `substance`, by words and
/// whatever the case: every word of the substance is in a word of the medication (anywhere
/// for six letters or more, at its start for four or five, whole below that: `penicillin`
/// is in `Penicillin V`, `penicillin G benzathine`, `Penicillins` and
/// `Phenoxymethylpenicillin`; `sulfa` in `Sulfamethoxazole`; `tin` is not in `Nystatin`),
/// or the medication's first word is a word of the substance (`amoxicillin` and
/// `Amoxicillin trihydrate`).
fn names(medication: &str, substance: &str) -> bool {
    let substance = words(substance);
    let medication = words(medication);
    if substance.is_empty() || medication.is_empty() {
        return false;
    }
    let within = |word: &String| {
        let length = word.chars().count();
        medication.iter().any(|part| match length {
            6.. => part.contains(word.as_str()),
            4 | 5 => part.starts_with(word.as_str()),
            _ => part == word,
        })
    };
    substance.iter().all(within) || substance.contains(&medication[0])
}

/// The allergies of `allergies` that an item names (see [`names`]).
pub fn allergy_conflicts(items: &[Item], allergies: &[String]) -> Vec<String> {
    let mut conflicts: Vec<String> = allergies
        .iter()
        .filter(|substance| items.iter().any(|item| names(&item.medication, substance)))
        .cloned()
        .collect();
    conflicts.sort();
    conflicts.dedup();
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(medication: &str) -> Item {
        Item {
            medication: medication.into(),
            strength: "500 mg".into(),
            form: "capsule".into(),
            dose: "1 capsule".into(),
            route: "oral".into(),
            frequency: "every 8 hours".into(),
            duration: "7 days".into(),
            quantity: 21,
            instructions: String::new(),
        }
    }

    #[test]
    fn a_medication_naming_an_allergy_is_a_conflict() {
        let allergies = vec!["Penicillin".to_owned(), "latex".to_owned()];
        assert_eq!(
            allergy_conflicts(&[item("Penicillin V")], &allergies),
            ["Penicillin"]
        );
        assert!(allergy_conflicts(&[item("Ibuprofen")], &allergies).is_empty());
        assert_eq!(
            allergy_conflicts(
                &[item("amoxicillin")],
                &["Amoxicillin trihydrate".to_owned()]
            ),
            ["Amoxicillin trihydrate"]
        );
    }

    #[test]
    fn the_obvious_variants_of_an_allergen_are_caught_and_unrelated_names_are_not() {
        let penicillin = vec!["penicillin".to_owned()];
        for medication in [
            "Penicillin V",
            "PENICILLIN",
            "penicillin G benzathine",
            "Penicillins (mixed)",
            "Phenoxymethylpenicillin",
        ] {
            assert_eq!(
                allergy_conflicts(&[item(medication)], &penicillin),
                ["penicillin"],
                "{medication}"
            );
        }
        assert_eq!(
            allergy_conflicts(&[item("Sulfamethoxazole")], &["Sulfa".to_owned()]),
            ["Sulfa"]
        );
        assert!(allergy_conflicts(&[item("Nystatin")], &["tin".to_owned()]).is_empty());
        assert!(allergy_conflicts(&[item("Ibuprofen")], &penicillin).is_empty());
    }

    #[test]
    fn a_prescription_needs_medications_with_every_field() {
        assert!(validate_items(&[]).is_err());
        let mut bad = item("Ibuprofen");
        bad.quantity = 0;
        bad.route = String::new();
        let errors = validate_items(&[bad]).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(fields, ["items[0].route", "items[0].quantity"]);
        assert!(validate_items(&[item("Ibuprofen")]).is_ok());
    }
}
