//! [`Money`]: every amount the platform stores, shows or exchanges as an object (a doctor's
//! fee, an appointment's fee, a price a payment is asked for).

use serde::{Deserialize, Serialize};

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    /// Minor units: 4500 is 45.00.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub amount: i64,
    /// ISO 4217, upper case: `EUR`.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

impl Money {
    /// The largest amount the clinic handles: one million in major units.
    pub const MAX_AMOUNT: i64 = 100_000_000;

    /// An amount as a person or client states it: 0 to [`Money::MAX_AMOUNT`] minor units
    /// of an upper-case three-letter currency code.
    pub fn parse(amount: i64, currency: &str) -> Result<Self, String> {
        if !(0..=Self::MAX_AMOUNT).contains(&amount) {
            return Err(format!(
                "amount must be between 0 and {} minor units",
                Self::MAX_AMOUNT
            ));
        }
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err("currency must be an ISO 4217 code such as EUR".to_owned());
        }
        Ok(Self {
            amount,
            currency: currency.to_owned(),
        })
    }

    /// An amount as it was stored (already checked when it was written).
    pub fn stored(amount: i64, currency: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Money;

    #[test]
    fn amounts_are_whole_minor_units_of_an_upper_case_currency() {
        assert!(Money::parse(4500, "EUR").is_ok());
        assert!(Money::parse(0, "EUR").is_ok());
        assert!(Money::parse(-1, "EUR").is_err());
        assert!(Money::parse(Money::MAX_AMOUNT + 1, "EUR").is_err());
        assert!(Money::parse(100, "eur").is_err());
        assert!(Money::parse(100, "EURO").is_err());
    }
}
