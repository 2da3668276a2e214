//! Tokens made by the test: correct ones signed with the platform's own key (read from its
//! database), and every kind of wrong one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use polyclinic_testing::TestPlatform;
use serde_json::{Value, json};

pub struct SigningKey {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
}

pub async fn current_key(platform: &TestPlatform) -> SigningKey {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let (kid, private_key, public_key): (String, Vec<u8>, Vec<u8>) = sqlx::query_as(
        "select kid, private_key, public_key from identity.signing_keys
         where active_from <= now() order by active_from desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    SigningKey {
        kid,
        private_key,
        public_key,
    }
}

pub fn claims(platform: &TestPlatform, subject: &str, role: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": platform.config.issuer(),
        "aud": platform.config.auth.audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
        "azp": "polyclinic-app",
        "realm_access": {"roles": [role]},
    })
}

pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.private_key)).unwrap()
}

fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Every token that must be refused, named by what is wrong with it.
pub fn bad_tokens(
    platform: &TestPlatform,
    key: &SigningKey,
    subject: &str,
) -> Vec<(&'static str, String)> {
    let now = chrono::Utc::now().timestamp();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims(platform, subject, "PATIENT");
        change(&mut claims);
        sign(key, &claims)
    };
    let valid = sign(key, &claims(platform, subject, "PATIENT"));

    let alg_none = format!(
        "{}.{}.",
        segment(&json!({"alg": "none", "typ": "JWT", "kid": key.kid})),
        segment(&claims(platform, subject, "ADMIN"))
    );
    let mut hmac_header = Header::new(Algorithm::HS256);
    hmac_header.kid = Some(key.kid.clone());
    let hmac_with_public_key = jsonwebtoken::encode(
        &hmac_header,
        &claims(platform, subject, "ADMIN"),
        &EncodingKey::from_secret(&key.public_key),
    )
    .unwrap();
    let hmac_with_public_jwk = jsonwebtoken::encode(
        &hmac_header,
        &claims(platform, subject, "ADMIN"),
        &EncodingKey::from_secret(URL_SAFE_NO_PAD.encode(&key.public_key).as_bytes()),
    )
    .unwrap();

    let stranger = {
        let document =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        SigningKey {
            kid: "not-a-key-of-ours".into(),
            private_key: document.as_ref().to_vec(),
            public_key: Vec::new(),
        }
    };
    let unknown_kid = sign(&stranger, &claims(platform, subject, "PATIENT"));
    let mut known_kid_wrong_key = SigningKey {
        kid: key.kid.clone(),
        ..stranger
    };
    known_kid_wrong_key.public_key = Vec::new();
    let wrong_signature = sign(&known_kid_wrong_key, &claims(platform, subject, "PATIENT"));

    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        segment(&claims(platform, subject, "ADMIN")),
        parts[2]
    );

    vec![
        ("expired", with(&|c| c["exp"] = json!(now - 120))),
        ("nbf in the future", with(&|c| c["nbf"] = json!(now + 600))),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example/api/auth")),
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("someone-else")),
        ),
        (
            "no expiry",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("alg none", alg_none),
        ("HS256 signed with the public key", hmac_with_public_key),
        ("HS256 signed with the public JWK", hmac_with_public_jwk),
        ("unknown kid", unknown_kid),
        ("known kid, other key", wrong_signature),
        ("tampered payload", tampered),
        ("not a JWT", "definitely.not.a-token".to_owned()),
    ]
}
