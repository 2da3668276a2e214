//! How the clinic shows times and money: instants in its timezone, amounts in its currency
//! with the currency's symbol and minor units.

use anyhow::Context;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

/// The clinic's local conventions.
#[derive(Debug, Clone)]
pub struct Clinic {
    pub tz: Tz,
}

impl Clinic {
    pub fn new(timezone: &str) -> anyhow::Result<Self> {
        let tz = timezone
            .parse::<Tz>()
            .map_err(|error| anyhow::anyhow!("{error}"))
            .with_context(|| format!("`timezone` {timezone:?} is not an IANA timezone"))?;
        Ok(Self { tz })
    }

    /// `Tue 8 Dec 2026, 14:00` in the clinic's timezone.
    pub fn time(&self, at: &DateTime<Utc>) -> String {
        at.with_timezone(&self.tz)
            .format("%a %-d %b %Y, %H:%M")
            .to_string()
    }

    /// `14:00`.
    pub fn clock(&self, at: &DateTime<Utc>) -> String {
        at.with_timezone(&self.tz).format("%H:%M").to_string()
    }

    /// Today's date in the clinic.
    pub fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.tz).date_naive()
    }

    /// `[from, to)` of the clinic's calendar day `date`, as instants.
    pub fn day_bounds(&self, date: NaiveDate, days: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = |day: NaiveDate| {
            let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
            // Where a DST jump skips midnight, the day starts at the first instant after it.
            (0..4)
                .find_map(|hour| {
                    (midnight + chrono::Duration::hours(hour))
                        .and_local_timezone(self.tz)
                        .earliest()
                })
                .map(|local| local.with_timezone(&Utc))
                .unwrap_or_else(|| midnight.and_utc())
        };
        let end = date
            .checked_add_signed(chrono::Duration::days(days))
            .unwrap_or(date);
        (start(date), start(end))
    }

    /// A date from a form or a link, when it is one a clinic could mean (no year 262142).
    pub fn plausible(date: NaiveDate) -> Option<NaiveDate> {
        (1900..=2200).contains(&date.year()).then_some(date)
    }
}

/// `€60.00`, `$12.50`, `1,200 JPY`: minor units in the currency's own decimals.
pub fn money(amount: i64, currency: &str) -> String {
    let (symbol, decimals) = match currency {
        "EUR" => ("€", 2),
        "USD" => ("$", 2),
        "GBP" => ("£", 2),
        "CHF" => ("CHF ", 2),
        "JPY" => ("¥", 0),
        _ => ("", 2),
    };
    let sign = if amount < 0 { "-" } else { "" };
    let amount = amount.unsigned_abs();
    let whole = if decimals == 0 {
        amount.to_string()
    } else {
        format!("{}.{:02}", amount / 100, amount % 100)
    };
    if symbol.is_empty() {
        format!("{sign}{whole} {currency}")
    } else {
        format!("{sign}{symbol}{whole}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_in_the_currency_with_its_minor_units() {
        assert_eq!(money(6000, "EUR"), "€60.00");
        assert_eq!(money(1250, "USD"), "$12.50");
        assert_eq!(money(5, "SEK"), "0.05 SEK");
        assert_eq!(money(1200, "JPY"), "¥1200");
    }

    #[test]
    fn times_are_shown_in_the_clinic_timezone() {
        let clinic = Clinic::new("Europe/Berlin").unwrap();
        let at = "2026-12-08T13:00:00Z".parse().unwrap();
        assert_eq!(clinic.time(&at), "Tue 8 Dec 2026, 14:00");
        assert!(Clinic::new("Mars/Olympus").is_err());
    }
}
