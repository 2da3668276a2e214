//! The pages' forms doing what they say, checked against the API afterwards.

use chrono::{Duration, Utc};
use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{client, csrf_of, page, sign_in, web};

/// Posts a form of the page at `from` (with that page's CSRF token); returns the status,
/// the `Location` and the body.
pub async fn post_form(
    platform: &TestPlatform,
    cookie: &str,
    from: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let (_, html) = page(platform, cookie, from).await;
    let csrf = csrf_of(&html);
    let mut form = vec![("_csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let response = client()
        .post(web(platform, action))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

#[tokio::test]
async fn a_patient_reschedules_and_then_cancels_a_paid_appointment_from_its_pages() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform
        .register_patient("moving.patient@example.test")
        .await;
    let later = (Utc::now() + Duration::days(3)).date_naive().to_string();
    let slots = platform.free_slots(&clinic.doctor_id, Some(&later)).await;
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &slots[0])
        .await;
    let id = paid["id"].as_str().unwrap();
    let cookie = sign_in(
        &platform,
        "moving.patient@example.test",
        "patient passphrase",
    )
    .await;

    let (status, html) = page(&platform, &cookie, "/appointments").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("/doctors/{}?reschedule={id}", clinic.doctor_id)),
        "a reschedule link"
    );
    assert!(
        html.contains(&format!("/appointments/{id}/cancel")),
        "a cancel form"
    );

    let week = format!("/doctors/{}?from={later}&reschedule={id}", clinic.doctor_id);
    let (_, week_html) = page(&platform, &cookie, &week).await;
    assert!(
        week_html.contains(&format!("action=\"/appointments/{id}/reschedule\"")),
        "slots move the appointment"
    );
    let (status, location, _) = post_form(
        &platform,
        &cookie,
        &week,
        &format!("/appointments/{id}/reschedule"),
        &[("starts_at", &slots[1])],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            format!("/appointments/{id}").as_str()
        )
    );
    let moved = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{id}"),
            Some(&token),
            None,
        )
        .await;
    let moved_to: chrono::DateTime<Utc> =
        moved.body["starts_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(moved_to, slots[1].parse::<chrono::DateTime<Utc>>().unwrap());
    let (_, detail) = page(&platform, &cookie, &format!("/appointments/{id}")).await;
    assert!(detail.contains("The appointment is moved."));

    let (status, _, _) = post_form(
        &platform,
        &cookie,
        &format!("/appointments/{id}"),
        &format!("/appointments/{id}/cancel"),
        &[("reason", "feeling better")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cancelled = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(cancelled.body["status"], "CANCELLED");
    assert_eq!(cancelled.body["status_reason"], "feeling better");
}

#[tokio::test]
async fn a_wrong_current_password_is_shown_next_to_its_field_and_the_right_one_changes_it() {
    let platform = TestPlatform::start(&[Service::Identity, Service::Gateway, Service::Web]).await;
    platform
        .register_patient("changing.patient@example.test")
        .await;
    let cookie = sign_in(
        &platform,
        "changing.patient@example.test",
        "patient passphrase",
    )
    .await;

    let (status, _, html) = post_form(
        &platform,
        &cookie,
        "/account",
        "/account/password",
        &[
            ("current_password", "not my password"),
            ("new_password", "a brand new passphrase"),
            ("confirm_password", "a brand new passphrase"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"e-current_password\""),
        "the error sits next to the field"
    );
    assert!(
        !html.contains("a brand new passphrase"),
        "passwords are not sent back"
    );

    let (status, _, html) = post_form(
        &platform,
        &cookie,
        "/account",
        "/account/password",
        &[
            ("current_password", "patient passphrase"),
            ("new_password", "a brand new passphrase"),
            ("confirm_password", "another one entirely"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("The two new passwords differ."));

    let (status, location, _) = post_form(
        &platform,
        &cookie,
        "/account",
        "/account/password",
        &[
            ("current_password", "patient passphrase"),
            ("new_password", "a brand new passphrase"),
            ("confirm_password", "a brand new passphrase"),
        ],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/account")
    );
    sign_in(
        &platform,
        "changing.patient@example.test",
        "a brand new passphrase",
    )
    .await;
}

#[tokio::test]
async fn a_refill_requested_on_the_record_page_is_approved_from_the_doctors_queue() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (patient, token) = platform
        .register_patient("refill.patient@example.test")
        .await;
    let slot = platform.free_slots(&clinic.doctor_id, None).await[0].clone();
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &slot)
        .await;
    let approved = platform
        .approve(&clinic, paid["id"].as_str().unwrap())
        .await;
    assert_eq!(approved.status, StatusCode::OK);
    let item = json!({"medication": "Salbutamol", "strength": "100 mcg", "form": "inhaler", "dose": "2 puffs",
        "route": "inhaled", "frequency": "as needed", "duration": "30 days", "quantity": 1});
    let prescribed = platform
        .call(
            Method::POST,
            "/api/prescriptions",
            Some(&clinic.doctor),
            Some(json!({"appointment_id": paid["id"], "items": [item], "refills_allowed": 2})),
        )
        .await;
    assert_eq!(
        prescribed.status,
        StatusCode::CREATED,
        "{:?}",
        prescribed.body
    );
    let prescription = prescribed.body["id"].as_str().unwrap();

    let patient_cookie = sign_in(
        &platform,
        "refill.patient@example.test",
        "patient passphrase",
    )
    .await;
    let (_, record) = page(&platform, &patient_cookie, "/record").await;
    assert!(record.contains("Salbutamol") && record.contains("Request a refill"));
    let (status, _, _) = post_form(
        &platform,
        &patient_cookie,
        "/record",
        &format!("/prescriptions/{prescription}/refill"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A second request while one waits is explained, not an error page.
    post_form(
        &platform,
        &patient_cookie,
        "/record",
        &format!("/prescriptions/{prescription}/refill"),
        &[],
    )
    .await;
    let (_, record) = page(&platform, &patient_cookie, "/record").await;
    assert!(record.contains("already waiting"));

    let doctor_cookie = sign_in(&platform, &clinic.doctor_email, "staff passphrase").await;
    let (_, queue) = page(&platform, &doctor_cookie, "/doctor/refills").await;
    let marker = "action=\"/refills/";
    let start = queue.find(marker).expect("a waiting refill") + marker.len();
    let refill = &queue[start..start + 36];
    let (status, _, _) = post_form(
        &platform,
        &doctor_cookie,
        "/doctor/refills",
        &format!("/refills/{refill}/approve"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let after = platform
        .call(
            Method::GET,
            &format!("/api/prescriptions/{prescription}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(after.body["refills_left"], 1);
    assert_eq!(after.body["patient_id"], patient["id"]);
}

#[tokio::test]
async fn a_doctor_blocks_a_day_and_unblocks_it() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let cookie = sign_in(&platform, &clinic.doctor_email, "staff passphrase").await;
    let day = (Utc::now() + Duration::days(5)).date_naive().to_string();

    let (status, _, html) = post_form(
        &platform,
        &cookie,
        "/doctor/unavailability",
        "/doctor/unavailability",
        &[("kind", "day"), ("date", "")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"e-date\""),
        "a missing date is shown next to its field"
    );

    let (status, _, _) = post_form(
        &platform,
        &cookie,
        "/doctor/unavailability",
        "/doctor/unavailability",
        &[("kind", "day"), ("date", &day), ("reason", "conference")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        platform
            .free_slots(&clinic.doctor_id, Some(&day))
            .await
            .iter()
            .all(|slot| !slot.starts_with(&day))
    );

    let (_, list) = page(&platform, &cookie, "/doctor/unavailability").await;
    assert!(list.contains(&format!("The whole day {day}")));
    let marker = "action=\"/doctor/unavailability/";
    let start = list.find(marker).unwrap() + marker.len();
    let id = &list[start..start + 36];
    let (status, _, _) = post_form(
        &platform,
        &cookie,
        "/doctor/unavailability",
        &format!("/doctor/unavailability/{id}/delete"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        platform
            .free_slots(&clinic.doctor_id, Some(&day))
            .await
            .iter()
            .any(|slot| slot.starts_with(&day))
    );
}

#[tokio::test]
async fn an_admin_registers_a_smart_app_and_a_patient_withdraws_its_access_from_their_account() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let admin = sign_in(
        &platform,
        polyclinic_testing::ADMIN_EMAIL,
        polyclinic_testing::ADMIN_PASSWORD,
    )
    .await;
    let (status, _, html) = post_form(
        &platform,
        &admin,
        "/admin/apps",
        "/admin/apps",
        &[
            ("client_id", "lab-portal"),
            ("name", "Lab portal"),
            ("redirect_uris", "https://lab.example/callback"),
            ("scopes", "openid launch/patient patient/Observation.rs"),
            ("confidential", "yes"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    assert!(
        html.contains("Client secret of lab-portal"),
        "the secret is shown once"
    );
    let (_, listed) = page(&platform, &admin, "/admin/apps").await;
    assert!(
        listed.contains("Lab portal") && !listed.contains("Client secret of"),
        "listed, the secret not again"
    );
    let (status, _, html) = post_form(
        &platform,
        &admin,
        "/admin/apps",
        "/admin/apps",
        &[
            ("client_id", "bad"),
            ("name", "Bad"),
            ("redirect_uris", "http://bad.example/cb"),
            ("scopes", "openid"),
            ("confidential", "no"),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unsafe redirect is refused on the page"
    );
    assert!(html.contains("redirect_uris"), "{html}");

    // The patient allows the app on the sign-in page (as its browser would), then sees it.
    platform.register_patient("apps.patient@example.test").await;
    let verifier = "a".repeat(64);
    let challenge = {
        use base64::Engine;
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    };
    let decision = client()
        .post(platform.url(Service::Gateway, "/api/auth/authorize"))
        .form(&[
            ("response_type", "code"),
            ("client_id", "lab-portal"),
            ("redirect_uri", "https://lab.example/callback"),
            ("scope", "launch/patient patient/Observation.rs"),
            ("aud", &platform.url(Service::Gateway, "/fhir")),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("username", "apps.patient@example.test"),
            ("password", "patient passphrase"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(decision.status(), StatusCode::SEE_OTHER);
    let patient = sign_in(&platform, "apps.patient@example.test", "patient passphrase").await;
    let (_, account) = page(&platform, &patient, "/account").await;
    assert!(
        account.contains("Lab portal"),
        "the connected app is listed"
    );
    let tokens = platform
        .login("apps.patient@example.test", "patient passphrase")
        .await;
    let grants = platform
        .call(
            Method::GET,
            "/api/smart/grants/mine",
            Some(&tokens.access),
            None,
        )
        .await;
    let id = grants.body[0]["id"].as_str().unwrap().to_owned();
    let (status, location, _) = post_form(
        &platform,
        &patient,
        "/account",
        &format!("/account/apps/{id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/account")
    );
    let grants = platform
        .call(
            Method::GET,
            "/api/smart/grants/mine",
            Some(&tokens.access),
            None,
        )
        .await;
    assert_eq!(grants.body, json!([]));
}
