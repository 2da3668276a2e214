//! The jobs, with the clock moved instead of waited for; several instances share the work
//! without doing any of it twice.

use chrono::{DateTime, Duration, Utc};
use polyclinic_appointments::jobs::Jobs;
use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};

use crate::booking::{Bus, announced, id, platform, slot};

/// The jobs of the platform's appointments service, on a pool of their own.
pub fn jobs(platform: &TestPlatform) -> Jobs {
    let pool = polyclinic_db::pool(&platform.config, Service::Appointments).unwrap();
    Jobs::new(pool, chrono_tz::UTC, Duration::days(730))
}

fn at(value: &serde_json::Value, field: &str) -> DateTime<Utc> {
    value[field].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_scheduled_visit_is_reminded_of_once_a_day_ahead_and_completed_after_it_ends() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("remind@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 3, 0).await;
    let booked = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts_at)
        .await;
    let approved = platform.approve(&clinic, id(&booked)).await;
    assert_eq!(approved.status, StatusCode::OK);
    let (start, end) = (
        at(&approved.body, "starts_at"),
        at(&approved.body, "ends_at"),
    );
    let (one, two) = (jobs(&platform), jobs(&platform));

    assert_eq!(
        one.send_reminders(start - Duration::hours(25))
            .await
            .unwrap(),
        0,
        "too early"
    );
    let day_before = start - Duration::hours(23);
    let (first, second) = tokio::join!(
        one.send_reminders(day_before),
        two.send_reminders(day_before)
    );
    assert_eq!(
        first.unwrap() + second.unwrap(),
        1,
        "two instances, one reminder"
    );
    assert_eq!(one.send_reminders(day_before).await.unwrap(), 0, "once");

    assert_eq!(
        one.complete_ended(end - Duration::minutes(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        one.complete_ended(end + Duration::hours(3)).await.unwrap(),
        1
    );
    let done = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{}", id(&booked)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(done.body["status"], "COMPLETED");
    assert_eq!(
        announced(&platform, id(&booked)).await,
        ["reserved", "paid", "scheduled", "reminder", "completed"]
    );
}

#[tokio::test]
async fn expiring_holds_on_two_instances_expires_each_once() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let mut held = Vec::new();
    for n in 0..3 {
        let (_, token) = platform
            .register_patient(&format!("hold{n}@clinic.example"))
            .await;
        let starts_at = slot(&platform, &clinic, 1, n).await;
        held.push(
            platform
                .reserve(&token, &clinic.doctor_id, &starts_at)
                .await,
        );
    }
    let (one, two) = (jobs(&platform), jobs(&platform));
    let later = Utc::now() + Duration::minutes(11);
    let (a, b) = tokio::join!(one.expire_holds(later), two.expire_holds(later));
    assert_eq!(a.unwrap() + b.unwrap(), 3);
    for appointment in &held {
        assert_eq!(
            announced(&platform, id(appointment)).await,
            ["reserved", "expired"]
        );
    }
}

#[tokio::test]
async fn terminal_appointments_are_purged_after_the_retention_period_with_their_history() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("purge@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 1, 0).await;
    let held = platform
        .reserve(&token, &clinic.doctor_id, &starts_at)
        .await;
    let kept = platform
        .reserve(
            &token,
            &clinic.doctor_id,
            &slot(&platform, &clinic, 1, 0).await,
        )
        .await;
    let jobs = jobs(&platform);
    let cancelled = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/cancel", id(&held)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);

    assert_eq!(
        jobs.purge(Utc::now() + Duration::days(729)).await.unwrap(),
        0
    );
    assert_eq!(
        jobs.purge(Utc::now() + Duration::days(731)).await.unwrap(),
        1,
        "only the cancelled one"
    );
    let gone = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{}", id(&held)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let history: i64 = sqlx::query_scalar(
        "select count(*) from appointments.appointment_history where appointment_id = $1::uuid",
    )
    .bind(id(&held))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(history, 0);
    let still = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{}", id(&kept)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(still.body["status"], "PENDING");
}

#[tokio::test]
async fn the_doctor_completes_a_started_visit_and_the_nurse_records_a_no_show() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("visit@clinic.example").await;
    let mut visits = Vec::new();
    for nth in 0..2 {
        let starts_at = slot(&platform, &clinic, 1, nth).await;
        let booked = platform
            .paid_appointment(&token, &clinic.doctor_id, &starts_at)
            .await;
        assert_eq!(
            platform.approve(&clinic, id(&booked)).await.status,
            StatusCode::OK
        );
        visits.push(booked);
    }
    let early = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/complete", id(&visits[0])),
            Some(&clinic.doctor),
            None,
        )
        .await;
    assert_eq!(
        (early.status, early.code()),
        (StatusCode::CONFLICT, "appointment_not_started")
    );

    // The visits' time has come.
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    sqlx::query("update appointments.appointments set starts_at = starts_at - interval '2 days', ends_at = ends_at - interval '2 days'")
        .execute(&pool)
        .await
        .unwrap();
    let done = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/complete", id(&visits[0])),
            Some(&clinic.doctor),
            None,
        )
        .await;
    assert_eq!(
        (done.status, done.body["status"].as_str()),
        (StatusCode::OK, Some("COMPLETED"))
    );
    let missed = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/no-show", id(&visits[1])),
            Some(&clinic.nurse),
            None,
        )
        .await;
    assert_eq!(
        (missed.status, missed.body["status"].as_str()),
        (StatusCode::OK, Some("NO_SHOW"))
    );
    let again = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/complete", id(&visits[1])),
            Some(&clinic.doctor),
            None,
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "a missed visit stays missed"
    );
    assert_eq!(
        announced(&platform, id(&visits[1])).await.last().unwrap(),
        "no_show"
    );
}
