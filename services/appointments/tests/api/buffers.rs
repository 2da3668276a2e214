//! Buffers around visits: the template spaces a day's visits with them, and every booking
//! keeps its own, so a visit booked under one template blocks its buffers under the next;
//! the server refuses any reservation or move into them, whatever the client sends.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use polyclinic_testing::{Clinic, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::booking::{Bus, id, platform};

/// Gives the clinic's doctor `slot_minutes` visits every day from 00:00 to 23:00, with the
/// buffers given.
async fn template(
    platform: &TestPlatform,
    clinic: &Clinic,
    slot_minutes: u32,
    before: u32,
    after: u32,
) -> polyclinic_testing::Reply {
    let days: Vec<Value> = (1..=7)
        .map(|weekday| json!({"weekday": weekday, "starts_at": "00:00", "ends_at": "23:00", "slot_minutes": slot_minutes}))
        .collect();
    platform
        .book(
            Method::PUT,
            &format!("/api/doctors/{}/schedule", clinic.doctor_id),
            Some(&clinic.admin),
            Some(json!({"days": days, "buffer_before_minutes": before, "buffer_after_minutes": after})),
        )
        .await
}

/// The doctor's slots on `date` (UTC, as the test clinic runs in UTC): start and state.
async fn day(platform: &TestPlatform, clinic: &Clinic, date: NaiveDate) -> Vec<(String, String)> {
    let reply = platform
        .book(
            Method::GET,
            &format!(
                "/api/doctors/{}/availability?from={date}&to={date}",
                clinic.doctor_id
            ),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| {
            (
                slot["local_time"].as_str().unwrap().to_owned(),
                slot["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn at(date: NaiveDate, hh_mm: &str) -> String {
    let time = chrono::NaiveTime::parse_from_str(hh_mm, "%H:%M").unwrap();
    date.and_time(time).and_utc().to_rfc3339()
}

async fn reserve(
    platform: &TestPlatform,
    token: &str,
    clinic: &Clinic,
    starts_at: &str,
) -> polyclinic_testing::Reply {
    platform
        .book(
            Method::POST,
            "/api/appointments",
            Some(token),
            Some(json!({"doctor_id": clinic.doctor_id, "starts_at": starts_at})),
        )
        .await
}

#[tokio::test]
async fn a_visit_keeps_its_buffers_under_a_later_template_and_nothing_can_be_booked_into_them() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (_, ada) = platform.register_patient("buffer-ada@clinic.example").await;
    let (_, bob) = platform.register_patient("buffer-bob@clinic.example").await;
    let date = (Utc::now() + Duration::days(3)).date_naive();

    // 45-minute visits, 15 minutes kept free after each: the day is cut into hours.
    let set = template(&platform, &clinic, 45, 0, 15).await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(
        (
            set.body["buffer_before_minutes"].clone(),
            set.body["buffer_after_minutes"].clone()
        ),
        (json!(0), json!(15))
    );
    let slots = day(&platform, &clinic, date).await;
    assert_eq!(
        slots[..3]
            .iter()
            .map(|(time, _)| time.as_str())
            .collect::<Vec<_>>(),
        ["00:00", "01:00", "02:00"]
    );
    let booked = reserve(&platform, &ada, &clinic, &at(date, "02:00")).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{:?}", booked.body);
    assert_eq!(
        booked.body["ends_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        at(date, "02:45").parse::<DateTime<Utc>>().unwrap()
    );

    // Quarter-hour visits without buffers: 02:45 falls in Ada's buffer and is taken.
    assert_eq!(
        template(&platform, &clinic, 15, 0, 0).await.status,
        StatusCode::OK
    );
    let slots = day(&platform, &clinic, date).await;
    let state = |time: &str| {
        slots
            .iter()
            .find(|(at, _)| at == time)
            .map(|(_, state)| state.clone())
            .unwrap()
    };
    assert_eq!(state("02:30"), "taken", "inside the visit");
    assert_eq!(state("02:45"), "taken", "inside the visit's buffer");
    assert_eq!(state("03:00"), "free", "after the buffer");
    let refused = reserve(&platform, &bob, &clinic, &at(date, "02:45")).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "slot_taken"),
        "the server refuses a booking into a buffer"
    );

    // Quarter-hour visits with 10 minutes before each: steps of 25 minutes (visits at 00:10,
    // 00:35, ... 02:40, 03:05, 03:30). The 03:05 visit's buffer starts at 02:55, inside Ada's:
    // taken; 03:30 is free.
    assert_eq!(
        template(&platform, &clinic, 15, 10, 0).await.status,
        StatusCode::OK
    );
    let slots = day(&platform, &clinic, date).await;
    let state = |time: &str| {
        slots
            .iter()
            .find(|(at, _)| at == time)
            .map(|(_, state)| state.clone())
            .unwrap_or_else(|| "absent".into())
    };
    assert_eq!(state("03:00"), "absent", "not a start of this template");
    assert_eq!(
        state("03:05"),
        "taken",
        "its buffer before meets Ada's buffer after"
    );
    assert_eq!(state("03:30"), "free");
    let later = reserve(&platform, &bob, &clinic, &at(date, "03:30")).await;
    assert_eq!(later.status, StatusCode::CREATED, "{:?}", later.body);

    // A move into the buffers is refused as well.
    let paid = platform
        .pay(
            &bob,
            later.body["payment"]["id"].as_str().unwrap(),
            "pm_card_visa",
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK);
    platform
        .appointment_becomes(&bob, id(&later.body), "PAID")
        .await;
    let moved = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/reschedule", id(&later.body)),
            Some(&clinic.admin),
            Some(json!({"starts_at": at(date, "03:05")})),
        )
        .await;
    assert_eq!(
        (moved.status, moved.code()),
        (StatusCode::CONFLICT, "slot_taken"),
        "{:?}",
        moved.body
    );
}

#[tokio::test]
async fn a_template_whose_hours_cannot_hold_a_visit_with_its_buffers_is_refused() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let too_long = template(&platform, &clinic, 60, 0, 121).await;
    assert_eq!(
        too_long.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        too_long.body
    );
    let days =
        vec![json!({"weekday": 1, "starts_at": "08:00", "ends_at": "09:00", "slot_minutes": 60})];
    let no_room = platform
        .book(
            Method::PUT,
            &format!("/api/doctors/{}/schedule", clinic.doctor_id),
            Some(&clinic.admin),
            Some(json!({"days": days, "buffer_after_minutes": 5})),
        )
        .await;
    assert_eq!(
        no_room.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        no_room.body
    );
    assert!(
        no_room.body.to_string().contains("days[0].hours"),
        "{:?}",
        no_room.body
    );
    let kept = platform
        .book(
            Method::GET,
            &format!("/api/doctors/{}/schedule", clinic.doctor_id),
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(kept.body["buffer_after_minutes"], 0, "nothing was changed");
}
