//! Payment operations with the simulated provider on real PostgreSQL: state, history and the
//! events announcing each change.

use polyclinic_contracts::PaymentId;
use polyclinic_events::EventContext;
use polyclinic_payments::ledger::{CardTiming, Ledger, LedgerError};
use polyclinic_payments::provider::Provider;
use polyclinic_payments::provider::simulated::Simulated;
use polyclinic_testing::{Service, TestPlatform};
use uuid::Uuid;

async fn ledger(platform: &TestPlatform) -> (Ledger, sqlx::PgPool) {
    let pool = polyclinic_db::schema_pool(&platform.db().url(), "payments", 8, "test").unwrap();
    (
        Ledger::new(
            pool.clone(),
            Provider::Simulated(Simulated::new(pool.clone())),
            CardTiming::default(),
        ),
        pool,
    )
}

async fn announced(pool: &sqlx::PgPool, payment: PaymentId) -> Vec<String> {
    sqlx::query_scalar("select event_type from outbox where key = $1 order by seq")
        .bind(payment.to_string())
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn actions(pool: &sqlx::PgPool, payment: PaymentId) -> Vec<String> {
    sqlx::query_scalar("select action from payment_history where payment_id = $1 order by id")
        .bind(payment)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_payment_goes_from_declined_to_authorised_captured_and_refunded_with_history_and_events()
{
    let platform = TestPlatform::start(&[Service::Payments]).await;
    let (ledger, pool) = ledger(&platform).await;
    let context = EventContext::default();
    let appointment = Uuid::now_v7();
    let created = ledger
        .create(
            appointment.into(),
            Uuid::now_v7().into(),
            (6000, "EUR"),
            None,
            "appointments",
        )
        .await
        .unwrap();
    let again = ledger
        .create(
            appointment.into(),
            Uuid::now_v7().into(),
            (6000, "EUR"),
            None,
            "appointments",
        )
        .await
        .unwrap();
    assert_eq!(created.id, again.id, "one payment per appointment");
    assert_eq!(created.status, "requires_payment_method");
    assert!(created.client_secret.is_some());

    let declined = ledger
        .confirm(created.id, "pm_card_chargeDeclined", "patient", &context)
        .await
        .unwrap_err();
    assert!(matches!(declined, LedgerError::Declined(_)), "{declined:?}");
    let authorised = ledger
        .confirm(created.id, "pm_card_visa", "patient", &context)
        .await
        .unwrap();
    assert_eq!(authorised.status, "requires_capture");
    assert!(authorised.authorized_at.is_some());

    let captured = ledger
        .capture(created.id, Some(5000), "admin", &context)
        .await
        .unwrap();
    assert_eq!(
        (captured.status.as_str(), captured.amount_captured),
        ("succeeded", 5000)
    );
    let refunded = ledger
        .refund(created.id, Some(1000), "admin", &context)
        .await
        .unwrap();
    assert_eq!(refunded.amount_refunded, 1000);
    let rest = ledger
        .refund(created.id, None, "admin", &context)
        .await
        .unwrap();
    assert_eq!(rest.amount_refunded, 5000);
    assert!(matches!(
        ledger.refund(created.id, Some(1), "admin", &context).await,
        Err(LedgerError::BadAmount { max: 0 })
    ));

    assert_eq!(
        actions(&pool, created.id).await,
        [
            "created",
            "declined",
            "authorized",
            "captured",
            "refunded",
            "refunded"
        ]
    );
    assert_eq!(
        announced(&pool, created.id).await,
        [
            "polyclinic.payment.failed.v1",
            "polyclinic.payment.authorized.v1",
            "polyclinic.payment.captured.v1",
            "polyclinic.payment.refunded.v1",
            "polyclinic.payment.refunded.v1",
        ]
    );
}

#[tokio::test]
async fn a_voided_payment_cannot_be_captured_and_a_lapsed_authorisation_is_announced_as_expired() {
    let platform = TestPlatform::start(&[Service::Payments]).await;
    let (ledger, pool) = ledger(&platform).await;
    let context = EventContext::default();
    let voided = ledger
        .create(
            Uuid::now_v7().into(),
            Uuid::now_v7().into(),
            (3000, "EUR"),
            None,
            "appointments",
        )
        .await
        .unwrap();
    ledger
        .confirm(voided.id, "pm_card_visa", "patient", &context)
        .await
        .unwrap();
    assert_eq!(
        ledger
            .void(voided.id, "admin", &context)
            .await
            .unwrap()
            .status,
        "canceled"
    );
    assert!(matches!(
        ledger.capture(voided.id, None, "admin", &context).await,
        Err(LedgerError::WrongState(_))
    ));
    assert_eq!(
        announced(&pool, voided.id).await.last().unwrap(),
        "polyclinic.payment.voided.v1"
    );

    let lapsing = ledger
        .create(
            Uuid::now_v7().into(),
            Uuid::now_v7().into(),
            (3000, "EUR"),
            None,
            "appointments",
        )
        .await
        .unwrap();
    ledger
        .confirm(lapsing.id, "pm_card_visa", "patient", &context)
        .await
        .unwrap();
    sqlx::query("update simulated_intents set authorized_at = now() - interval '8 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update payments set authorized_at = now() - interval '8 days' where id = $1")
        .bind(lapsing.id)
        .execute(&pool)
        .await
        .unwrap();
    let synced = ledger
        .sync(lapsing.id, "reconciliation", &context)
        .await
        .unwrap();
    assert_eq!(synced.status, "canceled");
    assert_eq!(
        announced(&pool, lapsing.id).await.last().unwrap(),
        "polyclinic.payment.expired.v1"
    );
    let unchanged = ledger
        .sync(lapsing.id, "reconciliation", &context)
        .await
        .unwrap();
    assert_eq!(
        unchanged.updated_at, synced.updated_at,
        "nothing moves twice"
    );
}

#[tokio::test]
async fn two_captures_of_one_payment_at_once_capture_once() {
    let platform = TestPlatform::start(&[Service::Payments]).await;
    let (ledger, pool) = ledger(&platform).await;
    let context = EventContext::default();
    let payment = ledger
        .create(
            Uuid::now_v7().into(),
            Uuid::now_v7().into(),
            (3000, "EUR"),
            None,
            "appointments",
        )
        .await
        .unwrap();
    ledger
        .confirm(payment.id, "pm_card_visa", "patient", &context)
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        ledger.capture(payment.id, None, "admin-1", &context),
        ledger.capture(payment.id, None, "admin-2", &context)
    );
    let succeeded = [first.is_ok(), second.is_ok()]
        .iter()
        .filter(|ok| **ok)
        .count();
    assert_eq!(succeeded, 1, "{first:?} {second:?}");
    let captured = announced(&pool, payment.id)
        .await
        .iter()
        .filter(|t| t.ends_with("captured.v1"))
        .count();
    assert_eq!(captured, 1);
}
