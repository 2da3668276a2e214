//! Visits booked beyond a card authorisation's lifetime, with the clock moved rather than
//! waited for: the card is saved at booking, authorised off-session 48 hours before the visit
//! and captured after an earlier approval; a refused authorisation asks for another card,
//! and without one by the deadline the visit is cancelled and its slot offered to the
//! waitlist; an authorisation that would lapse before its capture is renewed.

use chrono::{DateTime, Duration, Utc};
use polyclinic_payments::ledger::Ledger;
use polyclinic_testing::{Clinic, Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::booking::{Bus, id, platform};
use crate::waitlist::instance;

/// The payments service's ledger and jobs, as another instance would run them.
fn ledger(platform: &TestPlatform) -> Ledger {
    let pool = polyclinic_db::pool(&platform.config, Service::Payments).unwrap();
    polyclinic_payments::ledger(&platform.config, &pool)
        .unwrap()
        .0
}

async fn payment(platform: &TestPlatform, token: &str, payment_id: &str) -> Value {
    let reply = platform
        .book(
            Method::GET,
            &format!("/api/payments/{payment_id}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// The payment events the payments service announced about `payment_id`, in order.
async fn payment_events(platform: &TestPlatform, payment_id: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let types: Vec<String> =
        sqlx::query_scalar("select event_type from payments.outbox where key = $1 order by seq")
            .bind(payment_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    types
        .iter()
        .map(|name| {
            name.trim_start_matches("polyclinic.payment.")
                .trim_end_matches(".v1")
                .to_owned()
        })
        .collect()
}

fn at(value: &Value, field: &str) -> DateTime<Utc> {
    value[field].as_str().unwrap().parse().unwrap()
}

/// Reserves a slot three weeks ahead and saves `card` for it; returns the appointment,
/// its payment's id and its start.
async fn saved_three_weeks_ahead(
    platform: &TestPlatform,
    clinic: &Clinic,
    token: &str,
    hour: u32,
    card: &str,
) -> (Value, String, DateTime<Utc>) {
    let date = (Utc::now() + Duration::days(21)).date_naive();
    let starts = date.and_hms_opt(hour, 0, 0).unwrap().and_utc();
    let reserved = platform
        .reserve(token, &clinic.doctor_id, &starts.to_rfc3339())
        .await;
    let payment_id = reserved["payment"]["id"].as_str().unwrap().to_owned();
    assert!(
        reserved["payment"]["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("seti_"),
        "a card setup, not an authorisation: {reserved}"
    );
    let saved = platform.pay(token, &payment_id, card).await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    assert_eq!(saved.body["status"], "card_saved");
    assert_eq!(
        at(&saved.body, "authorize_at"),
        starts - Duration::hours(48)
    );
    platform
        .appointment_becomes(token, id(&reserved), "PAID")
        .await;
    (reserved, payment_id, starts)
}

async fn a_visit_three_weeks_ahead_is_saved_authorised_two_days_before_and_captured_after_approval(
    bus: Bus,
) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let (_, ada) = platform.register_patient("far-ada@clinic.example").await;
    let date = (Utc::now() + Duration::days(21)).date_naive();
    let starts = date.and_hms_opt(10, 0, 0).unwrap().and_utc();
    let reserved = platform
        .reserve(&ada, &clinic.doctor_id, &starts.to_rfc3339())
        .await;
    let payment_id = reserved["payment"]["id"].as_str().unwrap().to_owned();

    // A card that is declined cannot be saved either; another one can.
    let declined = platform
        .pay(&ada, &payment_id, "pm_card_chargeDeclined")
        .await;
    assert_eq!(
        (declined.status, declined.code()),
        (StatusCode::PAYMENT_REQUIRED, "card_declined")
    );
    let saved = platform.pay(&ada, &payment_id, "pm_card_visa").await;
    assert_eq!(saved.body["status"], "card_saved", "{:?}", saved.body);
    platform
        .appointment_becomes(&ada, id(&reserved), "PAID")
        .await;

    // Approved three weeks ahead: recorded, the capture waits for the authorisation.
    let approved = platform.approve(&clinic, id(&reserved)).await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["status"], "SCHEDULED");
    let waiting = payment(&platform, &ada, &payment_id).await;
    assert_eq!(waiting["status"], "card_saved");
    assert!(waiting["capture_requested_at"].is_string());
    assert_eq!(waiting["amount_captured"], 0, "nothing is taken yet");

    // 49 hours before: not yet. 47 hours before: authorised off-session and captured.
    assert_eq!(
        ledger
            .authorize_due(starts - Duration::hours(49))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        ledger
            .authorize_due(starts - Duration::hours(47))
            .await
            .unwrap(),
        1
    );
    let captured = payment(&platform, &ada, &payment_id).await;
    assert_eq!(captured["status"], "succeeded", "{captured}");
    assert_eq!(captured["amount_captured"], 6000);
    assert_eq!(
        ledger
            .authorize_due(starts - Duration::hours(46))
            .await
            .unwrap(),
        0,
        "once"
    );
    assert_eq!(
        payment_events(&platform, &payment_id).await,
        ["failed", "card_saved", "authorized", "captured"]
    );
    let visit = platform
        .appointment_becomes(&ada, id(&reserved), "SCHEDULED")
        .await;
    assert_eq!(visit["payment_id"], payment_id.as_str());
}

async fn a_refused_authorisation_asks_for_another_card_which_then_pays(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let (_, bea) = platform.register_patient("far-bea@clinic.example").await;
    let (reserved, payment_id, starts) = saved_three_weeks_ahead(
        &platform,
        &clinic,
        &bea,
        11,
        "pm_card_authenticationRequired",
    )
    .await;
    assert_eq!(
        platform.approve(&clinic, id(&reserved)).await.status,
        StatusCode::OK
    );

    // The bank wants Bea to authenticate: she is asked for it by a deadline, the slot kept.
    let when = starts - Duration::hours(47);
    assert_eq!(ledger.authorize_due(when).await.unwrap(), 0, "refused");
    let refused = payment(&platform, &bea, &payment_id).await;
    assert_eq!(refused["status"], "requires_payment_method");
    assert_eq!(at(&refused, "card_deadline"), when + Duration::hours(24));
    assert!(
        refused["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("pi_")
    );
    assert_eq!(
        platform
            .appointment_becomes(&bea, id(&reserved), "SCHEDULED")
            .await["status"],
        "SCHEDULED"
    );
    // She confirms with another card: authorised, and captured as the approval asked.
    let paid = platform.pay(&bea, &payment_id, "pm_card_visa").await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    assert_eq!(paid.body["status"], "succeeded");
    assert!(paid.body["card_deadline"].is_null());
    assert_eq!(
        ledger
            .cancel_unmended(when + Duration::hours(25))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        payment_events(&platform, &payment_id).await,
        ["card_saved", "action_required", "authorized", "captured"]
    );
}

async fn without_another_card_by_the_deadline_the_visit_is_cancelled_and_offered_to_the_waitlist(
    bus: Bus,
) {
    // The off-session decline: the card saves, then is declined when charged.
    cancelled_past_the_deadline(bus, "pm_card_chargeCustomerFail").await;
}

async fn a_card_whose_bank_asks_for_authentication_and_gets_none_cancels_the_visit_too(bus: Bus) {
    cancelled_past_the_deadline(bus, "pm_card_authenticationRequired").await;
}

/// Saves `card` for a visit three weeks ahead with someone on its waitlist; the card is
/// refused at T-48 h, no other comes, and past the deadline the visit is cancelled and the
/// slot offered to the one waiting.
async fn cancelled_past_the_deadline(bus: Bus, card: &str) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let booking = instance(&platform).await;
    let (_, cy) = platform.register_patient("far-cy@clinic.example").await;
    let (_, dan) = platform.register_patient("far-dan@clinic.example").await;
    let (reserved, payment_id, starts) =
        saved_three_weeks_ahead(&platform, &clinic, &cy, 12, card).await;
    let joined = platform
        .book(
            Method::POST,
            "/api/waitlist",
            Some(&dan),
            Some(json!({"doctor_id": clinic.doctor_id, "from": starts.date_naive(), "to": starts.date_naive(),
                        "earliest": "12:00", "latest": "13:00"})),
        )
        .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{:?}", joined.body);

    let when = starts - Duration::hours(47);
    assert_eq!(ledger.authorize_due(when).await.unwrap(), 0);
    assert_eq!(
        payment(&platform, &cy, &payment_id).await["status"],
        "requires_payment_method"
    );
    assert_eq!(
        ledger
            .cancel_unmended(when + Duration::hours(23))
            .await
            .unwrap(),
        0,
        "before the deadline"
    );
    assert_eq!(
        ledger
            .cancel_unmended(when + Duration::hours(25))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        payment(&platform, &cy, &payment_id).await["status"],
        "canceled"
    );
    let cancelled = platform
        .appointment_becomes(&cy, id(&reserved), "CANCELLED")
        .await;
    assert!(
        cancelled["status_reason"]
            .as_str()
            .unwrap()
            .contains("could not be charged")
    );
    assert_eq!(
        payment_events(&platform, &payment_id).await,
        ["card_saved", "action_required", "expired"]
    );
    // The freed slot goes to Dan, first in line.
    let offered = polyclinic_testing::eventually("Dan's offer", || async {
        booking.offer_openings(Utc::now()).await.unwrap();
        let entries = platform
            .book(Method::GET, "/api/waitlist/mine", Some(&dan), None)
            .await;
        entries.body[0]["offer"]["appointment_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let offer = platform
        .appointment_becomes(&dan, &offered, "OFFERED")
        .await;
    assert_eq!(at(&offer, "starts_at"), starts);
}

async fn an_authorisation_that_would_lapse_before_approval_is_renewed_with_the_saved_card(
    bus: Bus,
) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let (_, eve) = platform.register_patient("far-eve@clinic.example").await;
    // Inside the authorisation window (under six days ahead): authorised at once. Far
    // enough ahead that six days on the visit is still to come.
    let earliest = Utc::now() + Duration::days(5) + Duration::hours(16);
    let latest = Utc::now() + Duration::days(5) + Duration::hours(23);
    let starts = platform
        .free_slots(&clinic.doctor_id, Some(&earliest.date_naive().to_string()))
        .await
        .into_iter()
        .map(|slot| slot.parse::<DateTime<Utc>>().unwrap())
        .find(|slot| (earliest..=latest).contains(slot))
        .expect("a free slot");
    let paid = platform
        .paid_appointment(&eve, &clinic.doctor_id, &starts.to_rfc3339())
        .await;
    let payment_id = paid["payment_id"].as_str().unwrap().to_owned();
    let first = payment(&platform, &eve, &payment_id).await;
    assert_eq!(first["status"], "requires_capture");
    let authorised_at = at(&first, "authorized_at");

    // Six days on, unapproved: the authorisation would lapse within a day, so it is renewed.
    let later = authorised_at + Duration::days(6) + Duration::minutes(1);
    assert_eq!(
        ledger
            .renew_lapsing(authorised_at + Duration::days(5))
            .await
            .unwrap(),
        0
    );
    assert_eq!(ledger.renew_lapsing(later).await.unwrap(), 1);
    let renewed = payment(&platform, &eve, &payment_id).await;
    assert_eq!(renewed["status"], "requires_capture");
    assert_eq!(at(&renewed, "authorized_at"), later);
    // Approved now, the renewed authorisation is captured.
    let approved = platform.approve(&clinic, id(&paid)).await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    let captured = payment(&platform, &eve, &payment_id).await;
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(
        payment_events(&platform, &payment_id).await,
        ["authorized", "authorized", "captured"]
    );
    let pool = polyclinic_db::pool(&platform.config, Service::Payments).unwrap();
    let intents: Vec<String> = sqlx::query_scalar(
        "select status from simulated_intents where metadata->>'appointment_id' = $1 order by created_at",
    )
    .bind(id(&paid))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        intents,
        ["canceled", "succeeded"],
        "the first hold was released"
    );
}

async fn a_card_authorised_two_days_before_is_captured_when_the_visit_is_approved(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let (_, ivy) = platform.register_patient("far-ivy@clinic.example").await;
    let (reserved, payment_id, starts) =
        saved_three_weeks_ahead(&platform, &clinic, &ivy, 13, "pm_card_visa").await;
    assert_eq!(
        ledger
            .authorize_due(starts - Duration::hours(47))
            .await
            .unwrap(),
        1
    );
    let authorised = payment(&platform, &ivy, &payment_id).await;
    assert_eq!(
        authorised["status"], "requires_capture",
        "nothing taken before approval"
    );
    let approved = platform.approve(&clinic, id(&reserved)).await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    let captured = payment(&platform, &ivy, &payment_id).await;
    assert_eq!(
        (
            captured["status"].clone(),
            captured["amount_captured"].clone()
        ),
        (json!("succeeded"), json!(6000))
    );
    assert_eq!(
        payment_events(&platform, &payment_id).await,
        ["card_saved", "authorized", "captured"]
    );
}

async fn a_renewal_refused_and_not_mended_cancels_the_visit(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let (_, jo) = platform.register_patient("far-jo@clinic.example").await;
    let earliest = Utc::now() + Duration::days(5) + Duration::hours(16);
    let latest = Utc::now() + Duration::days(5) + Duration::hours(23);
    let starts = platform
        .free_slots(&clinic.doctor_id, Some(&earliest.date_naive().to_string()))
        .await
        .into_iter()
        .map(|slot| slot.parse::<DateTime<Utc>>().unwrap())
        .find(|slot| (earliest..=latest).contains(slot))
        .expect("a free slot");
    // Authorised with Jo present; renewed without her, her bank asks for authentication.
    let reserved = platform
        .reserve(&jo, &clinic.doctor_id, &starts.to_rfc3339())
        .await;
    let payment_id = reserved["payment"]["id"].as_str().unwrap().to_owned();
    let paid = platform
        .pay(&jo, &payment_id, "pm_card_authenticationRequired")
        .await;
    assert_eq!(paid.body["status"], "requires_capture", "{:?}", paid.body);
    platform
        .appointment_becomes(&jo, id(&reserved), "PAID")
        .await;
    let later = at(&paid.body, "authorized_at") + Duration::days(6) + Duration::minutes(1);
    assert_eq!(ledger.renew_lapsing(later).await.unwrap(), 0, "refused");
    let asked = payment(&platform, &jo, &payment_id).await;
    assert_eq!(asked["status"], "requires_payment_method");
    assert_eq!(
        ledger
            .cancel_unmended(later + Duration::hours(25))
            .await
            .unwrap(),
        1
    );
    platform
        .appointment_becomes(&jo, id(&reserved), "CANCELLED")
        .await;
    assert_eq!(
        payment_events(&platform, &payment_id).await,
        ["authorized", "action_required", "expired"]
    );
    let pool = polyclinic_db::pool(&platform.config, Service::Payments).unwrap();
    let intents: Vec<String> = sqlx::query_scalar(
        "select status from simulated_intents where metadata->>'appointment_id' = $1 order by created_at",
    )
    .bind(id(&reserved))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        intents,
        ["canceled", "canceled"],
        "no hold is left on the card"
    );
}

crate::on_both_buses!(
    a_visit_three_weeks_ahead_is_saved_authorised_two_days_before_and_captured_after_approval,
    a_card_authorised_two_days_before_is_captured_when_the_visit_is_approved,
    a_card_whose_bank_asks_for_authentication_and_gets_none_cancels_the_visit_too,
    a_renewal_refused_and_not_mended_cancels_the_visit,
    a_refused_authorisation_asks_for_another_card_which_then_pays,
    without_another_card_by_the_deadline_the_visit_is_cancelled_and_offered_to_the_waitlist,
    an_authorisation_that_would_lapse_before_approval_is_renewed_with_the_saved_card,
);

#[tokio::test]
async fn a_card_confirmed_with_the_provider_after_a_refusal_is_captured_when_the_payment_is_read_back()
 {
    // What Stripe.js and a webhook (or the reconciliation) do in production: the patient
    // confirms the refused intent with the provider, and the ledger learns of it by reading it.
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let (_, gil) = platform.register_patient("far-gil@clinic.example").await;
    let (reserved, payment_id, starts) = saved_three_weeks_ahead(
        &platform,
        &clinic,
        &gil,
        14,
        "pm_card_authenticationRequired",
    )
    .await;
    assert_eq!(
        platform.approve(&clinic, id(&reserved)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        ledger
            .authorize_due(starts - Duration::hours(47))
            .await
            .unwrap(),
        0
    );
    let pool = polyclinic_db::pool(&platform.config, Service::Payments).unwrap();
    let intent: String =
        sqlx::query_scalar("select provider_intent_id from payments where id = $1::uuid")
            .bind(&payment_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let provider = polyclinic_payments::provider::Provider::Simulated(
        polyclinic_payments::provider::simulated::Simulated::new(pool.clone()),
    );
    provider
        .confirm(&intent, "pm_card_visa", "browser-confirm")
        .await
        .unwrap();
    ledger
        .sync(
            payment_id.parse::<uuid::Uuid>().unwrap().into(),
            "reconciliation",
            &polyclinic_events::EventContext::default(),
        )
        .await
        .unwrap();
    let paid = payment(&platform, &gil, &payment_id).await;
    assert_eq!(
        paid["status"], "succeeded",
        "the approval's capture followed"
    );
    assert!(paid["card_deadline"].is_null());
}

#[tokio::test]
async fn a_saved_card_the_provider_no_longer_knows_asks_the_patient_for_another() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let ledger = ledger(&platform);
    let (_, hal) = platform.register_patient("far-hal@clinic.example").await;
    let (_, payment_id, starts) =
        saved_three_weeks_ahead(&platform, &clinic, &hal, 15, "pm_card_visa").await;
    // The card was detached at the provider meanwhile.
    let pool = polyclinic_db::pool(&platform.config, Service::Payments).unwrap();
    sqlx::query("update payments set payment_method = 'pm_detached' where id = $1::uuid")
        .bind(&payment_id)
        .execute(&pool)
        .await
        .unwrap();
    let when = starts - Duration::hours(47);
    assert_eq!(ledger.authorize_due(when).await.unwrap(), 0);
    let asked = payment(&platform, &hal, &payment_id).await;
    assert_eq!(asked["status"], "requires_payment_method");
    assert_eq!(at(&asked, "card_deadline"), when + Duration::hours(24));
    assert!(
        asked["client_secret"].as_str().unwrap().starts_with("pi_"),
        "an intent to pay with another card: {asked}"
    );
    assert_eq!(
        payment_events(&platform, &payment_id).await,
        ["card_saved", "action_required"]
    );
    let paid = platform.pay(&hal, &payment_id, "pm_card_visa").await;
    assert_eq!(paid.body["status"], "requires_capture", "{:?}", paid.body);
}
