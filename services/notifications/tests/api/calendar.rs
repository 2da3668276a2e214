//! Calendars: the iCalendar part of every email about an appointment's time, and the
//! private feeds, read by the PyPI `icalendar` library (`tests/calendar/read.py`), an
//! implementation independent of ours. Emails go through the harness's SMTP server.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use polyclinic_appointments::jobs::Jobs;
use polyclinic_testing::{Service, SmtpSink, TestPlatform, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::mail::platform_sending_to;

/// Clinical text the appointment carries, which no calendar may show.
const REASON: &str = "chest pain since Tuesday";
const NOTES: &str = "history of angina";

/// One email's calendar part: its MIME method and text, and whether the same text is also
/// attached as `invite.ics`.
#[derive(Debug, Clone)]
struct Part {
    to: String,
    subject: String,
    method: String,
    text: String,
    attached: bool,
}

fn calendar_parts(sink: &SmtpSink) -> Vec<Part> {
    sink.received()
        .iter()
        .filter_map(|received| {
            let message = MessageParser::default().parse(&received.data)?;
            let inline = message.parts.iter().find(|part| {
                part.content_type().is_some_and(|kind| {
                    kind.ctype() == "text" && kind.subtype() == Some("calendar")
                })
            })?;
            let method = inline
                .content_type()
                .and_then(|kind| kind.attribute("method"))
                .unwrap_or("")
                .to_owned();
            let text = inline.text_contents()?.to_owned();
            let attached = message.attachments().any(|attachment| {
                attachment.attachment_name() == Some("invite.ics")
                    && attachment.contents() == text.as_bytes()
            });
            Some(Part {
                to: received.to[0].clone(),
                subject: message.subject().unwrap_or("").to_owned(),
                method,
                text,
                attached,
            })
        })
        .collect()
}

/// What `icalendar` reads in each text.
fn read_calendars(texts: &[String]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/calendar/read.py");
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (the test set-up installs icalendar in its virtual environment)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(texts).unwrap().as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "icalendar refused: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn utc(value: &Value) -> String {
    value
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Reserves `starts_at` with clinical text in the reason and notes, pays and approves it.
async fn scheduled_visit(
    platform: &TestPlatform,
    clinic: &polyclinic_testing::Clinic,
    patient: &str,
    starts_at: &str,
) -> Value {
    let reserved = platform
        .book(
            Method::POST,
            "/api/appointments",
            Some(patient),
            Some(
                json!({"doctor_id": clinic.doctor_id, "starts_at": starts_at,
                        "reason": REASON, "notes": NOTES}),
            ),
        )
        .await;
    assert_eq!(reserved.status, StatusCode::CREATED, "{:?}", reserved.body);
    let id = reserved.body["id"].as_str().unwrap().to_owned();
    let paid = platform
        .pay(
            patient,
            reserved.body["payment"]["id"].as_str().unwrap(),
            "pm_card_visa",
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    platform.appointment_becomes(patient, &id, "PAID").await;
    let approved = platform.approve(clinic, &id).await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    approved.body
}

#[tokio::test]
async fn invites_follow_an_appointment_through_approval_reschedule_reminder_and_cancellation() {
    let sink = SmtpSink::start().await;
    let platform = platform_sending_to(sink.address(), false, |_| {}).await;
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("cal-ada@clinic.example").await;
    let free = platform.free_slots(&clinic.doctor_id, None).await;
    let visit = scheduled_visit(&platform, &clinic, &patient, &free[30]).await;
    let id = visit["id"].as_str().unwrap().to_owned();

    let wait_for = |count: usize| {
        let sink = &sink;
        async move {
            eventually(&format!("{count} calendar parts"), || async {
                let parts = calendar_parts(sink);
                (parts.len() >= count).then_some(parts)
            })
            .await
        }
    };
    // Approved: patient, doctor and nurse are invited.
    wait_for(3).await;

    // Moved by the clinic: all three get the update.
    let moved = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{id}/reschedule"),
            Some(&clinic.admin),
            Some(json!({"starts_at": free[40]})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    wait_for(6).await;

    // The reminder a day ahead carries the invite again.
    let pool = polyclinic_db::pool(&platform.config, Service::Appointments).unwrap();
    let jobs = Jobs::new(pool, chrono_tz::UTC, chrono::Duration::days(730));
    let starts: DateTime<Utc> = moved.body["starts_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        jobs.send_reminders(starts - chrono::Duration::hours(23))
            .await
            .unwrap(),
        1
    );
    wait_for(7).await;

    // Cancelled: all three are told to remove it.
    let cancelled = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{id}/cancel"),
            Some(&clinic.admin),
            Some(json!({"reason": "the doctor is ill"})),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let parts = wait_for(10).await;
    assert_eq!(parts.len(), 10, "{parts:#?}");

    let calendars = read_calendars(
        &parts
            .iter()
            .map(|part| part.text.clone())
            .collect::<Vec<_>>(),
    );
    let mut sequences: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut uids = Vec::new();
    for (part, calendar) in parts.iter().zip(&calendars) {
        assert!(part.attached, "{}: invite.ics attached", part.subject);
        assert_eq!(calendar["method"], part.method.as_str(), "{}", part.subject);
        let events = calendar["events"].as_array().unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert!(event["utc"].as_bool().unwrap(), "times in UTC: {event}");
        uids.push(event["uid"].as_str().unwrap().to_owned());
        sequences
            .entry(part.to.clone())
            .or_default()
            .push(event["sequence"].as_i64().unwrap());
        assert!(
            event["organizer"]
                .as_str()
                .unwrap()
                .ends_with("noreply@clinic.example"),
            "{event}"
        );
        assert_eq!(
            event["attendees"],
            json!([format!("mailto:{}", part.to)]),
            "the recipient attends"
        );
        let everything = format!("{} {}", part.text, part.subject);
        for clinical in [REASON, NOTES, "the doctor is ill"] {
            assert!(!everything.contains(clinical), "{clinical} in {everything}");
        }
        let location = event["location"].as_str().unwrap();
        assert!(
            location.starts_with("Cardiology"),
            "the department: {location}"
        );
        assert!(
            location.contains("Room"),
            "the room, once assigned: {location}"
        );
        match part.method.as_str() {
            "REQUEST" => assert_eq!(event["status"], "CONFIRMED"),
            "CANCEL" => assert_eq!(event["status"], "CANCELLED"),
            other => panic!("unexpected method {other}"),
        }
    }
    uids.dedup();
    assert_eq!(
        uids,
        [format!("appointment-{id}@127.0.0.1")],
        "one event for good"
    );
    // Each recipient saw a rising SEQUENCE: invite, update, (reminder), cancellation.
    for (recipient, seen) in &sequences {
        assert!(
            seen.windows(2).all(|pair| pair[0] <= pair[1]) && seen.first() < seen.last(),
            "{recipient}: {seen:?}"
        );
    }
    assert_eq!(sequences.len(), 3, "patient, doctor and nurse");
    // What the calendars say of the time is the appointment's, before and after the move.
    let first = &calendars[0]["events"][0];
    assert_eq!(first["dtstart"], utc(&visit["starts_at"]));
    assert_eq!(first["dtend"], utc(&visit["ends_at"]));
    let last = &calendars[9]["events"][0];
    assert_eq!(last["dtstart"], utc(&moved.body["starts_at"]));
    let summary_for_patient = parts
        .iter()
        .zip(&calendars)
        .find(|(part, _)| part.to == "cal-ada@clinic.example")
        .map(|(_, calendar)| {
            calendar["events"][0]["summary"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .unwrap();
    assert!(
        summary_for_patient.starts_with("Appointment with Dr "),
        "{summary_for_patient}"
    );
}

async fn read_feed(platform: &TestPlatform, url: &str) -> (StatusCode, String) {
    let response = platform.client().get(url).send().await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/calendar")
        );
    }
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_private_feed_lists_a_persons_visits_until_it_is_rotated_or_ended() {
    let platform = TestPlatform::start_with(&Service::ALL, |config, _| {
        config.rate_limit.feed_per_minute = 20;
    })
    .await;
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("feed-ada@clinic.example").await;
    let free = platform.free_slots(&clinic.doctor_id, None).await;
    let visit = scheduled_visit(&platform, &clinic, &patient, &free[5]).await;
    let id = visit["id"].as_str().unwrap();
    let feeds = |token: String| {
        let platform = &platform;
        async move {
            let made = platform
                .call_service(
                    Service::Gateway,
                    Method::POST,
                    "/api/calendar/feed",
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
            made.body["url"].as_str().unwrap().to_owned()
        }
    };
    let patient_url = feeds(patient.clone()).await;
    let doctor_url = feeds(clinic.doctor.clone()).await;
    assert!(patient_url.starts_with(&platform.config.public_url));
    assert!(patient_url.ends_with(".ics"));

    let patient_feed = eventually("the visit in the patient's feed", || async {
        let (status, text) = read_feed(&platform, &patient_url).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        text.contains("STATUS:CONFIRMED").then_some(text)
    })
    .await;
    let (status, doctor_feed) = read_feed(&platform, &doctor_url).await;
    assert_eq!(status, StatusCode::OK);
    let calendars = read_calendars(&[patient_feed.clone(), doctor_feed.clone()]);
    for (calendar, who) in calendars.iter().zip(["patient", "doctor"]) {
        assert_eq!(calendar["method"], "PUBLISH", "{who}");
        let events = calendar["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{who}: {events:?}");
        let event = &events[0];
        assert_eq!(event["uid"], format!("appointment-{id}@127.0.0.1"), "{who}");
        assert_eq!(
            event["sequence"], visit["revision"],
            "{who}: the latest revision"
        );
        assert_eq!(event["dtstart"], utc(&visit["starts_at"]), "{who}");
        assert!(event["utc"].as_bool().unwrap());
        assert!(
            event["location"].as_str().unwrap().contains("Room"),
            "{who}"
        );
    }
    let patient_summary = calendars[0]["events"][0]["summary"].as_str().unwrap();
    assert!(
        patient_summary.starts_with("Appointment with Dr "),
        "{patient_summary}"
    );
    let doctor_summary = calendars[1]["events"][0]["summary"].as_str().unwrap();
    assert!(
        !doctor_summary.contains("Dr "),
        "the doctor sees the patient: {doctor_summary}"
    );
    for text in [&patient_feed, &doctor_feed] {
        assert!(!text.contains(REASON) && !text.contains(NOTES));
    }
    let shown = platform
        .call_service(
            Service::Gateway,
            Method::GET,
            "/api/calendar/feed",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(shown.body["active"], true);
    assert!(shown.body["last_read_at"].is_string());
    assert!(
        !shown
            .body
            .to_string()
            .contains(patient_url.rsplit('/').next().unwrap()),
        "the secret is shown once"
    );

    // Rotating kills the old URL; ending kills the new one.
    let rotated = feeds(patient.clone()).await;
    assert_ne!(rotated, patient_url);
    assert_eq!(
        read_feed(&platform, &patient_url).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(read_feed(&platform, &rotated).await.0, StatusCode::OK);
    let ended = platform
        .call_service(
            Service::Gateway,
            Method::DELETE,
            "/api/calendar/feed",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    let (status, body) = read_feed(&platform, &rotated).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("calendar_feed_not_found"), "{body}");

    // A feed is read a few times a minute at most: the doctor's is at its limit now.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(read_feed(&platform, &doctor_url).await.0);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}
