//! The scheduling pages of this wave: a patient's waitlist (join, place in line, claim the
//! freed slot), the admins' view of a doctor's line, the calendar feed on the account page,
//! saving the card of a visit booked far ahead, and buffers on the schedules page.

use chrono::{Duration, Utc};
use polyclinic_testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Service, TestPlatform, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::actions::post_form;
use crate::{page, sign_in};

#[tokio::test]
async fn a_patient_joins_a_line_sees_their_place_and_claims_the_freed_slot_from_its_pages() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (_, holder) = platform.register_patient("holder@example.test").await;
    let date = (Utc::now() + Duration::days(3)).date_naive();
    let starts = date.and_hms_opt(10, 0, 0).unwrap().and_utc().to_rfc3339();
    let held = platform
        .paid_appointment(&holder, &clinic.doctor_id, &starts)
        .await;
    let (_, ada_token) = platform.register_patient("wait.ada@example.test").await;
    let ada = sign_in(&platform, "wait.ada@example.test", "patient passphrase").await;

    let (status, html) = page(&platform, &ada, &format!("/doctors/{}", clinic.doctor_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("/waitlist?doctor_id={}", clinic.doctor_id)),
        "a way to the line"
    );
    let prefilled = format!("/waitlist?doctor_id={}", clinic.doctor_id);
    let (status, location, _) = post_form(
        &platform,
        &ada,
        &prefilled,
        "/waitlist",
        &[
            ("doctor_id", &clinic.doctor_id),
            ("specialization", ""),
            ("from", &date.to_string()),
            ("to", &date.to_string()),
            ("earliest", "10:00"),
            ("latest", "11:00"),
            ("idempotency_key", &uuid::Uuid::new_v4().to_string()),
        ],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/waitlist")
    );
    let (_, html) = page(&platform, &ada, "/waitlist").await;
    assert!(html.contains("number 1"), "her place in line");
    assert!(html.contains("WAITING"));
    let (status, _, refused) = post_form(
        &platform,
        &ada,
        "/waitlist",
        "/waitlist",
        &[
            ("doctor_id", ""),
            ("specialization", ""),
            ("from", ""),
            ("to", ""),
            ("earliest", ""),
            ("latest", ""),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.contains("Choose a doctor or a specialization."));

    // The holder cancels: the slot is held for Ada, who claims it and goes to pay.
    let cancelled = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/cancel", held["id"].as_str().unwrap()),
            Some(&holder),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let offered: String = eventually("Ada's offer", || async {
        let mine = platform
            .book(Method::GET, "/api/waitlist/mine", Some(&ada_token), None)
            .await;
        mine.body[0]["offer"]["appointment_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let (_, html) = page(&platform, &ada, "/waitlist").await;
    assert!(
        html.contains(&format!("/appointments/{offered}/claim")),
        "a claim link"
    );
    let admin = sign_in(&platform, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, line) = page(
        &platform,
        &admin,
        &format!("/admin/waitlist?doctor_id={}", clinic.doctor_id),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        line.contains("Pat Ient") && line.contains("OFFERED"),
        "the admins see the line"
    );

    let claim = format!("/appointments/{offered}/claim");
    let (status, html) = page(&platform, &ada, &claim).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("held for you until"));
    let (status, location, _) = post_form(
        &platform,
        &ada,
        &claim,
        &claim,
        &[("idempotency_key", &uuid::Uuid::new_v4().to_string())],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            format!("/appointments/{offered}/pay").as_str()
        )
    );
    let (status, pay) = page(&platform, &ada, &format!("/appointments/{offered}/pay")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pay.contains("Card number"));
    let appointment = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{offered}"),
            Some(&ada_token),
            None,
        )
        .await;
    assert_eq!(
        appointment.body["status"], "PENDING",
        "claimed: a reservation"
    );
}

#[tokio::test]
async fn a_person_makes_rotates_and_stops_their_calendar_feed_on_the_account_page() {
    let platform = TestPlatform::start(&Service::ALL).await;
    platform.register_patient("feed.bea@example.test").await;
    let bea = sign_in(&platform, "feed.bea@example.test", "patient passphrase").await;
    let (_, html) = page(&platform, &bea, "/account").await;
    assert!(html.contains("Make my calendar address"));
    let url_in = |html: &str| {
        let start = html
            .find("<code id=\"feed-url\">")
            .expect("the URL, shown once")
            + 20;
        html[start..].split('<').next().unwrap().to_owned()
    };
    let (status, _, made) = post_form(&platform, &bea, "/account", "/account/calendar", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let first = url_in(&made);
    assert!(made.contains("webcal://"));
    let read = |url: String| async move { reqwest::get(url).await.unwrap().status() };
    assert_eq!(read(first.clone()).await, StatusCode::OK);
    let (_, html) = page(&platform, &bea, "/account").await;
    assert!(
        html.contains("Your feed is on") && !html.contains(&first),
        "never shown again"
    );

    let (_, _, again) = post_form(&platform, &bea, "/account", "/account/calendar", &[]).await;
    let second = url_in(&again);
    assert_ne!(second, first);
    assert_eq!(
        read(first).await,
        StatusCode::NOT_FOUND,
        "the old address stops working"
    );
    assert_eq!(read(second.clone()).await, StatusCode::OK);
    let (status, location, _) =
        post_form(&platform, &bea, "/account", "/account/calendar/stop", &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/account")
    );
    assert_eq!(read(second).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_visit_three_weeks_ahead_saves_the_card_on_the_pay_page_and_buffers_are_set_on_the_schedule()
 {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("far.cy@example.test").await;
    let starts = (Utc::now() + Duration::days(21))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339();
    let reserved: Value = platform.reserve(&token, &clinic.doctor_id, &starts).await;
    let id = reserved["id"].as_str().unwrap();
    let cy = sign_in(&platform, "far.cy@example.test", "patient passphrase").await;
    let pay = format!("/appointments/{id}/pay");
    let (status, html) = page(&platform, &cy, &pay).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("your card is saved now"),
        "the page says what happens"
    );
    assert!(html.contains("Save the card"));
    let (status, location, _) = post_form(
        &platform,
        &cy,
        &pay,
        &pay,
        &[
            ("idempotency_key", &uuid::Uuid::new_v4().to_string()),
            ("card_name", "Cy Patient"),
            ("card_number", "4242 4242 4242 4242"),
            ("expiry", "12/39"),
            ("cvc", "123"),
        ],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            format!("/appointments/{id}").as_str()
        )
    );
    let (_, detail) = page(&platform, &cy, &format!("/appointments/{id}")).await;
    assert!(
        detail.contains("Card saved") || detail.contains("card is saved"),
        "{detail}"
    );

    let admin = sign_in(&platform, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let schedules = format!("/admin/schedules?doctor_id={}", clinic.doctor_id);
    let mut fields: Vec<(String, String)> = Vec::new();
    for weekday in 1..=7 {
        fields.push((format!("works_{weekday}"), "1".into()));
        fields.push((format!("starts_{weekday}"), "08:00".into()));
        fields.push((format!("ends_{weekday}"), "17:00".into()));
        fields.push((format!("slot_{weekday}"), "45".into()));
    }
    fields.push(("buffer_before".into(), "5".into()));
    fields.push(("buffer_after".into(), "10".into()));
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (status, _, _) = post_form(
        &platform,
        &admin,
        &schedules,
        &format!("/admin/schedules/{}", clinic.doctor_id),
        &borrowed,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let schedule = platform
        .book(
            Method::GET,
            &format!("/api/doctors/{}/schedule", clinic.doctor_id),
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(
        (
            schedule.body["buffer_before_minutes"].clone(),
            schedule.body["buffer_after_minutes"].clone()
        ),
        (json!(5), json!(10))
    );
    let (_, html) = page(&platform, &admin, &schedules).await;
    assert!(html.contains("value=\"10\""), "the page shows the buffers");
}
