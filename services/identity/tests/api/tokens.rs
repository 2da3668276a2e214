//! The negative token matrix, at the gateway and directly at the identity service.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};

use crate::forged::{bad_tokens, claims, current_key, sign};

async fn platform() -> TestPlatform {
    TestPlatform::start(&[Service::Identity, Service::Gateway]).await
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused_with_401_at_the_gateway_and_at_the_service() {
    let platform = platform().await;
    let (patient, _) = platform.register_patient("matrix@clinic.example").await;
    let subject = patient["id"].as_str().unwrap();
    let key = current_key(&platform).await;

    // A correct token made the same way passes, so each refusal below is for its defect.
    let good = sign(&key, &claims(&platform, subject, "PATIENT"));
    for service in [Service::Gateway, Service::Identity] {
        let reply = platform
            .call_service(service, Method::GET, "/api/users/me", Some(&good), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{service}: {:?}", reply.body);
    }

    for (defect, token) in bad_tokens(&platform, &key, subject) {
        for service in [Service::Gateway, Service::Identity] {
            let reply = platform
                .call_service(service, Method::GET, "/api/users/me", Some(&token), None)
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{defect} at {service}: {:?}",
                reply.body
            );
            assert!(
                reply.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/problem+json"),
                "{defect} at {service}"
            );
            assert!(
                reply.headers.contains_key("www-authenticate"),
                "{defect} at {service}"
            );
        }
    }
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused() {
    let platform = platform().await;
    let (_, token) = platform.register_patient("query@clinic.example").await;
    for service in [Service::Gateway, Service::Identity] {
        let path = format!("/api/users/me?access_token={token}");
        let reply = platform
            .call_service(service, Method::GET, &path, None, None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{service}");
        assert_eq!(reply.code(), "token_in_query");
    }
}

#[tokio::test]
async fn a_missing_token_is_401_and_a_wrong_role_is_403() {
    let platform = platform().await;
    let (_, patient) = platform.register_patient("roles@clinic.example").await;
    for service in [Service::Gateway, Service::Identity] {
        let anonymous = platform
            .call_service(service, Method::GET, "/api/users", None, None)
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{service}");
        assert_eq!(anonymous.code(), "missing_token");
        let forbidden = platform
            .call_service(service, Method::GET, "/api/users", Some(&patient), None)
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{service}");
    }
}

#[tokio::test]
async fn after_a_key_rotation_old_tokens_keep_working_and_new_ones_work_without_a_restart() {
    let platform = TestPlatform::start_with(&[Service::Identity, Service::Gateway], |config, _| {
        config.auth.key_publish_lead_secs = 2;
    })
    .await;
    let (_, old_token) = platform.register_patient("rotation@clinic.example").await;
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();
    // Both verifiers have now cached the JWKS with only the old key.
    for service in [Service::Gateway, Service::Identity] {
        let reply = platform
            .call_service(
                service,
                Method::GET,
                "/api/users/me",
                Some(&old_token),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }

    let new_kid = polyclinic_identity::rotate_signing_key(&platform.config)
        .await
        .unwrap();
    assert_ne!(new_kid, old_kid);
    let jwks = platform
        .call(Method::GET, "/api/auth/jwks", None, None)
        .await;
    let published: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert!(
        published.contains(&new_kid.as_str()),
        "published before it signs"
    );
    assert!(
        published.contains(&old_kid.as_str()),
        "the old key stays published"
    );

    // The new key signs once its lead time has passed.
    let new_token = loop {
        let token = platform
            .login("rotation@clinic.example", "patient passphrase")
            .await
            .access;
        if jsonwebtoken::decode_header(&token).unwrap().kid.unwrap() == new_kid {
            break token;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for service in [Service::Gateway, Service::Identity] {
        for (which, token) in [("old", &old_token), ("new", &new_token)] {
            let reply = platform
                .call_service(service, Method::GET, "/api/users/me", Some(token), None)
                .await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{which} token at {service}: {:?}",
                reply.body
            );
        }
    }
}
