//! Field types shared by users, departments and rooms. Each `parse` trims its input and
//! explains a refusal in words a person can act on.

use serde::{Deserialize, Serialize};

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Free text of bounded length without control characters: names, titles, addresses.
fn bounded(text: &str, min: usize, max: usize) -> Result<String, String> {
    let text = text.trim();
    let length = text.chars().count();
    if length < min {
        return Err(if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        });
    }
    if length > max {
        return Err(format!("must be at most {max} characters"));
    }
    if has_control(text) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(text.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                bounded(text, $min, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

text_type!(
    /// A first or last name.
    PersonName, 1, 100
);
text_type!(
    /// A postal address.
    Address, 1, 300
);
text_type!(
    /// A department's name, or a doctor's specialization.
    Title, 1, 100
);
text_type!(
    /// A longer description.
    Description, 0, 1000
);
text_type!(
    /// A room's name, such as `B-204`.
    RoomName, 1, 50
);

/// An email address: one `@`, a plausible local part and a dotted domain. Stored as
/// written; compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let invalid = || "is not a valid email address".to_owned();
        if text.len() > 254 || has_control(text) || text.contains(char::is_whitespace) {
            return Err(invalid());
        }
        let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A login name: 3 to 64 letters, digits and `. _ - @ +`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if !(3..=64).contains(&text.chars().count()) {
            return Err("must be 3 to 64 characters".to_owned());
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c))
        {
            return Err("may contain only letters, digits and . _ - @ +".to_owned());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number: digits with optional `+`, spaces, dashes and parentheses; 6 to 15
/// digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits = text.chars().filter(char::is_ascii_digit).count();
        let shape_ok = text
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || " -()".contains(c) || (c == '+' && i == 0));
        if shape_ok && (6..=15).contains(&digits) && text.len() <= 25 {
            Ok(Self(text.to_owned()))
        } else {
            Err("is not a valid phone number".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    /// Minor units: 4500 is 45.00.
    pub amount: i64,
    /// ISO 4217, upper case: `EUR`.
    pub currency: String,
}

impl Money {
    pub fn parse(amount: i64, currency: &str) -> Result<Self, String> {
        if !(0..=100_000_000).contains(&amount) {
            return Err("amount must be between 0 and 100000000 minor units".to_owned());
        }
        let currency = currency.trim();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err("currency must be an ISO 4217 code such as EUR".to_owned());
        }
        Ok(Self {
            amount,
            currency: currency.to_owned(),
        })
    }
}

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
        assert!(Email::parse(&format!("{}@c.de", "a".repeat(65))).is_err());
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
        assert!(Phone::parse("+44 20 7946 0958").is_ok());
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("call me").is_err());
        assert!(Phone::parse("44+1234567").is_err());
    }

    #[test]
    fn money_is_non_negative_minor_units_of_an_iso_currency() {
        assert!(Money::parse(4500, "EUR").is_ok());
        assert!(Money::parse(-1, "EUR").is_err());
        assert!(Money::parse(100, "eur").is_err());
        assert!(Money::parse(100, "EURO").is_err());
    }
}
