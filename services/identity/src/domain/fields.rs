//! Field types shared by users, departments and rooms. Each `parse` explains a refusal in
//! words a person can act on, and each type's OpenAPI schema says exactly what `parse`
//! takes: lengths and character rules come from one [`Rule`], patterns from one constant
//! that `parse` itself matches with (so the document and the server cannot drift apart).

use std::sync::LazyLock;

use polyclinic_http::text::Rule;
use polyclinic_http::utoipa::openapi::RefOr;
use polyclinic_http::utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use regex::Regex;

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $rule:expr, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const RULE: Rule = $rule;

            /// Checks `text` and keeps it trimmed.
            pub fn parse(text: &str) -> Result<Self, String> {
                Self::RULE.check(text)?;
                Ok(Self(text.trim().to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                Self::RULE.schema($description)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_type!(
    /// A first or last name.
    PersonName, Rule::line(1, 100), "A name: 1 to 100 characters on one line."
);
text_type!(
    /// A postal address.
    Address, Rule::line(1, 300), "A postal address: 1 to 300 characters on one line."
);
text_type!(
    /// A department's name, a doctor's specialization, an allergen.
    Title, Rule::line(1, 100), "1 to 100 characters on one line."
);
text_type!(
    /// A longer description.
    Description, Rule::line(0, 1000), "At most 1000 characters on one line."
);
text_type!(
    /// A room's name, such as `B-204`.
    RoomName, Rule::line(1, 50), "A room's name, such as `B-204`: 1 to 50 characters."
);
text_type!(
    /// An address in a change, where a blank one removes it.
    AddressOrBlank, Rule::line(0, 300), "A postal address of at most 300 characters; blank removes it."
);

/// White space (Unicode `White_Space`, what `str::trim` removes), in a pattern.
const SPACE: &str =
    r"[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*";
/// The characters of an address's local part, and one label of its domain.
const LOCAL: &str = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*";
const LABEL: &str = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

/// A pattern for `core`, white space allowed around it (parse trims it).
fn padded(core: &str) -> String {
    format!("^{SPACE}({core}){SPACE}$")
}

fn email_core() -> String {
    format!("{LOCAL}@{LABEL}(\\.{LABEL})+")
}
const USERNAME_CORE: &str = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{3,254}";
const PHONE_CORE: &str = r"\+?[ ()-]*([0-9][ ()-]*){6,15}";

static EMAIL: LazyLock<Regex> = LazyLock::new(|| compile(&padded(&email_core())));
static USERNAME: LazyLock<Regex> = LazyLock::new(|| compile(&padded(USERNAME_CORE)));
static PHONE: LazyLock<Regex> = LazyLock::new(|| compile(&padded(PHONE_CORE)));
static PHONE_OR_BLANK: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^{SPACE}({PHONE_CORE})?{SPACE}$")));

#[expect(
    clippy::expect_used,
    reason = "the patterns are constants, checked by the tests"
)]
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

fn pattern_schema(regex: &Regex, max: usize, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max))
        .pattern(Some(regex.as_str()))
        .description(Some(description))
        .into()
}

/// Whether `text` is at most `max` characters and matches `regex`.
fn matches(regex: &Regex, max: usize, text: &str) -> bool {
    text.chars().count() <= max && regex.is_match(text)
}

macro_rules! pattern_type {
    ($(#[$doc:meta])* $name:ident, $regex:expr, $max:expr, $error:literal, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                if matches(&$regex, $max, text) {
                    Ok(Self(text.trim().to_owned()))
                } else {
                    Err($error.to_owned())
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                pattern_schema(&$regex, $max, $description)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

pattern_type!(
    /// An email address: a plain ASCII local part, `@`, a dotted domain of labels. Stored as
    /// written; compared case-insensitively.
    Email, EMAIL, 254, "is not a valid email address",
    "An email address such as `ada@clinic.example` (ASCII; at most 254 characters)."
);
pattern_type!(
    /// A login name: 3 to 254 of the characters an email address is made of (an email
    /// address is a login name).
    Username, USERNAME, 254, "must be 3 to 254 letters, digits and . @ _ - + and the like",
    "A login name: 3 to 254 letters, digits and `. @ _ - + ! # $ % & ' * / = ? ^ ` { | } ~`."
);
pattern_type!(
    /// A phone number: digits with an optional leading `+`, spaces, dashes and
    /// parentheses; 6 to 15 digits.
    Phone, PHONE, 25, "is not a valid phone number",
    "A phone number such as `+44 20 7946 0958`: 6 to 15 digits, at most 25 characters."
);

/// A phone number in a change, where a blank one removes it.
#[derive(Debug, Clone, Copy)]
pub struct PhoneOrBlank;

impl utoipa::PartialSchema for PhoneOrBlank {
    fn schema() -> RefOr<Schema> {
        pattern_schema(
            &PHONE_OR_BLANK,
            25,
            "A phone number (6 to 15 digits, at most 25 characters); blank removes it.",
        )
    }
}

impl utoipa::ToSchema for PhoneOrBlank {}

impl PhoneOrBlank {
    /// Whether `text` is a phone number or blank.
    pub fn check(text: &str) -> Result<(), String> {
        if matches(&PHONE_OR_BLANK, 25, text) {
            Ok(())
        } else {
            Err("is not a valid phone number".to_owned())
        }
    }
}

/// A date of birth in the document: `YYYY-MM-DD` from 1900 to this year (the pattern is
/// made when the document is, so it moves with the years). Within this year a date after
/// today is still refused, which no pattern can say.
#[derive(Debug, Clone, Copy)]
pub struct BirthDate;

impl utoipa::PartialSchema for BirthDate {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Date,
            )))
            .pattern(Some(birth_date_pattern(chrono::Utc::now().date_naive())))
            .description(Some("A date of birth, `YYYY-MM-DD`, from 1900 to today."))
            .into()
    }
}

impl utoipa::ToSchema for BirthDate {}

/// Two digits from `01` to `last` (at least 1), as a pattern.
fn two_digits_up_to(last: u32) -> String {
    let (tens, ones) = (last / 10, last % 10);
    let mut parts = Vec::new();
    // Whole decades below `last`'s: 01-09, then 10-19, 20-29, ...
    for decade in 0..tens {
        parts.push(if decade == 0 {
            "0[1-9]".to_owned()
        } else {
            format!("{decade}[0-9]")
        });
    }
    match (tens, ones) {
        (0, ones) => parts.push(format!("0[1-{ones}]")),
        (tens, ones) => parts.push(format!("{tens}[0-{ones}]")),
    }
    format!("({})", parts.join("|"))
}

/// `YYYY-MM-DD` from 1900-01-01 to `today`.
fn birth_date_pattern(today: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let (year, month, day) = (today.year(), today.month(), today.day());
    let days = "(0[1-9]|[12][0-9]|3[01])";
    let mut alternatives = vec![format!("(19[0-9]{{2}})-(0[1-9]|1[0-2])-{days}")];
    for earlier in 2000..year {
        alternatives.push(format!("{earlier}-(0[1-9]|1[0-2])-{days}"));
    }
    if month > 1 {
        alternatives.push(format!("{year}-{}-{days}", two_digits_up_to(month - 1)));
    }
    alternatives.push(format!("{year}-{month:02}-{}", two_digits_up_to(day)));
    format!("^({})$", alternatives.join("|"))
}

/// A date of birth: in the past, and after 1900.
pub fn parse_birth_date(
    date: chrono::NaiveDate,
    today: chrono::NaiveDate,
) -> Result<chrono::NaiveDate, String> {
    let earliest = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(chrono::NaiveDate::MIN);
    if date > today {
        Err("must not be in the future".to_owned())
    } else if date < earliest {
        Err("must be after 1900-01-01".to_owned())
    } else {
        Ok(date)
    }
}

/// Fees are the platform's one [`Money`].
pub use polyclinic_contracts::Money;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_one_at_and_a_dotted_domain() {
        assert!(Email::parse("ada@clinic.example").is_ok());
        assert_eq!(
            Email::parse("  Ada.L@Clinic.Example ").unwrap().as_str(),
            "Ada.L@Clinic.Example"
        );
        assert!(PHONE_OR_BLANK.is_match("  "));
        assert!(!PHONE_OR_BLANK.is_match("call me"));
        for bad in [
            "",
            "ada",
            "ada@",
            "@clinic.example",
            "ada@clinic",
            "a b@c.de",
            "ada@@c.de",
            "ada@c..de",
            "x'; drop table users;--@c.de",
            "ada@-c.de",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Email::parse(&format!("{}@c.de", "a".repeat(250))).is_err());
    }

    #[test]
    fn names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(PersonName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse(&"x".repeat(101)).is_err());
        assert!(PersonName::parse("Ada\u{0}").is_err());
        assert!(PersonName::parse("Zoë O'Brien-Łukasz").is_ok());
    }

    #[test]
    fn usernames_and_phones_have_a_plain_shape() {
        assert!(Username::parse("ada.l").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("ada lovelace").is_err());
        assert!(
            Username::parse("ada@clinic.example").is_ok(),
            "an email is a login name"
        );
        assert!(Phone::parse("+44 20 7946 0958").is_ok());
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("call me").is_err());
        assert!(Phone::parse("44+1234567").is_err());
    }

    #[test]
    fn the_birth_date_pattern_ends_today() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let pattern = Regex::new(&birth_date_pattern(today)).unwrap();
        for date in [
            "1900-01-01",
            "1999-12-31",
            "2025-06-30",
            "2026-11-30",
            "2026-12-01",
            "2026-12-02",
        ] {
            assert!(pattern.is_match(date), "{date}");
        }
        for date in [
            "1899-12-31",
            "2026-12-03",
            "2026-12-10",
            "2027-01-01",
            "2026-13-01",
        ] {
            assert!(!pattern.is_match(date), "{date}");
        }
        assert_eq!(two_digits_up_to(9), "(0[1-9])");
        assert_eq!(two_digits_up_to(12), "(0[1-9]|1[0-2])");
        assert_eq!(two_digits_up_to(31), "(0[1-9]|1[0-9]|2[0-9]|3[0-1])");
    }

    #[test]
    fn money_is_non_negative_minor_units_of_an_iso_currency() {
        assert!(Money::parse(4500, "EUR").is_ok());
        assert!(Money::parse(-1, "EUR").is_err());
        assert!(Money::parse(100, "eur").is_err());
        assert!(Money::parse(100, "EURO").is_err());
    }
}
