//! Accounts: registration, staff, profiles, ownership, the role matrix, bad input.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn platform() -> TestPlatform {
    TestPlatform::start(&[Service::Identity, Service::Gateway]).await
}

async fn user_count(platform: &TestPlatform) -> i64 {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let count = sqlx::query_scalar("select count(*) from identity.users")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

#[tokio::test]
async fn a_registration_asking_for_admin_or_a_status_is_refused_and_creates_nobody() {
    let platform = platform().await;
    let before = user_count(&platform).await;
    for (field, value) in [
        ("role", json!("ADMIN")),
        ("status", json!("ACTIVE")),
        ("id", json!("00000000-0000-0000-0000-000000000001")),
        ("doctor", json!({"department_id": "x"})),
    ] {
        let mut body = json!({
            "first_name": "Mallory", "last_name": "Evil", "email": "mallory@clinic.example",
            "password": "a long passphrase",
        });
        body[field] = value;
        let reply = platform
            .call(Method::POST, "/api/users/patients", None, Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(reply.code(), "invalid_body");
        assert_eq!(
            reply.body["detail"],
            format!("unknown field `{field}`"),
            "the field is named"
        );
    }
    assert_eq!(user_count(&platform).await, before, "nobody was created");

    // Without them, the same registration is a plain patient.
    let reply = platform
        .call(
            Method::POST,
            "/api/users/patients",
            None,
            Some(json!({
                "first_name": "Mallory", "last_name": "Evil", "email": "mallory@clinic.example",
                "password": "a long passphrase",
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["role"], "PATIENT");
    let token = platform
        .login("mallory@clinic.example", "a long passphrase")
        .await
        .access;
    let admin_only = platform
        .call(Method::GET, "/api/users", Some(&token), None)
        .await;
    assert_eq!(admin_only.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_registrations_are_refused_with_every_field_named_and_nothing_stored() {
    let platform = platform().await;
    let before = user_count(&platform).await;
    let long = "x".repeat(5000);
    let cases = [
        json!({"first_name": "A", "last_name": "B", "email": "not-an-email", "password": "a long passphrase"}),
        json!({"first_name": "A", "last_name": "B", "email": "a@b.example", "password": "short"}),
        json!({"first_name": long, "last_name": "B", "email": "a@b.example", "password": "a long passphrase"}),
        json!({"first_name": "A", "last_name": "B", "email": "x'; drop table users; --@b.example", "password": "a long passphrase"}),
        json!({"first_name": "Robert'); DROP TABLE users;--", "last_name": "\u{0007}", "email": "r@b.example", "password": "a long passphrase"}),
        json!({"first_name": "A", "last_name": "B", "email": "a@b.example", "password": "a long passphrase", "date_of_birth": "2999-01-01"}),
        json!({"first_name": "A", "last_name": "B", "email": "a@b.example", "password": "a long passphrase", "phone": "call me maybe"}),
        json!({"first_name": "A", "last_name": "B", "email": "a@b.example", "password": "a long passphrase", "blood_type": "Z+"}),
        json!({"first_name": "A", "last_name": "B", "email": "a@b.example", "password": "a long passphrase", "allergies": [""]}),
        json!({"first_name": "A", "last_name": "B", "email": "a@b.example", "password": "password123"}),
        json!({"last_name": "B", "email": "a@b.example", "password": "a long passphrase"}),
    ];
    for case in cases {
        let reply = platform
            .call(
                Method::POST,
                "/api/users/patients",
                None,
                Some(case.clone()),
            )
            .await;
        assert!(reply.status.is_client_error(), "{case}: {:?}", reply.body);
        assert!(!reply.code().is_empty(), "{case}: a stable code");
    }
    let many = platform
        .call(
            Method::POST,
            "/api/users/patients",
            None,
            Some(json!({"first_name": "", "last_name": "", "email": "nope", "password": "x"})),
        )
        .await;
    assert_eq!(many.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = many.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in ["first_name", "last_name", "email", "password"] {
        assert!(fields.contains(&field), "{field} not reported: {fields:?}");
    }
    assert_eq!(user_count(&platform).await, before, "nothing was stored");
}

#[tokio::test]
async fn emails_are_unique_whatever_their_case() {
    let platform = platform().await;
    platform.register_patient("Case@Clinic.example").await;
    let again = platform
        .call(
            Method::POST,
            "/api/users/patients",
            None,
            Some(json!({"first_name": "A", "last_name": "B", "email": "case@clinic.EXAMPLE", "password": "a long passphrase"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "email_taken");
    platform
        .login("CASE@clinic.example", "patient passphrase")
        .await;
}

#[tokio::test]
async fn a_patient_reading_or_editing_another_user_gets_404() {
    let platform = platform().await;
    let (alice, alice_token) = platform.register_patient("alice@clinic.example").await;
    let (bob, _) = platform.register_patient("bob@clinic.example").await;
    let bob_path = format!("/api/users/{}", bob["id"].as_str().unwrap());
    let missing_path = format!("/api/users/{}", uuid::Uuid::now_v7());
    for path in [&bob_path, &missing_path] {
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let body = (method == Method::PATCH).then(|| json!({"first_name": "Pwned"}));
            let reply = platform
                .call(method.clone(), path, Some(&alice_token), body)
                .await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    let own = platform
        .call(
            Method::GET,
            &format!("/api/users/{}", alice["id"].as_str().unwrap()),
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let admin = platform.admin_token().await;
    let untouched = platform
        .call(Method::GET, &bob_path, Some(&admin), None)
        .await;
    assert_eq!(untouched.body["first_name"], "Pat");
}

#[tokio::test]
async fn users_edit_their_own_profile_but_not_their_role_or_status() {
    let platform = platform().await;
    let (_, token) = platform.register_patient("edit@clinic.example").await;
    let changed = platform
        .call(
            Method::PATCH,
            "/api/users/me",
            Some(&token),
            Some(json!({"first_name": "Edith", "phone": "+44 20 7946 0958", "allergies": ["Penicillin", "penicillin", "Latex"], "blood_type": "O-"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["first_name"], "Edith");
    // What is clinical is declared to the medical record, not kept with the account: it
    // waits, de-duplicated, for the prescriptions service (not running here) to take it.
    assert_eq!(changed.body["patient"], json!({}));
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let (allergies, blood_type): (Vec<String>, Option<String>) = sqlx::query_as(
        "select allergies, blood_type from identity.clinical_handoffs where patient_id = $1",
    )
    .bind(uuid::Uuid::parse_str(changed.body["id"].as_str().unwrap()).unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(allergies, ["Penicillin", "Latex"]);
    assert_eq!(blood_type.as_deref(), Some("O-"));

    for forbidden in [
        json!({"role": "ADMIN"}),
        json!({"status": "DEACTIVATED"}),
        json!({"department_id": uuid::Uuid::now_v7()}),
    ] {
        let reply = platform
            .call(
                Method::PATCH,
                "/api/users/me",
                Some(&token),
                Some(forbidden.clone()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{forbidden}"
        );
    }
    let me = platform
        .call(Method::GET, "/api/users/me", Some(&token), None)
        .await;
    assert_eq!(me.body["role"], "PATIENT");
    assert_eq!(me.body["status"], "ACTIVE");
}

#[tokio::test]
async fn changing_a_password_needs_the_old_one() {
    let platform = platform().await;
    let (_, token) = platform.register_patient("pw@clinic.example").await;
    let wrong = platform
        .call(
            Method::POST,
            "/api/users/me/password",
            Some(&token),
            Some(json!({"current_password": "a guess at it", "new_password": "brand new passphrase"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.code(), "current_password_incorrect");
    let right = platform
        .call(
            Method::POST,
            "/api/users/me/password",
            Some(&token),
            Some(json!({"current_password": "patient passphrase", "new_password": "brand new passphrase"})),
        )
        .await;
    assert_eq!(right.status, StatusCode::NO_CONTENT);
    platform
        .login("pw@clinic.example", "brand new passphrase")
        .await;
    let old = platform
        .token_request(&[
            ("grant_type", "password"),
            ("username", "pw@clinic.example"),
            ("password", "patient passphrase"),
        ])
        .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_admins_create_staff_and_an_admin_request_stays_an_admin() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let department = platform.create_department(&admin, "Cardiology").await;
    let department_id = department["id"].as_str().unwrap();
    let (doctor, doctor_token) = platform
        .create_staff(&admin, "DOCTOR", "doc@clinic.example", Some(department_id))
        .await;
    assert_eq!(doctor["role"], "DOCTOR");
    assert_eq!(
        doctor["doctor"]["consultation_fee"],
        json!({"amount": 6000, "currency": "EUR"})
    );
    let (second_admin, _) = platform
        .create_staff(&admin, "ADMIN", "admin2@clinic.example", None)
        .await;
    assert_eq!(
        second_admin["role"], "ADMIN",
        "the original silently turned this into a doctor"
    );

    let by_doctor = platform
        .call(
            Method::POST,
            "/api/users/staff",
            Some(&doctor_token),
            Some(json!({"role": "ADMIN", "first_name": "X", "last_name": "Y", "email": "x@clinic.example", "password": "a long passphrase"})),
        )
        .await;
    assert_eq!(by_doctor.status, StatusCode::FORBIDDEN);

    let incomplete = platform
        .call(
            Method::POST,
            "/api/users/staff",
            Some(&admin),
            Some(json!({"role": "DOCTOR", "first_name": "X", "last_name": "Y", "email": "x@clinic.example", "password": "a long passphrase"})),
        )
        .await;
    assert_eq!(incomplete.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = incomplete.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"department_id") && fields.contains(&"consultation_fee"),
        "{fields:?}"
    );

    let unknown_department = platform
        .call(
            Method::POST,
            "/api/users/staff",
            Some(&admin),
            Some(json!({"role": "NURSE", "first_name": "N", "last_name": "Y", "email": "n@clinic.example",
                "password": "a long passphrase", "department_id": uuid::Uuid::now_v7()})),
        )
        .await;
    assert_eq!(unknown_department.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_department.code(), "unknown_department");
}

#[tokio::test]
async fn an_admin_moves_a_nurse_to_another_department_and_makes_her_a_doctor() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let first = platform.create_department(&admin, "Surgery").await;
    let second = platform.create_department(&admin, "Paediatrics").await;
    let (nurse, _) = platform
        .create_staff(&admin, "NURSE", "nina@clinic.example", first["id"].as_str())
        .await;
    let path = format!("/api/users/{}", nurse["id"].as_str().unwrap());

    let moved = platform
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"department_id": second["id"]})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["nurse"]["department_id"], second["id"]);

    let promoted = platform
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(
                json!({"role": "DOCTOR", "specialization": "Paediatrics", "years_of_experience": 3,
                "consultation_fee": {"amount": 5000, "currency": "EUR"}}),
            ),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{:?}", promoted.body);
    assert_eq!(promoted.body["role"], "DOCTOR");
    assert_eq!(promoted.body["doctor"]["department_id"], second["id"]);
    assert!(promoted.body.get("nurse").is_none());
}

#[tokio::test]
async fn admins_list_and_search_users_page_by_page() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    for name in ["p1", "p2", "p3"] {
        platform
            .register_patient(&format!("{name}@search.example"))
            .await;
    }
    let first = platform
        .call(
            Method::GET,
            "/api/users?role=PATIENT&limit=2",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = platform
        .call(
            Method::GET,
            &format!("/api/users?role=PATIENT&limit=2&cursor={cursor}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["next_cursor"], Value::Null);

    let found = platform
        .call(Method::GET, "/api/users?q=p2%40search", Some(&admin), None)
        .await;
    let emails: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["p2@search.example"]);
    let wildcard = platform
        .call(Method::GET, "/api/users?q=%25", Some(&admin), None)
        .await;
    assert!(
        wildcard.body["items"].as_array().unwrap().is_empty(),
        "% is matched literally"
    );
}

#[tokio::test]
async fn the_public_doctor_directory_shows_no_contact_data() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let department = platform.create_department(&admin, "Neurology").await;
    let (doctor, _) = platform
        .create_staff(
            &admin,
            "DOCTOR",
            "neuro@clinic.example",
            department["id"].as_str(),
        )
        .await;
    let listed = platform.call(Method::GET, "/api/doctors", None, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let entry = &listed.body[0];
    assert_eq!(entry["id"], doctor["id"]);
    assert_eq!(entry["department_name"], "Neurology");
    assert_eq!(entry["consultation_fee"]["amount"], 6000);
    for private in ["email", "phone", "address", "username", "date_of_birth"] {
        assert!(entry.get(private).is_none(), "{private} leaked");
    }
    let filtered = platform
        .call(Method::GET, "/api/doctors?specialization=derm", None, None)
        .await;
    assert_eq!(filtered.body, json!([]));
}

/// Expected status per caller for one route: anonymous, patient, doctor, nurse, admin.
struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: [u16; 5],
}

#[tokio::test]
async fn every_identity_route_admits_exactly_its_roles_directly_and_through_the_gateway() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let department = platform.create_department(&admin, "Matrix").await;
    let department_id = department["id"].as_str().unwrap().to_owned();
    let (_, patient) = platform.register_patient("m-patient@clinic.example").await;
    let (_, doctor) = platform
        .create_staff(
            &admin,
            "DOCTOR",
            "m-doctor@clinic.example",
            Some(&department_id),
        )
        .await;
    let (nurse_user, nurse) = platform
        .create_staff(
            &admin,
            "NURSE",
            "m-nurse@clinic.example",
            Some(&department_id),
        )
        .await;
    let room = platform
        .call(
            Method::POST,
            "/api/rooms",
            Some(&admin),
            Some(json!({"department_id": department_id, "name": "M-1"})),
        )
        .await;
    let room_id = room.body["id"].as_str().unwrap().to_owned();
    let nurse_id = nurse_user["id"].as_str().unwrap().to_owned();
    let callers = [
        None,
        Some(patient.as_str()),
        Some(doctor.as_str()),
        Some(nurse.as_str()),
        Some(admin.as_str()),
    ];

    let missing = uuid::Uuid::now_v7();
    let mut counter = 0;
    for service in [Service::Identity, Service::Gateway] {
        // Fresh things to delete in each round, so the admin's DELETE is a real 2xx.
        let room = platform
            .call(
                Method::POST,
                "/api/rooms",
                Some(&admin),
                Some(json!({"department_id": department_id, "name": format!("gone-{service}")})),
            )
            .await;
        let doomed_room = room.body["id"].as_str().unwrap().to_owned();
        let (victim, _) = platform
            .register_patient(&format!("victim-{service}@clinic.example"))
            .await;
        let victim = victim["id"].as_str().unwrap().to_owned();
        let (resettable, _) = platform
            .register_patient(&format!("forgetful-{service}@clinic.example"))
            .await;
        let resettable = resettable["id"].as_str().unwrap().to_owned();
        let empty = platform
            .create_department(&admin, &format!("Empty {service}"))
            .await;
        let empty = empty["id"].as_str().unwrap().to_owned();

        // Each row is sent by each caller in order. Bodies that change state are harmless to
        // repeat; `UNIQUE` in a body becomes a fresh number per request.
        let rows = vec![
            Row {
                method: Method::GET,
                path: "/api/auth/.well-known/openid-configuration".into(),
                body: None,
                expect: [200, 200, 200, 200, 200],
            },
            Row {
                method: Method::GET,
                path: "/api/auth/jwks".into(),
                body: None,
                expect: [200, 200, 200, 200, 200],
            },
            Row {
                method: Method::POST,
                path: "/api/users/patients".into(),
                body: Some(
                    json!({"first_name": "N", "last_name": "P", "email": "UNIQUE@new.example", "password": "a long passphrase"}),
                ),
                expect: [201, 201, 201, 201, 201],
            },
            Row {
                method: Method::GET,
                path: "/api/users/me".into(),
                body: None,
                expect: [401, 200, 200, 200, 200],
            },
            Row {
                method: Method::PATCH,
                path: "/api/users/me".into(),
                body: Some(json!({"first_name": "Same"})),
                expect: [401, 200, 200, 200, 200],
            },
            Row {
                method: Method::POST,
                path: "/api/users/me/password".into(),
                body: Some(
                    json!({"current_password": "wrong guess here", "new_password": "another passphrase"}),
                ),
                expect: [401, 403, 403, 403, 403],
            },
            Row {
                method: Method::GET,
                path: "/api/users".into(),
                body: None,
                expect: [401, 403, 403, 403, 200],
            },
            Row {
                method: Method::GET,
                path: format!("/api/users/{nurse_id}"),
                body: None,
                expect: [401, 404, 404, 200, 200],
            },
            Row {
                method: Method::PATCH,
                path: format!("/api/users/{nurse_id}"),
                body: Some(json!({"last_name": "Nurse"})),
                expect: [401, 404, 404, 403, 200],
            },
            Row {
                method: Method::DELETE,
                path: format!("/api/users/{victim}"),
                body: None,
                expect: [401, 404, 404, 404, 204],
            },
            // A reset ends the user's logins, so it targets someone whose token the matrix does not use.
            Row {
                method: Method::POST,
                path: format!("/api/users/{resettable}/password"),
                body: Some(json!({"new_password": "reset passphrase"})),
                expect: [401, 403, 403, 403, 204],
            },
            Row {
                method: Method::POST,
                path: "/api/users/staff".into(),
                body: Some(
                    json!({"role": "ADMIN", "first_name": "A", "last_name": "D", "email": "UNIQUE@staff.example", "password": "a long passphrase"}),
                ),
                expect: [401, 403, 403, 403, 201],
            },
            Row {
                method: Method::GET,
                path: "/api/doctors".into(),
                body: None,
                expect: [200, 200, 200, 200, 200],
            },
            Row {
                method: Method::GET,
                path: format!("/api/doctors/{missing}"),
                body: None,
                expect: [404, 404, 404, 404, 404],
            },
            Row {
                method: Method::GET,
                path: "/api/departments".into(),
                body: None,
                expect: [401, 403, 200, 200, 200],
            },
            Row {
                method: Method::POST,
                path: "/api/departments".into(),
                body: Some(json!({"name": "Dept UNIQUE"})),
                expect: [401, 403, 403, 403, 201],
            },
            Row {
                method: Method::GET,
                path: format!("/api/departments/{department_id}"),
                body: None,
                expect: [401, 403, 200, 200, 200],
            },
            Row {
                method: Method::PATCH,
                path: format!("/api/departments/{department_id}"),
                body: Some(json!({"description": "d"})),
                expect: [401, 403, 403, 403, 200],
            },
            Row {
                method: Method::DELETE,
                path: format!("/api/departments/{empty}"),
                body: None,
                expect: [401, 403, 403, 403, 204],
            },
            Row {
                method: Method::GET,
                path: format!("/api/departments/{department_id}/staff"),
                body: None,
                expect: [401, 403, 200, 200, 200],
            },
            Row {
                method: Method::GET,
                path: format!("/api/departments/{department_id}/rooms"),
                body: None,
                expect: [401, 403, 200, 200, 200],
            },
            Row {
                method: Method::GET,
                path: "/api/rooms".into(),
                body: None,
                expect: [401, 403, 200, 200, 200],
            },
            Row {
                method: Method::POST,
                path: "/api/rooms".into(),
                body: Some(json!({"department_id": department_id, "name": "Room UNIQUE"})),
                expect: [401, 403, 403, 403, 201],
            },
            Row {
                method: Method::GET,
                path: format!("/api/rooms/{room_id}"),
                body: None,
                expect: [401, 403, 200, 200, 200],
            },
            Row {
                method: Method::PATCH,
                path: format!("/api/rooms/{room_id}"),
                body: Some(json!({"name": "M-1"})),
                expect: [401, 403, 403, 403, 200],
            },
            Row {
                method: Method::DELETE,
                path: format!("/api/rooms/{doomed_room}"),
                body: None,
                expect: [401, 403, 403, 403, 204],
            },
        ];
        for row in &rows {
            for (caller, expected) in callers.iter().zip(row.expect) {
                counter += 1;
                let body = row.body.as_ref().map(|body| {
                    serde_json::from_str(
                        &body.to_string().replace("UNIQUE", &format!("u{counter}")),
                    )
                    .unwrap()
                });
                let reply = platform
                    .call_service(service, row.method.clone(), &row.path, *caller, body)
                    .await;
                assert_eq!(
                    reply.status.as_u16(),
                    expected,
                    "{} {} as caller #{} at {service}: {:?}",
                    row.method,
                    row.path,
                    callers.iter().position(|c| c == caller).unwrap(),
                    reply.body
                );
            }
        }
    }
}
