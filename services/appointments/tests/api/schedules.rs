//! Templates, time off and availability: validated, owned by the doctor and the admins,
//! free/busy only, and right on daylight-saving days.

use chrono::{Duration, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::booking::{Bus, platform, slot};

fn slot_times(reply: &Value) -> Vec<(String, String)> {
    reply["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| {
            (
                slot["local_time"].as_str().unwrap().to_owned(),
                slot["starts_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The next days on which `zone` moves its clocks forward and back.
fn next_changes(zone: Tz) -> (NaiveDate, NaiveDate) {
    let offset = |date: NaiveDate| {
        zone.from_utc_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
            .offset()
            .fix()
            .local_minus_utc()
    };
    let today = Utc::now().date_naive() + Duration::days(1);
    let (mut forward, mut back) = (None, None);
    for day in today.iter_days().take(400) {
        let before = offset(day - Duration::days(1));
        if offset(day) > before {
            forward.get_or_insert(day);
        } else if offset(day) < before {
            back.get_or_insert(day);
        }
    }
    (forward.unwrap(), back.unwrap())
}

#[tokio::test]
async fn availability_on_daylight_saving_days_skips_the_missing_hour_and_offers_the_repeated_one_once()
 {
    let platform = TestPlatform::start_with(
        &[
            Service::Identity,
            Service::Appointments,
            Service::Payments,
            Service::Gateway,
        ],
        |config, _| config.timezone = "Europe/Berlin".into(),
    )
    .await;
    let clinic = platform.clinic().await;
    let night = json!({"days": (1..=7).map(|day| json!({"weekday": day, "starts_at": "00:00", "ends_at": "06:00", "slot_minutes": 60})).collect::<Vec<_>>()});
    let put = platform
        .book(
            Method::PUT,
            &format!("/api/doctors/{}/schedule", clinic.doctor_id),
            Some(&clinic.admin),
            Some(night),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["timezone"], "Europe/Berlin");
    let (forward, back) = next_changes(chrono_tz::Europe::Berlin);
    let on = |date: NaiveDate| {
        format!(
            "/api/doctors/{}/availability?from={date}&to={date}",
            clinic.doctor_id
        )
    };
    let day = |date: NaiveDate, hour: u32| format!("{}T{hour:02}:00:00Z", date.format("%Y-%m-%d"));

    let spring = platform.book(Method::GET, &on(forward), None, None).await;
    let before = forward - Duration::days(1);
    assert_eq!(
        slot_times(&spring.body),
        [
            ("00:00".into(), day(before, 23)),
            ("01:00".into(), day(forward, 0)),
            ("03:00".into(), day(forward, 1)),
            ("04:00".into(), day(forward, 2)),
            ("05:00".into(), day(forward, 3)),
        ],
        "02:00 does not exist that night"
    );
    let autumn = platform.book(Method::GET, &on(back), None, None).await;
    let before = back - Duration::days(1);
    assert_eq!(
        slot_times(&autumn.body),
        [
            ("00:00".into(), day(before, 22)),
            ("01:00".into(), day(before, 23)),
            ("02:00".into(), day(back, 0)),
            ("03:00".into(), day(back, 2)),
            ("04:00".into(), day(back, 3)),
            ("05:00".into(), day(back, 4)),
        ],
        "02:00 happens twice that night and is offered once"
    );

    // The slot after the missing hour is bookable like any other.
    let (_, patient) = platform.register_patient("dst@clinic.example").await;
    let booked = platform
        .reserve(&patient, &clinic.doctor_id, &day(forward, 1))
        .await;
    assert_eq!(
        booked["ends_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        day(forward, 2).parse::<chrono::DateTime<Utc>>().unwrap()
    );
}

#[tokio::test]
async fn availability_is_free_busy_only_hides_the_past_and_refuses_bad_ranges() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (patient, token) = platform.register_patient("busy@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 0, 0).await;
    platform
        .reserve(&token, &clinic.doctor_id, &starts_at)
        .await;

    let today = platform
        .book(
            Method::GET,
            &format!("/api/doctors/{}/availability", clinic.doctor_id),
            None,
            None,
        )
        .await;
    assert_eq!(today.status, StatusCode::OK);
    let slots = today.body["slots"].as_array().unwrap();
    let earliest = Utc::now() + Duration::minutes(60);
    assert!(
        slots.iter().all(|slot| slot["starts_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
            >= earliest),
        "nothing inside the notice"
    );
    assert!(slots.iter().any(|slot| slot["state"] == "taken"));
    let text = today.body.to_string();
    assert!(
        !text.contains(patient["id"].as_str().unwrap()),
        "never who booked"
    );
    for slot in slots {
        let mut keys: Vec<&String> = slot.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["ends_at", "local_date", "local_time", "starts_at", "state"]
        );
    }

    let path = |query: &str| format!("/api/doctors/{}/availability?{query}", clinic.doctor_id);
    for (query, status) in [
        ("from=2031-01-01&to=2031-03-01", StatusCode::BAD_REQUEST),
        ("from=2031-01-05&to=2031-01-01", StatusCode::BAD_REQUEST),
        ("from=yesterday", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            platform
                .book(Method::GET, &path(query), None, None)
                .await
                .status,
            status,
            "{query}"
        );
    }
    let unknown = platform
        .book(
            Method::GET,
            &format!("/api/doctors/{}/availability", uuid::Uuid::now_v7()),
            None,
            None,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "doctor_not_found")
    );
}

#[tokio::test]
async fn the_default_week_applies_until_a_valid_template_replaces_it() {
    let platform =
        TestPlatform::start(&[Service::Identity, Service::Appointments, Service::Gateway]).await;
    let admin = platform.admin_token().await;
    let department = platform.create_department(&admin, "Neurology").await;
    let (doctor, token) = platform
        .create_staff(
            &admin,
            "DOCTOR",
            "dr.week@clinic.example",
            department["id"].as_str(),
        )
        .await;
    let path = format!("/api/doctors/{}/schedule", doctor["id"].as_str().unwrap());

    let default = platform.book(Method::GET, &path, Some(&token), None).await;
    assert_eq!(default.status, StatusCode::OK, "{:?}", default.body);
    assert_eq!(default.body["custom"], false);
    assert_eq!(default.body["days"].as_array().unwrap().len(), 5);
    assert_eq!(
        default.body["days"][0],
        json!({"weekday": 1, "starts_at": "08:00", "ends_at": "17:00", "slot_minutes": 60})
    );

    let bad = platform
        .book(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"days": [
                {"weekday": 8, "starts_at": "08:00", "ends_at": "12:00", "slot_minutes": 30},
                {"weekday": 2, "starts_at": "12:00", "ends_at": "08:00", "slot_minutes": 30},
                {"weekday": 3, "starts_at": "8 o'clock", "ends_at": "12:00", "slot_minutes": 30},
                {"weekday": 4, "starts_at": "08:00", "ends_at": "12:00", "slot_minutes": 3}
            ]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.body["errors"].as_array().unwrap().len(),
        4,
        "{:?}",
        bad.body
    );
    let unchanged = platform.book(Method::GET, &path, Some(&token), None).await;
    assert_eq!(unchanged.body["custom"], false, "nothing was stored");

    let good = platform
        .book(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"days": [{"weekday": 6, "starts_at": "09:00", "ends_at": "12:00", "slot_minutes": 45}]})),
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{:?}", good.body);
    let custom = platform.book(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(custom.body["custom"], true);
    assert_eq!(
        custom.body["days"],
        json!([{"weekday": 6, "starts_at": "09:00", "ends_at": "12:00", "slot_minutes": 45}])
    );
    let week = platform
        .book(
            Method::GET,
            &format!(
                "/api/doctors/{}/availability?from={}&to={}",
                doctor["id"].as_str().unwrap(),
                Utc::now().date_naive() + Duration::days(1),
                Utc::now().date_naive() + Duration::days(7)
            ),
            None,
            None,
        )
        .await;
    let times: Vec<&str> = week.body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["local_time"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        ["09:00", "09:45", "10:30", "11:15"],
        "one Saturday, four 45-minute slots"
    );
}

#[tokio::test]
async fn time_off_removes_slots_until_it_is_deleted() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let date = Utc::now().date_naive() + Duration::days(3);
    let path = format!("/api/doctors/{}/unavailability", clinic.doctor_id);
    let availability = format!(
        "/api/doctors/{}/availability?from={date}&to={date}",
        clinic.doctor_id
    );
    let on_date = async |platform: &TestPlatform| -> Vec<String> {
        let reply = platform.book(Method::GET, &availability, None, None).await;
        reply.body["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["local_time"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(on_date(&platform).await.len(), 23);

    for bad in [
        json!({"kind": "sometimes"}),
        json!({"kind": "day"}),
        json!({"kind": "slots", "date": date, "slots": []}),
        json!({"kind": "slots", "date": date, "slots": ["25:00"]}),
        json!({"kind": "weekday", "weekday": 0}),
        json!({"kind": "day", "date": date, "reason": "x".repeat(501)}),
    ] {
        let reply = platform
            .book(Method::POST, &path, Some(&clinic.doctor), Some(bad.clone()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {:?}",
            reply.body
        );
    }
    let slots = platform
        .book(Method::POST, &path, Some(&clinic.doctor), Some(json!({"kind": "slots", "date": date, "slots": ["09:00", "10:00"], "reason": "ward round"})))
        .await;
    assert_eq!(slots.status, StatusCode::CREATED, "{:?}", slots.body);
    let left = on_date(&platform).await;
    assert_eq!(left.len(), 21);
    assert!(!left.contains(&"09:00".to_owned()) && !left.contains(&"10:00".to_owned()));

    let weekday = chrono::Datelike::weekday(&date).number_from_monday();
    let weekly = platform
        .book(
            Method::POST,
            &path,
            Some(&clinic.admin),
            Some(json!({"kind": "weekday", "weekday": weekday})),
        )
        .await;
    assert_eq!(weekly.status, StatusCode::CREATED);
    assert!(on_date(&platform).await.is_empty());
    let listed = platform
        .book(Method::GET, &path, Some(&clinic.doctor), None)
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2);

    for entry in [&slots.body, &weekly.body] {
        let delete = format!("{path}/{}", entry["id"].as_str().unwrap());
        assert_eq!(
            platform
                .book(Method::DELETE, &delete, Some(&clinic.doctor), None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            platform
                .book(Method::DELETE, &delete, Some(&clinic.doctor), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(on_date(&platform).await.len(), 23);
}
