//! Attacks on the running platform that its first suites did not catch, each as the attacker
//! (or the hurried clinician) would try it over HTTP through the gateway, and at the service
//! where the defence is the service's own: a burst of password guesses, an allergy declared
//! where the prescribing check did not look, a demoted admin's old token, an array where an
//! object is documented, one visitor exhausting everyone's anonymous budget, two approvals of
//! one refill at once, a service token used beyond its purpose, the service rewriting its own
//! audit trail, a role granted by another Keycloak client (in the identity service's Keycloak
//! tests), and data shown to more people than need it.

use std::time::Duration;

use polyclinic_testing::{Clinic, Service, TestPlatform, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A token request through the gateway as the client at `address` (the test client is on
/// loopback, which every service trusts as a proxy by default, as the web app and an
/// ingress are trusted in a deployment): the status, the body and `Retry-After`.
async fn login_from(
    client: reqwest::Client,
    token_url: String,
    address: String,
    login: String,
    password: String,
) -> (StatusCode, Value, Option<String>) {
    let response = client
        .post(token_url)
        .header("x-forwarded-for", address)
        .form(&[
            ("grant_type", "password"),
            ("username", login.as_str()),
            ("password", password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

#[tokio::test]
async fn a_burst_of_password_guesses_gets_five_checked_and_cannot_lock_the_account_from_elsewhere()
{
    let platform = TestPlatform::start(&[Service::Gateway, Service::Identity]).await;
    platform.register_patient("target@attack.example").await;
    let attacker = "203.0.113.7";
    let token_url = platform.url(Service::Gateway, "/api/auth/token");
    let login = |address: &str, account: &str, password: &str| {
        login_from(
            platform.client().clone(),
            token_url.clone(),
            address.to_owned(),
            account.to_owned(),
            password.to_owned(),
        )
    };

    let mut guesses = tokio::task::JoinSet::new();
    for n in 0..40 {
        guesses.spawn(login(
            attacker,
            "target@attack.example",
            &format!("guess number {n}"),
        ));
    }
    let answers = guesses.join_all().await;
    let checked = answers
        .iter()
        .filter(|(status, body, _)| {
            *status == StatusCode::BAD_REQUEST && body["code"] == "invalid_grant"
        })
        .count();
    let throttled: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(checked, 5, "at most five guesses are checked: {answers:?}");
    assert_eq!(throttled.len(), 35);
    for (_, body, retry_after) in &throttled {
        assert_eq!(body["code"], "too_many_login_attempts");
        let seconds: u64 = retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=900).contains(&seconds), "{seconds}");
    }

    // The right password from the attacker's address is refused too, once the limit is hit.
    let (status, body, _) = login(attacker, "target@attack.example", "patient passphrase").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // The patient, elsewhere, signs in.
    let (status, body, _) = login(
        "198.51.100.20",
        "target@attack.example",
        "patient passphrase",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An account that does not exist is throttled exactly alike.
    let mut statuses = Vec::new();
    for n in 0..7 {
        let (status, _, _) = login(attacker, "nobody@attack.example", &format!("x{n}")).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429, 429]);

    // Guesses from many addresses hit the account's short global cap, which shuts the
    // account for every address only until it ends.
    let mut capped = None;
    for n in 1..=40 {
        let (status, body, retry_after) = login(
            &format!("192.0.2.{n}"),
            "target@attack.example",
            "a wrong guess",
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            capped = Some((n, body, retry_after));
            break;
        }
    }
    let (n, body, retry_after) = capped.expect("the account's cap is reached");
    assert_eq!(body["code"], "too_many_login_attempts");
    assert!(
        n > 5,
        "each address got its own allowance first: capped at {n}"
    );
    let seconds: u64 = retry_after.unwrap().parse().unwrap();
    assert!(seconds <= 300, "a short cap: {seconds} s");
}

/// A platform of every service with a clinic and a patient whose appointment with the
/// clinic's doctor and nurse is SCHEDULED.
async fn care_setting(
    patient_email: &str,
    body: Value,
) -> (TestPlatform, Clinic, String, String, Value) {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let mut registration = json!({
        "first_name": "Pat", "last_name": "Ient", "email": patient_email,
        "password": "patient passphrase",
    });
    for (key, value) in body.as_object().unwrap() {
        registration[key] = value.clone();
    }
    let registered = platform
        .call(
            Method::POST,
            "/api/users/patients",
            None,
            Some(registration),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    let patient_id = registered.body["id"].as_str().unwrap().to_owned();
    let token = platform
        .login(patient_email, "patient passphrase")
        .await
        .access;
    let starts_at = platform.free_slots(&clinic.doctor_id, None).await[1].clone();
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts_at)
        .await;
    let approved = platform
        .approve(&clinic, paid["id"].as_str().unwrap())
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    (platform, clinic, patient_id, token, approved.body)
}

fn item(medication: &str) -> Value {
    json!({"medication": medication, "strength": "500 mg", "form": "tablet", "dose": "1 tablet",
           "route": "oral", "frequency": "every 8 hours", "duration": "7 days", "quantity": 21})
}

#[tokio::test]
async fn an_allergy_declared_at_registration_stops_a_prescription_and_admins_never_see_it() {
    let (platform, clinic, patient_id, patient, appointment) = care_setting(
        "allergic@attack.example",
        json!({"allergies": ["Penicillin"], "blood_type": "O-"}),
    )
    .await;

    // The identity profile holds nothing clinical, for the patient or an admin.
    let me = platform
        .call(Method::GET, "/api/users/me", Some(&patient), None)
        .await;
    assert_eq!(me.body["patient"], json!({}), "{:?}", me.body);
    let as_admin = platform
        .call(
            Method::GET,
            &format!("/api/users/{patient_id}"),
            Some(&clinic.admin),
            None,
        )
        .await;
    let text = as_admin.body.to_string().to_lowercase();
    assert!(
        !text.contains("penicillin") && !text.contains("blood"),
        "{text}"
    );
    // Nor can an admin write it.
    let written = platform
        .call(
            Method::PATCH,
            &format!("/api/users/{patient_id}"),
            Some(&clinic.admin),
            Some(json!({"allergies": ["latex"]})),
        )
        .await;
    assert_eq!(
        (written.status, written.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );

    // The care team reads it in the record, as patient-reported.
    let record = eventually("the declaration to reach the record", || async {
        let record = platform
            .call(
                Method::GET,
                &format!("/api/records/{patient_id}"),
                Some(&clinic.doctor),
                None,
            )
            .await;
        (record.body["declared"]["allergies"][0]["substance"] == "Penicillin").then_some(record)
    })
    .await;
    assert_eq!(record.body["declared"]["blood_type"], "O-");

    // Prescribing a penicillin against it is refused unless overridden with a reason.
    let prescription =
        json!({"appointment_id": appointment["id"], "items": [item("Penicillin V")]});
    let refused = platform
        .call(
            Method::POST,
            "/api/prescriptions",
            Some(&clinic.doctor),
            Some(prescription.clone()),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "allergy_conflict"),
        "{:?}",
        refused.body
    );
    let mut overridden = prescription;
    overridden["allergy_override_reason"] = json!("tested negative last month");
    let issued = platform
        .call(
            Method::POST,
            "/api/prescriptions",
            Some(&clinic.doctor),
            Some(overridden),
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);

    // Declared later on the profile, with the obvious variants caught.
    let declared = platform
        .call(
            Method::PATCH,
            "/api/users/me",
            Some(&patient),
            Some(json!({"allergies": ["sulfa"]})),
        )
        .await;
    assert_eq!(declared.status, StatusCode::OK, "{:?}", declared.body);
    eventually("the second declaration to reach the record", || async {
        let record = platform
            .call(
                Method::GET,
                &format!("/api/records/{patient_id}"),
                Some(&patient),
                None,
            )
            .await;
        (record.body["declared"]["allergies"]
            .as_array()
            .is_some_and(|allergies| allergies.len() == 2))
        .then_some(())
    })
    .await;
    let refused = platform
        .call(
            Method::POST,
            "/api/prescriptions",
            Some(&clinic.doctor),
            Some(json!({"appointment_id": appointment["id"], "items": [item("Sulfamethoxazole")]})),
        )
        .await;
    assert_eq!(refused.code(), "allergy_conflict", "{:?}", refused.body);
}

#[tokio::test]
async fn a_demoted_admin_and_a_moved_nurse_lose_their_old_tokens_and_an_ex_doctor_their_prescriptions()
 {
    let (platform, clinic, patient_id, _patient, appointment) =
        care_setting("cared-for@attack.example", json!({})).await;
    let (second_admin, second_admin_token) = platform
        .create_staff(&clinic.admin, "ADMIN", "deputy@attack.example", None)
        .await;
    let issued = platform
        .call(
            Method::POST,
            "/api/prescriptions",
            Some(&clinic.doctor),
            Some(json!({"appointment_id": appointment["id"], "items": [item("Ibuprofen")]})),
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    let prescription = issued.body["id"].as_str().unwrap().to_owned();

    let demote = |id: String, body: Value| {
        let platform = &platform;
        let admin = clinic.admin.clone();
        async move {
            let reply = platform
                .call(
                    Method::PATCH,
                    &format!("/api/users/{id}"),
                    Some(&admin),
                    Some(body),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        }
    };
    demote(
        second_admin["id"].as_str().unwrap().to_owned(),
        json!({"role": "PATIENT"}),
    )
    .await;
    // Within the revocation poll, every service refuses the old admin token: through the
    // gateway, and at the services directly.
    eventually(
        "the demoted admin's token to be refused everywhere",
        || async {
            let gateway = platform
                .call(Method::GET, "/api/users", Some(&second_admin_token), None)
                .await;
            let appointments = platform
                .call_service(
                    Service::Appointments,
                    Method::GET,
                    "/api/appointments",
                    Some(&second_admin_token),
                    None,
                )
                .await;
            let payments = platform
                .call_service(
                    Service::Payments,
                    Method::GET,
                    "/api/payments",
                    Some(&second_admin_token),
                    None,
                )
                .await;
            [gateway, appointments, payments]
                .iter()
                .all(|reply| reply.status == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;
    let again = platform
        .login("deputy@attack.example", "staff passphrase")
        .await;
    let users = platform
        .call(Method::GET, "/api/users", Some(&again.access), None)
        .await;
    assert_eq!(users.status, StatusCode::FORBIDDEN, "a patient now");

    // A nurse moved to another department loses the token that carried the old one.
    let elsewhere = platform.create_department(&clinic.admin, "Elsewhere").await;
    demote(
        clinic.nurse_id.clone(),
        json!({"department_id": elsewhere["id"]}),
    )
    .await;
    eventually("the moved nurse's token to be refused", || async {
        let reply = platform
            .call(
                Method::GET,
                "/api/appointments/mine",
                Some(&clinic.nurse),
                None,
            )
            .await;
        (reply.status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    // A doctor who is a nurse now no longer reads what they prescribed as a doctor.
    demote(clinic.doctor_id.clone(), json!({"role": "NURSE"})).await;
    let now_nurse = platform
        .login(&clinic.doctor_email, "staff passphrase")
        .await
        .access;
    let read = platform
        .call(
            Method::GET,
            &format!("/api/prescriptions/{prescription}"),
            Some(&now_nurse),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::NOT_FOUND, "{:?}", read.body);
    eventually("the doctor's old token to be refused", || async {
        let record = platform
            .call(
                Method::GET,
                &format!("/api/records/{patient_id}"),
                Some(&clinic.doctor),
                None,
            )
            .await;
        (record.status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_body_that_is_not_the_documented_object_is_refused_and_changes_nothing() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let admin = platform.admin_token().await;
    let department = platform.create_department(&admin, "Cardiology").await;
    let id = department["id"].as_str().unwrap();
    for body in ["[null, null]", "[]", "\"Surgery\"", "42", "null", "true"] {
        let reply = platform
            .client()
            .patch(platform.url(Service::Gateway, &format!("/api/departments/{id}")))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let problem: Value = reply.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_body", "{body}");
    }
    // A nested object given as an array.
    let (_, patient) = platform.register_patient("shapes@attack.example").await;
    let nested = platform
        .call(
            Method::POST,
            "/api/users/staff",
            Some(&admin),
            Some(json!({"role": "DOCTOR", "first_name": "A", "last_name": "B", "email": "d@attack.example",
                        "password": "a staff passphrase", "department_id": id, "specialization": "GP",
                        "years_of_experience": 3, "consultation_fee": [5000, "EUR"]})),
        )
        .await;
    assert_eq!(
        (nested.status, nested.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        "{:?}",
        nested.body
    );
    let unchanged = platform
        .call(
            Method::GET,
            &format!("/api/departments/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(unchanged.body["name"], "Cardiology");
    assert_eq!(unchanged.body["description"], department["description"]);

    // A limit beyond the documented maximum is refused, not silently clamped.
    for path in [
        "/api/users?limit=101",
        "/api/users?limit=0",
        "/api/appointments?limit=1000",
        // An admin has no appointments of their own; the limit is checked all the same.
        "/api/appointments/mine?limit=0",
        "/api/notifications?limit=101",
        "/api/audit?limit=501",
        "/api/events?limit=201",
        "/api/payments?limit=101",
    ] {
        let reply = platform.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_query"),
            "{path}: {:?}",
            reply.body
        );
    }
    let mine = platform
        .call(
            Method::GET,
            "/api/notifications/me?limit=100",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK, "the maximum itself is fine");
}

#[tokio::test]
async fn concurrent_decisions_on_one_refill_let_exactly_one_through() {
    let (platform, clinic, _, patient, appointment) =
        care_setting("refills@attack.example", json!({})).await;
    let issued = platform
        .call(
            Method::POST,
            "/api/prescriptions",
            Some(&clinic.doctor),
            Some(json!({"appointment_id": appointment["id"], "items": [item("Salbutamol")], "refills_allowed": 3})),
        )
        .await;
    let prescription = issued.body["id"].as_str().unwrap().to_owned();
    let requested = platform
        .call(
            Method::POST,
            &format!("/api/prescriptions/{prescription}/refills"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(
        requested.status,
        StatusCode::CREATED,
        "{:?}",
        requested.body
    );
    let refill = requested.body["id"].as_str().unwrap().to_owned();

    let mut decisions = tokio::task::JoinSet::new();
    for n in 0..12 {
        let (client, doctor) = (platform.client().clone(), clinic.doctor.clone());
        let (path, body) = if n % 3 == 2 {
            ("decline", json!({"reason": "see me first"}))
        } else {
            ("approve", json!({}))
        };
        let url = platform.url(Service::Gateway, &format!("/api/refills/{refill}/{path}"));
        decisions.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(doctor)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        });
    }
    let answers = decisions.join_all().await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(status, _)| *status != StatusCode::OK)
            .all(|(status, body)| *status == StatusCode::CONFLICT && body["code"] == "refill_state"),
        "{answers:?}"
    );
    let after = platform
        .call(
            Method::GET,
            &format!("/api/prescriptions/{prescription}"),
            Some(&patient),
            None,
        )
        .await;
    let left = after.body["refills_left"].as_i64().unwrap();
    let approved = won[0]["status"] == "APPROVED";
    assert_eq!(left, if approved { 2 } else { 3 });
    let template = if approved {
        "refill_approved"
    } else {
        "refill_declined"
    };
    // One message to the patient about it, however many decisions raced.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = eventually("the refill's email", || async {
        let inbox = platform
            .call(Method::GET, "/api/notifications/me", Some(&patient), None)
            .await;
        let count = inbox.body["items"]
            .as_array()?
            .iter()
            .filter(|item| item["template"] == template)
            .count();
        (count > 0).then_some(count)
    })
    .await;
    assert_eq!(messages, 1);
}

async fn service_token(platform: &TestPlatform, service: &str) -> polyclinic_testing::Reply {
    platform
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", &format!("polyclinic-{service}")),
            (
                "client_secret",
                &format!("development-only-secret-of-{service}"),
            ),
        ])
        .await
}

#[tokio::test]
async fn a_service_token_does_only_what_its_service_needs() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (patient_user, patient) = platform.register_patient("scoped@attack.example").await;
    let starts_at = platform.free_slots(&clinic.doctor_id, None).await[1].clone();
    let paid = platform
        .paid_appointment(&patient, &clinic.doctor_id, &starts_at)
        .await;
    let approved = platform
        .approve(&clinic, paid["id"].as_str().unwrap())
        .await;
    let payment = approved.body["payment_id"]
        .as_str()
        .or_else(|| paid["payment_id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| paid["payment"]["id"].as_str().unwrap().to_owned());

    let issued = service_token(&platform, "notifications").await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    let notifications = issued.body["access_token"].as_str().unwrap().to_owned();

    // What it needs: people and rooms.
    let person = platform
        .call_service(
            Service::Identity,
            Method::GET,
            &format!("/api/users/{}", patient_user["id"].as_str().unwrap()),
            Some(&notifications),
            None,
        )
        .await;
    assert_eq!(person.status, StatusCode::OK, "{:?}", person.body);
    // What it does not: money, appointments.
    let refund = platform
        .call_service(
            Service::Payments,
            Method::POST,
            &format!("/api/payments/{payment}/refund"),
            Some(&notifications),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (refund.status, refund.code()),
        (StatusCode::FORBIDDEN, "insufficient_scope"),
        "{:?}",
        refund.body
    );
    let appointment = platform
        .call_service(
            Service::Appointments,
            Method::GET,
            &format!("/api/appointments/{}", paid["id"].as_str().unwrap()),
            Some(&notifications),
            None,
        )
        .await;
    assert_eq!(appointment.code(), "insufficient_scope");
    // Services whose work calls nothing have no credentials at all.
    assert_eq!(
        service_token(&platform, "web").await.code(),
        "invalid_client"
    );

    // The revocation feed is for platform services.
    let anonymous = platform
        .call_service(
            Service::Identity,
            Method::GET,
            "/internal/auth/revocations",
            None,
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let as_patient = platform
        .call_service(
            Service::Identity,
            Method::GET,
            "/internal/auth/revocations",
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(as_patient.status, StatusCode::FORBIDDEN);
    let gateway = service_token(&platform, "gateway").await;
    let feed = platform
        .call_service(
            Service::Identity,
            Method::GET,
            "/internal/auth/revocations",
            gateway.body["access_token"].as_str(),
            None,
        )
        .await;
    assert_eq!(feed.status, StatusCode::OK, "{:?}", feed.body);
}

#[tokio::test]
async fn the_prescriptions_service_cannot_rewrite_its_trail_and_a_cut_tail_is_found() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let admin = platform.admin_token().await;
    let (patient, token) = platform.register_patient("trail@attack.example").await;
    let (_, other) = platform.register_patient("snoop@attack.example").await;
    let patient_id = patient["id"].as_str().unwrap();
    // A refused look at someone else's access log, and an admin's search: both in the trail.
    let snoop = platform
        .call(
            Method::GET,
            &format!("/api/records/{patient_id}/access-log"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(snoop.status, StatusCode::NOT_FOUND);
    let search = platform
        .call(
            Method::GET,
            &format!("/api/audit?patient_id={patient_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(search.status, StatusCode::OK);
    let read = platform
        .call(
            Method::GET,
            &format!("/api/records/{patient_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let owner = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let actions: Vec<(String, String)> =
        sqlx::query_as("select action, outcome from prescriptions.audit_log order by id")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert!(
        actions.contains(&("access_log.read".into(), "denied".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("audit.search".into(), "allowed".into())),
        "{actions:?}"
    );

    // The service's own connection can append and read, and do nothing else to the trail.
    let service = polyclinic_db::pool(&platform.config, Service::Prescriptions).unwrap();
    let role: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&service)
        .await
        .unwrap();
    assert_eq!(role, "polyclinic_prescriptions");
    // A role cannot grant itself what it lacks: PostgreSQL warns and grants nothing.
    sqlx::query("grant delete, update on audit_log to polyclinic_prescriptions")
        .execute(&service)
        .await
        .ok();
    for statement in [
        "alter table audit_log disable trigger audit_log_append_only",
        "delete from audit_log",
        "update audit_log set outcome = 'allowed'",
        "update audit_checkpoints set hash = ''",
        "drop table audit_log",
    ] {
        let refused = sqlx::query(statement).execute(&service).await;
        let error = refused.expect_err(statement).to_string();
        assert!(
            error.contains("permission denied") || error.contains("must be owner"),
            "{statement}: {error}"
        );
    }

    // Someone with the owner's rights cuts off the newest rows after a checkpoint.
    let checkpointed = polyclinic_prescriptions::audit::checkpoint(&service)
        .await
        .unwrap()
        .expect("a checkpoint of the head");
    let intact = polyclinic_prescriptions::verify_audit(&platform.config)
        .await
        .unwrap();
    assert_eq!((intact.broken_at, intact.missing), (None, None));
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("alter table prescriptions.audit_log disable trigger audit_log_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("delete from prescriptions.audit_log where id >= $1 - 1")
        .bind(checkpointed)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("alter table prescriptions.audit_log enable trigger audit_log_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let cut = polyclinic_prescriptions::verify_audit(&platform.config)
        .await
        .unwrap();
    assert_eq!(cut.broken_at, None, "the chain before the cut is intact");
    assert_eq!(
        cut.missing,
        Some(checkpointed),
        "the checkpoint finds the cut"
    );
}

#[tokio::test]
async fn events_carry_no_free_text_reasons() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("reasons@attack.example").await;
    let slots = platform.free_slots(&clinic.doctor_id, None).await;
    let first = platform
        .paid_appointment(&patient, &clinic.doctor_id, &slots[1])
        .await;
    let rejected = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/reject", first["id"].as_str().unwrap()),
            Some(&clinic.admin),
            Some(json!({"reason": "patient reports chest pain: go to A&E"})),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{:?}", rejected.body);
    let second = platform
        .paid_appointment(&patient, &clinic.doctor_id, &slots[2])
        .await;
    let cancelled = platform
        .book(
            Method::POST,
            &format!(
                "/api/appointments/{}/cancel",
                second["id"].as_str().unwrap()
            ),
            Some(&clinic.admin),
            Some(json!({"reason": "patient called: her depression is worse"})),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let owner = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let envelopes: Vec<Value> = eventually("both endings in the outbox", || async {
        let envelopes: Vec<Value> =
            sqlx::query_scalar("select envelope from appointments.outbox order by seq")
                .fetch_all(&owner)
                .await
                .unwrap();
        let types: Vec<&str> = envelopes
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        (types.contains(&"polyclinic.appointment.rejected.v1")
            && types.contains(&"polyclinic.appointment.cancelled.v1"))
        .then_some(envelopes)
    })
    .await;
    for envelope in &envelopes {
        let text = envelope.to_string();
        assert!(
            !text.contains("chest pain") && !text.contains("depression"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn colleagues_metrics_status_and_passwords_expose_no_more_than_needed() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    // A nurse reads her colleagues' names and roles, never their address or phone.
    let staff = platform
        .call(
            Method::GET,
            &format!("/api/departments/{}/staff", clinic.department_id),
            Some(&clinic.nurse),
            None,
        )
        .await;
    assert_eq!(staff.status, StatusCode::OK);
    for member in staff.body.as_array().unwrap() {
        let fields: Vec<&String> = member.as_object().unwrap().keys().collect();
        for field in &fields {
            assert!(
                [
                    "id",
                    "role",
                    "first_name",
                    "last_name",
                    "specialization",
                    "department_id"
                ]
                .contains(&field.as_str()),
                "{field} shown to colleagues"
            );
        }
    }
    // Metrics are not for the public on the gateway's and the web app's listeners.
    for service in [Service::Gateway, Service::Web] {
        let metrics = platform.get(service, "/metrics").await;
        assert_eq!(metrics.status(), StatusCode::NOT_FOUND, "{service}");
    }
    // The status page names no internal address to an anonymous caller; an admin sees them.
    let anonymous = platform.call(Method::GET, "/status", None, None).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert!(
        anonymous.body["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|upstream| upstream.get("url").is_none()),
        "{:?}",
        anonymous.body
    );
    let admin = platform
        .call(Method::GET, "/status", Some(&clinic.admin), None)
        .await;
    assert!(admin.body["upstreams"][0]["url"].is_string());
}

#[tokio::test]
async fn anonymous_callers_are_counted_by_their_real_address_and_stripe_has_a_budget_of_its_own() {
    let platform = TestPlatform::start_with(
        &[
            Service::Gateway,
            Service::Identity,
            Service::Payments,
            Service::Appointments,
        ],
        |config, _| {
            config.rate_limit.anonymous_per_minute = 5;
            config.rate_limit.webhook_per_minute = 100;
        },
    )
    .await;
    let directory = |address: String| {
        platform
            .client()
            .get(platform.url(Service::Gateway, "/api/doctors"))
            .header("x-forwarded-for", address)
            .send()
    };
    // Behind a trusted proxy (loopback here), each client has its own budget...
    for n in 0..5 {
        let reply = directory("203.0.113.50".to_owned()).await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "request {n}");
    }
    let limited = directory("203.0.113.50".to_owned()).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    let other = directory("198.51.100.60".to_owned()).await.unwrap();
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another visitor is not limited"
    );

    // ...and an IPv6 client's is its /64's, so it cannot take a fresh one per address.
    let mut statuses = Vec::new();
    for n in 1..=8 {
        let reply = directory(format!("2001:db8:5:6::{n:x}")).await.unwrap();
        statuses.push(reply.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    // Stripe's webhook is not counted against visitors: the exhausted address still
    // reaches the payments service, which judges the signature.
    let webhook = platform
        .client()
        .post(platform.url(Service::Gateway, "/api/payments/webhooks/stripe"))
        .header("x-forwarded-for", "203.0.113.50")
        .header("stripe-signature", "t=1,v1=00")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_ne!(webhook.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(webhook.status().is_client_error(), "{}", webhook.status());
}
