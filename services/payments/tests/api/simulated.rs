//! The simulated provider on real PostgreSQL: Stripe's state machine, test cards, idempotency
//! and the 7-day authorisation expiry.

use polyclinic_payments::provider::simulated::Simulated;
use polyclinic_payments::provider::{Provider, ProviderError, ProviderStatus};
use polyclinic_testing::{Service, TestPlatform};

async fn provider(platform: &TestPlatform) -> (Provider, sqlx::PgPool) {
    let pool = polyclinic_db::schema_pool(&platform.db().url(), "payments", 4, "test").unwrap();
    (Provider::Simulated(Simulated::new(pool.clone())), pool)
}

#[tokio::test]
async fn a_payment_is_authorised_captured_in_part_and_refunded_in_two_steps() {
    let platform = TestPlatform::start(&[Service::Payments]).await;
    let (provider, _) = provider(&platform).await;
    let intent = provider
        .create(6000, "EUR", "cus_test", "appointment-1", "create-1")
        .await
        .unwrap();
    assert_eq!(intent.status, ProviderStatus::RequiresPaymentMethod);
    assert!(
        intent
            .client_secret
            .as_deref()
            .unwrap()
            .starts_with(&intent.id)
    );

    let authorised = provider
        .confirm(&intent.id, "pm_card_visa", "confirm-1")
        .await
        .unwrap();
    assert_eq!(authorised.status, ProviderStatus::RequiresCapture);
    let captured = provider
        .capture(&intent.id, Some(5000), "capture-1")
        .await
        .unwrap();
    assert_eq!(
        (captured.status, captured.amount_received),
        (ProviderStatus::Succeeded, 5000)
    );
    assert_eq!(
        provider
            .refund(&intent.id, Some(2000), "refund-1")
            .await
            .unwrap(),
        2000
    );
    assert_eq!(
        provider
            .refund(&intent.id, Some(2000), "refund-1")
            .await
            .unwrap(),
        2000,
        "a repeated key is answered again, not refunded again"
    );
    assert_eq!(
        provider.refund(&intent.id, None, "refund-2").await.unwrap(),
        3000,
        "the rest"
    );
    assert!(matches!(
        provider.refund(&intent.id, Some(1), "refund-3").await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn the_same_key_gets_the_same_answer_and_a_reused_key_is_refused() {
    let platform = TestPlatform::start(&[Service::Payments]).await;
    let (provider, _) = provider(&platform).await;
    let first = provider
        .create(3000, "EUR", "cus_test", "appointment-2", "create-2")
        .await
        .unwrap();
    let again = provider
        .create(3000, "EUR", "cus_test", "appointment-2", "create-2")
        .await
        .unwrap();
    assert_eq!(first, again);
    let reused = provider
        .create(9999, "EUR", "cus_test", "appointment-3", "create-2")
        .await;
    assert!(matches!(reused, Err(ProviderError::Refused(_))));
}

#[tokio::test]
async fn test_cards_decline_or_succeed_and_unknown_cards_are_refused() {
    let platform = TestPlatform::start(&[Service::Payments]).await;
    let (provider, _) = provider(&platform).await;
    let intent = provider
        .create(3000, "EUR", "cus_test", "appointment-4", "create-4")
        .await
        .unwrap();
    assert!(matches!(
        provider
            .confirm(&intent.id, "4000000000000002", "confirm-4a")
            .await,
        Err(ProviderError::Declined(_))
    ));
    assert_eq!(
        provider.retrieve(&intent.id).await.unwrap().status,
        ProviderStatus::RequiresPaymentMethod,
        "open for another card"
    );
    assert!(matches!(
        provider
            .confirm(&intent.id, "pm_card_nonsense", "confirm-4b")
            .await,
        Err(ProviderError::Refused(_))
    ));
    let authorised = provider
        .confirm(&intent.id, "4242 4242 4242 4242", "confirm-4c")
        .await
        .unwrap();
    assert_eq!(authorised.status, ProviderStatus::RequiresCapture);
    assert!(matches!(
        provider.capture(&intent.id, Some(3001), "capture-4").await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn an_authorisation_older_than_seven_days_is_canceled_and_cannot_be_captured() {
    let platform = TestPlatform::start(&[Service::Payments]).await;
    let (provider, pool) = provider(&platform).await;
    let intent = provider
        .create(3000, "EUR", "cus_test", "appointment-5", "create-5")
        .await
        .unwrap();
    provider
        .confirm(&intent.id, "pm_card_visa", "confirm-5")
        .await
        .unwrap();
    sqlx::query("update simulated_intents set authorized_at = now() - interval '7 days 1 second' where id = $1")
        .bind(&intent.id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        provider.retrieve(&intent.id).await.unwrap().status,
        ProviderStatus::Canceled
    );
    assert!(matches!(
        provider.capture(&intent.id, None, "capture-5").await,
        Err(ProviderError::Refused(_))
    ));
}
