//! Appointments as iCalendar (RFC 5545): the invite an email carries (`METHOD:REQUEST` or
//! `CANCEL`, RFC 5546's iTIP) and the feeds people subscribe to (`METHOD:PUBLISH`). Both are
//! written here by one function per event, so an invite and a feed never say different
//! things of one appointment.
//!
//! An appointment is one calendar event for good: its `UID` is the appointment's id, and its
//! `SEQUENCE` the appointment's revision, which every change of status or time raises, so a
//! reschedule replaces the event in the recipient's calendar and a cancellation removes it.
//! Times are UTC. The summary names the doctor (for the patient) or the patient (for the
//! care team), never why they come: no reason, no notes, nothing clinical.
//!
//! The format is the `icalendar` crate's (escaping, line folding, parameter quoting).

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus, Property};
use uuid::Uuid;

/// What a calendar part asks of the recipient's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Add the event, or update it (a higher `SEQUENCE`).
    Request,
    /// Remove the event.
    Cancel,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Method::Request, Method::Cancel]
            .into_iter()
            .find(|method| method.as_str() == text)
    }
}

/// Where an appointment stands, as calendars say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Approved (or held): it takes place.
    Confirmed,
    /// Paid, waiting for the clinic's approval.
    Tentative,
    /// It will not take place.
    Cancelled,
}

/// Someone named in an event: a display name and an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub name: String,
    pub email: String,
}

impl Party {
    /// `mailto:` with the address, and the name as the `CN` parameter. A double quote cannot
    /// stand in a quoted parameter value (RFC 5545 3.1), so it is left out of the name.
    fn property(&self, key: &str) -> Property {
        let mut property = Property::new(key, format!("mailto:{}", self.email));
        property.add_parameter("CN", &self.name.replace('"', ""));
        property
    }
}

/// One appointment as a calendar event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub appointment_id: Uuid,
    /// The appointment's revision: the event's `SEQUENCE`.
    pub revision: i32,
    /// When this description of it was made (the change's time): `DTSTAMP`.
    pub stamp: DateTime<Utc>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The department and the room, as far as they are known.
    pub location: String,
    pub standing: Standing,
    /// No clinical detail: who the visit is with.
    pub summary: String,
    /// The appointment's page in the web app.
    pub url: String,
}

/// The `UID` of an appointment's event: stable for its whole life, unique across clinics.
pub fn uid(appointment_id: Uuid, domain: &str) -> String {
    format!("appointment-{appointment_id}@{domain}")
}

/// The domain `UID`s are made unique with: the host of the clinic's public URL.
pub fn uid_domain(public_url: &str) -> String {
    let rest = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let host = if host.starts_with('[') {
        host
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if host.is_empty() {
        "polyclinic.invalid".to_owned()
    } else {
        host.to_owned()
    }
}

fn event(visit: &Visit, domain: &str, organizer: &Party, attendee: Option<&Party>) -> Event {
    let mut event = Event::new();
    event
        .uid(&uid(visit.appointment_id, domain))
        .sequence(u32::try_from(visit.revision).unwrap_or(0))
        .timestamp(visit.stamp)
        .starts(visit.starts_at)
        .ends(visit.ends_at)
        .summary(&visit.summary)
        .location(&visit.location)
        .url(&visit.url)
        .status(match visit.standing {
            Standing::Confirmed => EventStatus::Confirmed,
            Standing::Tentative => EventStatus::Tentative,
            Standing::Cancelled => EventStatus::Cancelled,
        })
        .append_property(organizer.property("ORGANIZER"));
    if let Some(attendee) = attendee {
        let mut property = attendee.property("ATTENDEE");
        property
            .add_parameter("ROLE", "REQ-PARTICIPANT")
            .add_parameter("PARTSTAT", "ACCEPTED")
            .add_parameter("RSVP", "FALSE");
        event.append_property(property);
    }
    // A cancelled visit keeps its time; a calendar shows it as free.
    event.add_property(
        "TRANSP",
        if visit.standing == Standing::Cancelled {
            "TRANSPARENT"
        } else {
            "OPAQUE"
        },
    );
    event.done()
}

fn calendar(method: &str) -> Calendar {
    let mut calendar = Calendar::empty();
    calendar
        .append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("PRODID", "-//Polyclinic//Appointments//EN"))
        .append_property(Property::new("CALSCALE", "GREGORIAN"))
        .append_property(Property::new("METHOD", method));
    calendar
}

/// The invite an email about `visit` carries to `attendee`: `REQUEST` adds or updates the
/// event, `CANCEL` removes it.
pub fn invite(
    visit: &Visit,
    method: Method,
    domain: &str,
    organizer: &Party,
    attendee: &Party,
) -> String {
    let mut calendar = calendar(method.as_str());
    calendar.push(event(visit, domain, organizer, Some(attendee)));
    calendar.done().to_string()
}

/// A person's feed: their visits, for a calendar application to subscribe to.
pub fn feed(visits: &[Visit], name: &str, domain: &str, organizer: &Party) -> String {
    let mut calendar = calendar("PUBLISH");
    calendar
        .append_property(Property::new("X-WR-CALNAME", name))
        // How often subscribers should come back (RFC 7986 REFRESH-INTERVAL, and the older
        // name Outlook and Apple read).
        .append_property({
            let mut property = Property::new("REFRESH-INTERVAL", "PT1H");
            property.add_parameter("VALUE", "DURATION");
            property
        })
        .append_property(Property::new("X-PUBLISHED-TTL", "PT1H"));
    for visit in visits {
        calendar.push(event(visit, domain, organizer, None));
    }
    calendar.done().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit() -> Visit {
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        Visit {
            appointment_id: Uuid::nil(),
            revision: 3,
            stamp: at("2027-01-02T08:00:00Z"),
            starts_at: at("2027-01-04T08:00:00Z"),
            ends_at: at("2027-01-04T09:00:00Z"),
            location: "Cardiology, Room 1".into(),
            standing: Standing::Confirmed,
            summary: "Appointment with Dr Grace Hopper; bring your card".into(),
            url: "https://clinic.example/appointments/00000000-0000-0000-0000-000000000000".into(),
        }
    }

    fn clinic() -> Party {
        Party {
            name: "Polyclinic".into(),
            email: "noreply@clinic.example".into(),
        }
    }

    #[test]
    fn an_invite_names_the_event_the_organizer_and_the_attendee_in_utc() {
        let attendee = Party {
            name: "Ada \"the Countess\" Lovelace".into(),
            email: "ada@example.com".into(),
        };
        let text = invite(
            &visit(),
            Method::Request,
            "clinic.example",
            &clinic(),
            &attendee,
        );
        for line in [
            "METHOD:REQUEST",
            "UID:appointment-00000000-0000-0000-0000-000000000000@clinic.example",
            "SEQUENCE:3",
            "DTSTAMP:20270102T080000Z",
            "DTSTART:20270104T080000Z",
            "DTEND:20270104T090000Z",
            "STATUS:CONFIRMED",
            "LOCATION:Cardiology\\, Room 1",
            "SUMMARY:Appointment with Dr Grace Hopper\\; bring your card",
            "ORGANIZER;CN=Polyclinic:mailto:noreply@clinic.example",
        ] {
            assert!(text.contains(&format!("{line}\r\n")), "{line} in\n{text}");
        }
        assert!(text.contains("CN=Ada the Countess Lovelace"), "{text}");
        assert!(text.contains("mailto:ada@example.com"));
        assert!(text.lines().all(|line| line.len() <= 76), "folded");
    }

    #[test]
    fn a_feed_publishes_every_visit_without_attendees() {
        let mut cancelled = visit();
        cancelled.appointment_id = Uuid::from_u128(1);
        cancelled.standing = Standing::Cancelled;
        let text = feed(
            &[visit(), cancelled],
            "Polyclinic",
            "clinic.example",
            &clinic(),
        );
        assert!(text.contains("METHOD:PUBLISH\r\n"));
        assert_eq!(text.matches("BEGIN:VEVENT").count(), 2);
        assert!(text.contains("STATUS:CANCELLED\r\n"));
        assert!(!text.contains("ATTENDEE"));
    }

    #[test]
    fn the_uid_domain_is_the_public_urls_host() {
        assert_eq!(uid_domain("https://clinic.example/"), "clinic.example");
        assert_eq!(uid_domain("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(
            uid_domain("https://user@clinic.example:8443/x"),
            "clinic.example"
        );
        assert_eq!(uid_domain(""), "polyclinic.invalid");
    }
}
