//! `/api/payments` through the gateway with real tokens and the simulated provider.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

async fn platform() -> TestPlatform {
    TestPlatform::start(&[Service::Identity, Service::Payments, Service::Gateway]).await
}

async fn post_with_key(
    platform: &TestPlatform,
    path: &str,
    token: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value, bool) {
    let response = platform
        .client()
        .post(platform.url(Service::Gateway, path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        replayed,
    )
}

#[tokio::test]
async fn a_patient_pays_with_a_test_card_and_an_admin_captures_and_refunds() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let (patient, patient_token) = platform.register_patient("payer@clinic.example").await;
    let (_, stranger) = platform.register_patient("stranger@clinic.example").await;
    let body = json!({"appointment_id": Uuid::now_v7(), "patient_id": patient["id"], "amount": {"amount": 6000, "currency": "EUR"}});

    let (status, created, replayed) =
        post_with_key(&platform, "/api/payments", &admin, "create-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(!replayed);
    assert_eq!(created["status"], "requires_payment_method");
    assert!(created["client_secret"].is_string());
    assert!(created.get("provider_intent_id").is_none());
    let (status, again, replayed) =
        post_with_key(&platform, "/api/payments", &admin, "create-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, created, "the stored answer");
    let mut other = body.clone();
    other["amount"]["amount"] = json!(1);
    let (status, reused, _) =
        post_with_key(&platform, "/api/payments", &admin, "create-1", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused["code"], "idempotency_key_reused");

    let id = created["id"].as_str().unwrap();
    let path = format!("/api/payments/{id}");
    for (method, suffix) in [(Method::GET, ""), (Method::POST, "/confirm")] {
        let reply = platform
            .call(
                method,
                &format!("{path}{suffix}"),
                Some(&stranger),
                Some(json!({"payment_method": "pm_card_visa"})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "another patient's payment {suffix}"
        );
    }
    let declined = platform
        .call(
            Method::POST,
            &format!("{path}/confirm"),
            Some(&patient_token),
            Some(json!({"payment_method": "pm_card_chargeDeclined"})),
        )
        .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.code(), "card_declined");
    let authorised = platform
        .call(
            Method::POST,
            &format!("{path}/confirm"),
            Some(&patient_token),
            Some(json!({"payment_method": "pm_card_visa"})),
        )
        .await;
    assert_eq!(authorised.status, StatusCode::OK, "{:?}", authorised.body);
    assert_eq!(authorised.body["status"], "requires_capture");

    let by_patient = platform
        .call(
            Method::POST,
            &format!("{path}/capture"),
            Some(&patient_token),
            None,
        )
        .await;
    assert_eq!(by_patient.status, StatusCode::FORBIDDEN);
    let (status, captured, _) = post_with_key(
        &platform,
        &format!("{path}/capture"),
        &admin,
        "capture-1",
        json!({"amount": 5000}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{captured}");
    assert_eq!(
        (
            captured["status"].as_str(),
            captured["amount_captured"].as_i64()
        ),
        (Some("succeeded"), Some(5000))
    );
    let (_, replayed_capture, replayed) = post_with_key(
        &platform,
        &format!("{path}/capture"),
        &admin,
        "capture-1",
        json!({"amount": 5000}),
    )
    .await;
    assert!(
        replayed,
        "a retried capture is answered, not captured again"
    );
    assert_eq!(replayed_capture["amount_captured"], 5000);

    let late_void = platform
        .call(Method::POST, &format!("{path}/cancel"), Some(&admin), None)
        .await;
    assert_eq!(late_void.status, StatusCode::CONFLICT);
    assert_eq!(late_void.code(), "payment_state");
    let refund = platform
        .call(
            Method::POST,
            &format!("{path}/refund"),
            Some(&admin),
            Some(json!({"amount": 2000})),
        )
        .await;
    assert_eq!(refund.body["amount_refunded"], 2000);
    let too_much = platform
        .call(
            Method::POST,
            &format!("{path}/refund"),
            Some(&admin),
            Some(json!({"amount": 9000})),
        )
        .await;
    assert_eq!(
        (too_much.status, too_much.code()),
        (StatusCode::CONFLICT, "invalid_amount")
    );

    let mine = platform
        .call(
            Method::GET,
            "/api/payments/mine",
            Some(&patient_token),
            None,
        )
        .await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    let theirs = platform
        .call(Method::GET, "/api/payments/mine", Some(&stranger), None)
        .await;
    assert_eq!(theirs.body["items"], json!([]));
    let filtered = platform
        .call(
            Method::GET,
            &format!(
                "/api/payments?patient_id={}",
                patient["id"].as_str().unwrap()
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(filtered.body["items"][0]["id"], created["id"]);
}

#[tokio::test]
async fn a_platform_service_states_the_price_of_a_payment_and_a_patient_cannot() {
    let platform = platform().await;
    let secret = platform.config.client_secret(Service::Appointments);
    let service = platform
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "polyclinic-appointments"),
            ("client_secret", &secret),
        ])
        .await;
    let token = service.body["access_token"].as_str().unwrap().to_owned();
    let body = json!({"appointment_id": Uuid::now_v7(), "patient_id": Uuid::now_v7(), "amount": {"amount": 3000, "currency": "EUR"}});
    let created = platform
        .call(
            Method::POST,
            "/api/payments",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);

    let (_, patient) = platform.register_patient("sneaky@clinic.example").await;
    let refused = platform
        .call_service(
            Service::Payments,
            Method::POST,
            "/api/payments",
            Some(&patient),
            Some(body),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "price_set_by_appointment"),
        "a patient's payment is priced by the appointment, never by the patient"
    );
    let doctor_admin = platform.admin_token().await;
    let department = platform.create_department(&doctor_admin, "Billing").await;
    let (_, doctor) = platform
        .create_staff(
            &doctor_admin,
            "DOCTOR",
            "dr.pay@clinic.example",
            department["id"].as_str(),
        )
        .await;
    let forbidden = platform
        .call_service(
            Service::Payments,
            Method::POST,
            "/api/payments",
            Some(&doctor),
            Some(json!({"appointment_id": Uuid::now_v7()})),
        )
        .await;
    assert_eq!(
        forbidden.status,
        StatusCode::FORBIDDEN,
        "the service decides too, not only the gateway"
    );
    let bad = platform
        .call(
            Method::POST,
            "/api/payments",
            Some(&token),
            Some(json!({"appointment_id": "nope"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}
