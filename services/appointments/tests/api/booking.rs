//! The original's booking flow and every path off it, end to end through the gateway with
//! real tokens, on both event buses. Each test ends by checking both services agree.

use chrono::{DateTime, Duration, Utc};
use polyclinic_testing::{Clinic, Service, TestPlatform, use_kafka};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub enum Bus {
    Postgres,
    Kafka,
}

pub async fn platform(bus: Bus) -> TestPlatform {
    TestPlatform::start_with(
        &[
            Service::Identity,
            Service::Appointments,
            Service::Payments,
            Service::Gateway,
        ],
        |config, _| {
            if let Bus::Kafka = bus {
                use_kafka(config);
            }
        },
    )
    .await
}

/// Runs a scenario on each bus.
#[macro_export]
macro_rules! on_both_buses {
    ($($name:ident),* $(,)?) => {
        mod postgres_bus {
            $(#[tokio::test] async fn $name() { super::$name(super::Bus::Postgres).await })*
        }
        mod kafka_bus {
            $(#[tokio::test] async fn $name() { super::$name(super::Bus::Kafka).await })*
        }
    };
}

on_both_buses!(
    a_patient_reserves_pays_and_is_scheduled_with_the_payment_captured,
    a_rejected_request_voids_the_authorisation_and_frees_the_slot,
    a_patient_cancels_before_the_cutoff_with_a_refund_but_not_after_it,
    an_admin_cancelling_after_capture_refunds_the_payment,
    rescheduling_keeps_the_payment_and_frees_the_old_slot,
    doctor_unavailability_cancels_paid_and_scheduled_visits_and_settles_their_payments,
    an_expired_hold_frees_the_slot_at_once_and_voids_the_payment,
    an_authorisation_that_lapses_before_approval_cancels_the_appointment,
);

pub fn id(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

fn payment_id(appointment: &Value) -> String {
    appointment["payment_id"]
        .as_str()
        .or_else(|| appointment["payment"]["id"].as_str())
        .unwrap()
        .to_owned()
}

/// The first free slot at least `days_ahead` days from today.
pub async fn slot(platform: &TestPlatform, clinic: &Clinic, days_ahead: i64, nth: usize) -> String {
    let from = (Utc::now() + Duration::days(days_ahead))
        .date_naive()
        .to_string();
    let from = (days_ahead > 0).then_some(from);
    platform
        .free_slots(&clinic.doctor_id, from.as_deref())
        .await
        .into_iter()
        .nth(nth)
        .expect("a free slot")
}

async fn state_of_slot(platform: &TestPlatform, clinic: &Clinic, starts_at: &str) -> String {
    let date = DateTime::parse_from_rfc3339(starts_at)
        .unwrap()
        .date_naive();
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
    let start: DateTime<Utc> = starts_at.parse().unwrap();
    reply.body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|slot| {
            slot["starts_at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
                == start
        })
        .map(|slot| slot["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".to_owned())
}

/// The event types the appointments service announced about `appointment_id`, in order.
pub async fn announced(platform: &TestPlatform, appointment_id: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let types: Vec<String> = sqlx::query_scalar(
        "select event_type from appointments.outbox where key = $1 order by seq",
    )
    .bind(appointment_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    types
        .into_iter()
        .map(|t| {
            t.trim_start_matches("polyclinic.appointment.")
                .trim_end_matches(".v1")
                .to_owned()
        })
        .collect()
}

async fn a_patient_reserves_pays_and_is_scheduled_with_the_payment_captured(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (patient, token) = platform.register_patient("ada@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 1, 3).await;

    let reserved = platform
        .reserve(&token, &clinic.doctor_id, &starts_at)
        .await;
    assert_eq!(reserved["status"], "PENDING");
    assert_eq!(reserved["patient_id"], patient["id"]);
    assert_eq!(
        reserved["fee"],
        json!({"amount": 6000, "currency": "EUR"}),
        "the doctor's fee"
    );
    assert!(reserved["hold_expires_at"].is_string());
    assert!(
        reserved["payment"]["client_secret"]
            .as_str()
            .unwrap()
            .contains("_secret_")
    );
    assert_eq!(state_of_slot(&platform, &clinic, &starts_at).await, "taken");
    let payment = payment_id(&reserved);
    let priced = platform
        .book(
            Method::GET,
            &format!("/api/payments/{payment}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (
            priced.body["amount"].as_i64(),
            priced.body["currency"].as_str()
        ),
        (Some(6000), Some("EUR"))
    );

    let confirmed = platform.pay(&token, &payment, "pm_card_visa").await;
    assert_eq!(
        confirmed.body["status"], "requires_capture",
        "{:?}",
        confirmed.body
    );
    let paid = platform
        .appointment_becomes(&token, id(&reserved), "PAID")
        .await;
    assert!(
        paid["hold_expires_at"].is_null(),
        "a paid booking holds no more"
    );
    let queue = platform
        .book(
            Method::GET,
            "/api/appointments/queue",
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(queue.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(queue.body["items"][0]["id"], reserved["id"]);

    let approved = platform.approve(&clinic, id(&reserved)).await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["status"], "SCHEDULED");
    assert_eq!(
        approved.body["room_id"].as_str(),
        Some(clinic.room_id.as_str())
    );
    assert_eq!(
        approved.body["nurse_id"].as_str(),
        Some(clinic.nurse_id.as_str())
    );
    let captured = platform
        .book(
            Method::GET,
            &format!("/api/payments/{payment}"),
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(captured.body["status"], "succeeded");
    assert_eq!(captured.body["amount_captured"], 6000);

    for (who, token) in [
        ("doctor", &clinic.doctor),
        ("nurse", &clinic.nurse),
        ("patient", &token),
    ] {
        let mine = platform
            .book(Method::GET, "/api/appointments/mine", Some(token), None)
            .await;
        assert_eq!(
            mine.body["items"][0]["id"], reserved["id"],
            "the {who}'s list"
        );
    }
    let queue = platform
        .book(
            Method::GET,
            "/api/appointments/queue",
            Some(&clinic.admin),
            None,
        )
        .await;
    assert!(queue.body["items"].as_array().unwrap().is_empty());
    assert_eq!(
        announced(&platform, id(&reserved)).await,
        ["reserved", "paid", "scheduled"]
    );
}

async fn a_rejected_request_voids_the_authorisation_and_frees_the_slot(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("rej@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 1, 0).await;
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts_at)
        .await;

    let path = format!("/api/appointments/{}/reject", id(&paid));
    let without_reason = platform
        .book(Method::POST, &path, Some(&clinic.admin), Some(json!({})))
        .await;
    assert_eq!(without_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let rejected = platform
        .book(
            Method::POST,
            &path,
            Some(&clinic.admin),
            Some(json!({"reason": "no referral"})),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{:?}", rejected.body);
    assert_eq!(rejected.body["status"], "REJECTED");
    assert_eq!(rejected.body["status_reason"], "no referral");
    platform
        .payment_becomes(&token, &payment_id(&paid), "voided", |p| {
            p["status"] == "canceled"
        })
        .await;
    assert_eq!(state_of_slot(&platform, &clinic, &starts_at).await, "free");
    let again = platform.approve(&clinic, id(&paid)).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "appointment_state")
    );
}

async fn a_patient_cancels_before_the_cutoff_with_a_refund_but_not_after_it(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("cancel@clinic.example").await;

    // Two days ahead: well before the 24-hour cutoff.
    let early = slot(&platform, &clinic, 2, 0).await;
    let booked = platform
        .paid_appointment(&token, &clinic.doctor_id, &early)
        .await;
    assert_eq!(
        platform.approve(&clinic, id(&booked)).await.status,
        StatusCode::OK
    );
    let cancel = format!("/api/appointments/{}/cancel", id(&booked));
    let cancelled = platform
        .book(
            Method::POST,
            &cancel,
            Some(&token),
            Some(json!({"reason": "feeling better"})),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    let refunded = platform
        .payment_becomes(&token, &payment_id(&booked), "refunded", |p| {
            p["amount_refunded"] == 6000
        })
        .await;
    assert_eq!(refunded["status"], "succeeded");
    assert_eq!(state_of_slot(&platform, &clinic, &early).await, "free");

    // The next free slot is at most a few hours away: inside the cutoff.
    let soon = slot(&platform, &clinic, 0, 0).await;
    let late = platform
        .paid_appointment(&token, &clinic.doctor_id, &soon)
        .await;
    let refused = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/cancel", id(&late)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "cancellation_cutoff_passed");
    let still = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{}", id(&late)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(still.body["status"], "PAID", "nothing changed");

    // An unpaid hold can always be let go, and its payment is voided.
    let other = slot(&platform, &clinic, 0, 1).await;
    let held = platform.reserve(&token, &clinic.doctor_id, &other).await;
    let dropped = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/cancel", id(&held)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(dropped.body["status"], "CANCELLED", "{:?}", dropped.body);
    platform
        .payment_becomes(&token, &payment_id(&held), "voided", |p| {
            p["status"] == "canceled"
        })
        .await;
}

async fn an_admin_cancelling_after_capture_refunds_the_payment(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("adm@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 0, 0).await;
    let booked = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts_at)
        .await;
    assert_eq!(
        platform.approve(&clinic, id(&booked)).await.status,
        StatusCode::OK
    );

    let cancelled = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/cancel", id(&booked)),
            Some(&clinic.admin),
            Some(json!({"reason": "the doctor is ill"})),
        )
        .await;
    assert_eq!(
        cancelled.status,
        StatusCode::OK,
        "the cutoff is the patient's, not the clinic's"
    );
    assert_eq!(cancelled.body["status_reason"], "the doctor is ill");
    platform
        .payment_becomes(&token, &payment_id(&booked), "refunded", |p| {
            p["amount_refunded"] == 6000 && p["amount_captured"] == 6000
        })
        .await;
    assert_eq!(
        announced(&platform, id(&booked)).await.last().unwrap(),
        "cancelled"
    );
}

async fn rescheduling_keeps_the_payment_and_frees_the_old_slot(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("move@clinic.example").await;
    let first = slot(&platform, &clinic, 2, 0).await;
    let second = slot(&platform, &clinic, 2, 1).await;
    let booked = platform
        .paid_appointment(&token, &clinic.doctor_id, &first)
        .await;
    assert_eq!(
        platform.approve(&clinic, id(&booked)).await.status,
        StatusCode::OK
    );

    let path = format!("/api/appointments/{}/reschedule", id(&booked));
    let not_a_slot = platform
        .book(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"starts_at": "2031-01-01T08:30:00Z"})),
        )
        .await;
    assert_eq!(
        (not_a_slot.status, not_a_slot.code()),
        (StatusCode::CONFLICT, "not_a_slot")
    );
    let moved = platform
        .book(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"starts_at": second})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["status"], "SCHEDULED");
    assert_eq!(
        moved.body["payment_id"], booked["payment_id"],
        "the same payment"
    );
    assert_eq!(
        moved.body["starts_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        second.parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(state_of_slot(&platform, &clinic, &first).await, "free");
    assert_eq!(state_of_slot(&platform, &clinic, &second).await, "taken");
    let payment = platform
        .book(
            Method::GET,
            &format!("/api/payments/{}", payment_id(&booked)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (
            payment.body["status"].as_str(),
            payment.body["amount_refunded"].as_i64()
        ),
        (Some("succeeded"), Some(0))
    );

    // Another patient's booking blocks the slot it holds.
    let (_, other) = platform.register_patient("other@clinic.example").await;
    let third = slot(&platform, &clinic, 2, 2).await;
    platform.reserve(&other, &clinic.doctor_id, &third).await;
    let taken = platform
        .book(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"starts_at": third})),
        )
        .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "slot_taken")
    );
    assert_eq!(
        announced(&platform, id(&booked)).await,
        ["reserved", "paid", "scheduled", "rescheduled"]
    );
}

async fn doctor_unavailability_cancels_paid_and_scheduled_visits_and_settles_their_payments(
    bus: Bus,
) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("unav@clinic.example").await;
    let first = slot(&platform, &clinic, 2, 0).await;
    let second = slot(&platform, &clinic, 2, 1).await;
    let scheduled = platform
        .paid_appointment(&token, &clinic.doctor_id, &first)
        .await;
    assert_eq!(
        platform.approve(&clinic, id(&scheduled)).await.status,
        StatusCode::OK
    );
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &second)
        .await;

    let date = DateTime::parse_from_rfc3339(&first).unwrap().date_naive();
    let added = platform
        .book(
            Method::POST,
            &format!("/api/doctors/{}/unavailability", clinic.doctor_id),
            Some(&clinic.doctor),
            Some(json!({"kind": "day", "date": date, "reason": "conference"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    assert_eq!(
        added.body["cancelled_appointments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let cancelled = platform
        .appointment_becomes(&token, id(&scheduled), "CANCELLED")
        .await;
    assert!(
        cancelled["status_reason"]
            .as_str()
            .unwrap()
            .contains("conference")
    );
    platform
        .appointment_becomes(&token, id(&paid), "CANCELLED")
        .await;
    platform
        .payment_becomes(&token, &payment_id(&scheduled), "refunded", |p| {
            p["amount_refunded"] == 6000
        })
        .await;
    platform
        .payment_becomes(&token, &payment_id(&paid), "voided", |p| {
            p["status"] == "canceled"
        })
        .await;
    assert_eq!(
        state_of_slot(&platform, &clinic, &first).await,
        "absent",
        "no slots that day"
    );
}

async fn an_expired_hold_frees_the_slot_at_once_and_voids_the_payment(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("late@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 1, 0).await;
    let held = platform
        .reserve(&token, &clinic.doctor_id, &starts_at)
        .await;
    let jobs = crate::jobs::jobs(&platform);

    assert_eq!(
        jobs.expire_holds(Utc::now() + Duration::minutes(9))
            .await
            .unwrap(),
        0,
        "still held"
    );
    assert_eq!(
        jobs.expire_holds(Utc::now() + Duration::minutes(11))
            .await
            .unwrap(),
        1
    );
    let expired = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{}", id(&held)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(expired.body["status"], "EXPIRED");
    assert_eq!(
        state_of_slot(&platform, &clinic, &starts_at).await,
        "free",
        "free at once"
    );
    platform
        .payment_becomes(&token, &payment_id(&held), "voided", |p| {
            p["status"] == "canceled"
        })
        .await;
    let late = platform
        .pay(&token, &payment_id(&held), "pm_card_visa")
        .await;
    assert_eq!(
        late.status,
        StatusCode::CONFLICT,
        "a voided payment cannot be paid"
    );
    // Someone else can book the slot now.
    let (_, other) = platform.register_patient("next@clinic.example").await;
    platform
        .reserve(&other, &clinic.doctor_id, &starts_at)
        .await;
}

async fn an_authorisation_that_lapses_before_approval_cancels_the_appointment(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("lapse@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 3, 0).await;
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts_at)
        .await;
    let payment = payment_id(&paid);

    // The card was authorised eight days ago (Stripe cancels uncaptured intents after 7).
    let pool = polyclinic_db::pool(&platform.config, Service::Payments).unwrap();
    sqlx::query("update payments set authorized_at = now() - interval '8 days', created_at = now() - interval '8 days', updated_at = now() - interval '8 days' where id = $1::uuid")
        .bind(&payment)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update simulated_intents set authorized_at = now() - interval '8 days' where id = (select provider_intent_id from payments where id = $1::uuid)")
        .bind(&payment)
        .execute(&pool)
        .await
        .unwrap();
    let (ledger, _) = polyclinic_payments::ledger(&platform.config, &pool).unwrap();
    assert_eq!(
        ledger
            .reconcile(Utc::now(), Duration::minutes(5), 100)
            .await
            .unwrap(),
        1
    );

    let cancelled = platform
        .appointment_becomes(&token, id(&paid), "CANCELLED")
        .await;
    assert!(
        cancelled["status_reason"]
            .as_str()
            .unwrap()
            .contains("authorisation lapsed")
    );
    let lapsed = platform
        .book(
            Method::GET,
            &format!("/api/payments/{payment}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(lapsed.body["status"], "canceled");
    let approve = platform.approve(&clinic, id(&paid)).await;
    assert_eq!(approve.status, StatusCode::CONFLICT);
    assert_eq!(state_of_slot(&platform, &clinic, &starts_at).await, "free");
}
