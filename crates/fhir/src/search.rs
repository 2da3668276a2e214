//! Search parameters as FHIR writes them: repeated names (`date=ge2026-12-01&date=lt2027-01-01`),
//! typed references (`patient=Patient/<id>`), tokens (`system|code`), date prefixes, and
//! the paging controls `_count` and `_cursor`.
//!
//! A search names the parameters it supports; any other parameter, or a modifier
//! (`name:exact`), is refused with 400 rather than silently ignored, so that a client never
//! mistakes an unfiltered answer for a filtered one (FHIR's `handling=strict`). The `self`
//! link of the answer lists exactly the parameters applied.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use polyclinic_http::ApiError;
use uuid::Uuid;

/// The parameters every search takes besides its own.
const CONTROLS: &[&str] = &["_count", "_cursor", "_format"];

/// A search's parameters, checked against what the search supports.
#[derive(Debug, Clone)]
pub struct Search {
    /// Every pair but the cursor and the format, in the order sent.
    applied: Vec<(String, String)>,
    cursor: Option<String>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_search", detail.into())
}

impl Search {
    /// Parses a query string; `supported` are the search's own parameter names.
    pub fn parse(query: Option<&str>, supported: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|_| invalid("The query string is not valid form encoding."))?;
        let mut applied = Vec::new();
        let mut cursor = None;
        for (name, value) in pairs {
            if value.contains('\0') {
                return Err(invalid(format!("{name}: a value may not hold a NUL.")));
            }
            if !supported.contains(&name.as_str()) && !CONTROLS.contains(&name.as_str()) {
                return Err(ApiError::bad_request(
                    "unsupported_search_parameter",
                    format!(
                        "`{name}` is not a search parameter of this resource here (supported: {}).",
                        if supported.is_empty() {
                            "none".to_owned()
                        } else {
                            supported.join(", ")
                        }
                    ),
                ));
            }
            match name.as_str() {
                "_cursor" if cursor.is_some() => return Err(invalid("_cursor: given twice.")),
                "_cursor" => cursor = Some(value),
                "_format" => {}
                _ => applied.push((name, value)),
            }
        }
        Ok(Self { applied, cursor })
    }

    /// The parameters applied, as the `self` link repeats them.
    pub fn applied(&self) -> &[(String, String)] {
        &self.applied
    }

    /// Where the page starts: the `_cursor` of a `next` link.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// The cursor as the id it is (the searches keyed by id).
    pub fn cursor_id(&self) -> Result<Option<Uuid>, ApiError> {
        self.cursor()
            .map(|cursor| {
                Uuid::parse_str(cursor)
                    .map_err(|_| invalid("_cursor: not a cursor this server made."))
            })
            .transpose()
    }

    /// The page size: `_count`, 1 to `max`, `default` when not asked.
    pub fn count(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.one("_count")? {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(count) if (1..=max).contains(&count) => Ok(count),
                _ => Err(invalid(format!("_count: a whole number from 1 to {max}."))),
            },
        }
    }

    /// Every value given for `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.applied
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The one value of `name`, if given; 400 if given twice or as a list.
    pub fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(invalid(format!("{name}: given more than once.")));
        }
        match first {
            Some(value) if value.contains(',') => Err(invalid(format!(
                "{name}: a list of values is not supported here; give one."
            ))),
            Some("") => Err(invalid(format!("{name}: empty."))),
            other => Ok(other),
        }
    }

    /// A token's code (`code` or `system|code`, the system ignored).
    pub fn token<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ApiError> {
        Ok(self
            .one(name)?
            .map(|value| value.rsplit_once('|').map_or(value, |(_, code)| code)))
    }

    /// The id a reference parameter names: `Type/<uuid>`, `<uuid>` or an absolute URL
    /// ending in `Type/<uuid>`. 400 for a reference to another type or a malformed id.
    pub fn reference(&self, name: &str, resource_type: &str) -> Result<Option<Uuid>, ApiError> {
        let Some(value) = self.one(name)? else {
            return Ok(None);
        };
        reference_id(value, resource_type)
            .map(Some)
            .ok_or_else(|| invalid(format!("{name}: expected `{resource_type}/<id>`.")))
    }

    /// The time range the `name` date parameters select, dates read in `zone`. Several
    /// values narrow together (`ge` one, `lt` another).
    pub fn dates(&self, name: &str, zone: Tz) -> Result<DateRange, ApiError> {
        let mut range = DateRange::default();
        for value in self.all(name) {
            let bad = || {
                invalid(format!(
                    "{name}: expected a date or dateTime with an optional prefix eq, ge, gt, le or lt (got `{value}`)."
                ))
            };
            let (prefix, text) = match value.get(..2) {
                Some(prefix @ ("eq" | "ge" | "gt" | "le" | "lt")) => (prefix, &value[2..]),
                Some("ne" | "sa" | "eb" | "ap") => {
                    return Err(invalid(format!(
                        "{name}: the prefixes ne, sa, eb and ap are not supported."
                    )));
                }
                _ => ("eq", value),
            };
            let (low, high) = instant_range(text, zone).ok_or_else(bad)?;
            match prefix {
                "eq" => {
                    range.narrow_from(low);
                    range.narrow_to(high);
                }
                "ge" => range.narrow_from(low),
                "gt" => range.narrow_from(high),
                "lt" => range.narrow_to(low),
                _ => range.narrow_to(high),
            }
        }
        Ok(range)
    }
}

/// A half-open range of instants `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl DateRange {
    fn narrow_from(&mut self, from: DateTime<Utc>) {
        self.from = Some(self.from.map_or(from, |current| current.max(from)));
    }

    fn narrow_to(&mut self, to: DateTime<Utc>) {
        self.to = Some(self.to.map_or(to, |current| current.min(to)));
    }

    /// Whether `at` is inside.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| at >= from) && self.to.is_none_or(|to| at < to)
    }
}

/// The id of `Type/<uuid>`, `<uuid>` or `<base>/Type/<uuid>`.
pub fn reference_id(value: &str, resource_type: &str) -> Option<Uuid> {
    let id = match value.rsplit_once('/') {
        None => value,
        Some((head, id)) => {
            let kind = head.rsplit('/').next().unwrap_or(head);
            if kind != resource_type {
                return None;
            }
            id
        }
    };
    Uuid::parse_str(id).ok()
}

/// The instants a FHIR date or dateTime of some precision covers: a year, a month, a day
/// (in `zone`), or a second.
fn instant_range(text: &str, zone: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let local_midnight = |date: NaiveDate| {
        zone.from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|at| at.with_timezone(&Utc))
    };
    match text.len() {
        4 => {
            let year = text.parse::<i32>().ok()?;
            let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let end = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
            Some((local_midnight(start)?, local_midnight(end)?))
        }
        7 => {
            let start = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?;
            let end = start.checked_add_months(chrono::Months::new(1))?;
            Some((local_midnight(start)?, local_midnight(end)?))
        }
        10 => {
            let start = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            let end = start.succ_opt()?;
            Some((local_midnight(start)?, local_midnight(end)?))
        }
        _ => {
            let at = match DateTime::parse_from_rfc3339(text) {
                Ok(at) => at.with_timezone(&Utc),
                // A dateTime without an offset is the clinic's local time.
                Err(_) => zone
                    .from_local_datetime(
                        &NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok()?,
                    )
                    .earliest()?
                    .with_timezone(&Utc),
            };
            Some((at, at.checked_add_signed(Duration::seconds(1))?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn two_date_prefixes_narrow_to_the_range_between_them() {
        let search =
            Search::parse(Some("start=ge2026-12-01&start=lt2027-01-01"), &["start"]).unwrap();
        let range = search.dates("start", Tz::Europe__Berlin).unwrap();
        assert_eq!(range.from, Some(utc("2026-11-30T23:00:00Z")));
        assert_eq!(range.to, Some(utc("2026-12-31T23:00:00Z")));
        assert!(range.contains(utc("2026-12-15T10:00:00Z")));
        assert!(!range.contains(utc("2026-12-31T23:00:00Z")));
    }

    #[test]
    fn a_plain_date_means_that_whole_local_day() {
        let search = Search::parse(Some("date=2026-12-03"), &["date"]).unwrap();
        let range = search.dates("date", Tz::UTC).unwrap();
        assert_eq!(range.from, Some(utc("2026-12-03T00:00:00Z")));
        assert_eq!(range.to, Some(utc("2026-12-04T00:00:00Z")));
        let search = Search::parse(Some("date=gt2026-12-03T10:00:00%2B01:00"), &["date"]).unwrap();
        let range = search.dates("date", Tz::UTC).unwrap();
        assert_eq!(range.from, Some(utc("2026-12-03T09:00:01Z")));
    }

    #[test]
    fn an_unsupported_parameter_or_prefix_is_refused_not_ignored() {
        let err = Search::parse(Some("name:exact=ada"), &["name"]).unwrap_err();
        assert_eq!(err.code(), "unsupported_search_parameter");
        let err = Search::parse(Some("gender=female"), &["name"]).unwrap_err();
        assert_eq!(err.code(), "unsupported_search_parameter");
        let search = Search::parse(Some("date=ne2026-12-03"), &["date"]).unwrap();
        assert_eq!(
            search.dates("date", Tz::UTC).unwrap_err().code(),
            "invalid_search"
        );
        let search = Search::parse(Some("date=yesterday"), &["date"]).unwrap();
        assert_eq!(
            search.dates("date", Tz::UTC).unwrap_err().code(),
            "invalid_search"
        );
    }

    #[test]
    fn a_reference_names_its_type_or_just_the_id() {
        let id = Uuid::new_v4();
        for value in [
            format!("Patient/{id}"),
            id.to_string(),
            format!("https://clinic.example/fhir/Patient/{id}"),
        ] {
            let search = Search::parse(
                Some(&serde_urlencoded::to_string([("patient", &value)]).unwrap()),
                &["patient"],
            )
            .unwrap();
            assert_eq!(search.reference("patient", "Patient").unwrap(), Some(id));
        }
        let search =
            Search::parse(Some(&format!("patient=Practitioner/{id}")), &["patient"]).unwrap();
        assert!(search.reference("patient", "Patient").is_err());
    }

    #[test]
    fn the_page_size_is_bounded_and_the_cursor_is_not_an_applied_parameter() {
        let search =
            Search::parse(Some("_count=20&_cursor=abc&status=booked"), &["status"]).unwrap();
        assert_eq!(search.count(50, 100).unwrap(), 20);
        assert_eq!(search.cursor(), Some("abc"));
        assert_eq!(
            search.applied(),
            &[
                ("_count".to_owned(), "20".to_owned()),
                ("status".to_owned(), "booked".to_owned())
            ]
        );
        let search = Search::parse(Some("_count=0"), &[]).unwrap();
        assert!(search.count(50, 100).is_err());
        let search = Search::parse(Some("status=booked,noshow"), &["status"]).unwrap();
        assert!(search.token("status").is_err());
    }
}
