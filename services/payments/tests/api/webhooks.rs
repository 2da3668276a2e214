//! Stripe's webhooks against the payments service in `stripe` mode, with the in-test Stripe.

use polyclinic_payments::domain::webhook;
use polyclinic_payments::provider::stripe::StripeClient;
use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::stripe::{KEY, fake_stripe};

const SECRET: &str = "whsec_test_polyclinic";

async fn send(platform: &TestPlatform, event: &Value, secret: &str, age_secs: i64) -> StatusCode {
    let body = serde_json::to_vec(event).unwrap();
    let header = webhook::sign(&body, secret, chrono::Utc::now().timestamp() - age_secs);
    platform
        .client()
        .post(platform.url(Service::Gateway, "/api/payments/webhooks/stripe"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "data": {"object": object}})
}

#[tokio::test]
async fn a_signed_webhook_authorises_the_payment_once_and_late_or_forged_ones_change_nothing() {
    let (stripe_address, _) = fake_stripe().await;
    let platform = TestPlatform::start_with(
        &[Service::Identity, Service::Payments, Service::Gateway],
        |config, _| {
            config.payments_provider = polyclinic_config::PaymentsProvider::Stripe;
            config.stripe.secret_key = Some(KEY.to_owned());
            config.stripe.api_base = format!("http://{stripe_address}");
            config.stripe.webhook_secrets = vec!["whsec_retired".to_owned(), SECRET.to_owned()];
        },
    )
    .await;
    let admin = platform.admin_token().await;
    let body = json!({"appointment_id": Uuid::now_v7(), "patient_id": Uuid::now_v7(), "amount": {"amount": 6000, "currency": "EUR"}});
    let created = platform
        .call(Method::POST, "/api/payments", Some(&admin), Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let intent: String =
        sqlx::query_scalar("select provider_intent_id from payments.payments where id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();

    // The patient's browser confirms with Stripe directly; we learn of it from the webhook.
    StripeClient::new(&format!("http://{stripe_address}"), KEY)
        .confirm_intent(&intent, "pm_card_visa", "browser-confirm")
        .await
        .unwrap();
    let capturable = event(
        "evt_1",
        "payment_intent.amount_capturable_updated",
        json!({"id": intent, "object": "payment_intent"}),
    );
    for (secret, age, expected) in [
        ("whsec_guessed", 0, StatusCode::BAD_REQUEST),
        (SECRET, 600, StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            send(&platform, &capturable, secret, age).await,
            expected,
            "{secret} {age}"
        );
    }
    assert_eq!(
        platform
            .call(
                Method::GET,
                &format!("/api/payments/{id}"),
                Some(&admin),
                None
            )
            .await
            .body["status"],
        "requires_payment_method"
    );

    assert_eq!(
        send(&platform, &capturable, SECRET, 5).await,
        StatusCode::OK
    );
    assert_eq!(
        send(&platform, &capturable, SECRET, 5).await,
        StatusCode::OK,
        "a redelivery is acknowledged"
    );
    let payment = platform
        .call(
            Method::GET,
            &format!("/api/payments/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(payment.body["status"], "requires_capture");
    let authorized: i64 = sqlx::query_scalar("select count(*) from payments.outbox where event_type = 'polyclinic.payment.authorized.v1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(authorized, 1, "announced once");

    let captured = platform
        .call(
            Method::POST,
            &format!("/api/payments/{id}/capture"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(captured.body["status"], "succeeded", "{:?}", captured.body);
    let late = event(
        "evt_2",
        "payment_intent.amount_capturable_updated",
        json!({"id": intent, "object": "payment_intent"}),
    );
    assert_eq!(send(&platform, &late, SECRET, 0).await, StatusCode::OK);
    let still = platform
        .call(
            Method::GET,
            &format!("/api/payments/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        still.body["status"], "succeeded",
        "a late event does not move the payment back"
    );

    let refunded = event(
        "evt_3",
        "charge.refunded",
        json!({"id": "ch_1", "object": "charge", "payment_intent": intent, "amount_refunded": 1500}),
    );
    assert_eq!(
        send(&platform, &refunded, "whsec_retired", 0).await,
        StatusCode::OK,
        "the retired secret still verifies"
    );
    let after = platform
        .call(
            Method::GET,
            &format!("/api/payments/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(after.body["amount_refunded"], 1500);
    pool.close().await;
}
