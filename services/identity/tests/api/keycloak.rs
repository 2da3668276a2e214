//! Keycloak mode against an in-test server that answers as Keycloak's documented Admin REST
//! API and token endpoint do: 201 with `Location`, 409 on duplicates, 401 on a bad token.
//! Tokens are Keycloak-shaped: RS256, `realm_access`, `resource_access`, `azp`, `typ: JWT`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const REALM: &str = "polyclinic";
const CLIENT_SECRET: &str = "identity-client-secret-for-tests";

#[derive(Default)]
struct Realm {
    users: HashMap<Uuid, Value>,
    roles: HashMap<Uuid, Vec<String>>,
    passwords: HashMap<Uuid, String>,
    valid_tokens: Vec<String>,
    token_grants: usize,
    deleted: Vec<Uuid>,
    logged_out: Vec<Uuid>,
}

#[derive(Clone)]
struct FakeKeycloak {
    realm: Arc<Mutex<Realm>>,
    address: SocketAddr,
}

impl FakeKeycloak {
    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.url())
    }

    fn user_by_email(&self, email: &str) -> Option<(Uuid, Value)> {
        let realm = self.realm.lock().unwrap();
        realm
            .users
            .iter()
            .find(|(_, user)| {
                user["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .map(|(id, user)| (*id, user.clone()))
    }

    fn roles_of(&self, id: Uuid) -> Vec<String> {
        self.realm
            .lock()
            .unwrap()
            .roles
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    /// A Keycloak-shaped access token for `subject` with realm and client roles.
    fn token(&self, subject: Uuid, realm_roles: &[&str], client_roles: &[&str]) -> String {
        self.token_with_clients(
            subject,
            realm_roles,
            json!({"polyclinic-api": {"roles": client_roles}, "account": {"roles": ["manage-account"]}}),
        )
    }

    /// A token whose `resource_access` (every client's roles) is `clients`.
    fn token_with_clients(&self, subject: Uuid, realm_roles: &[&str], clients: Value) -> String {
        let now = chrono::Utc::now().timestamp();
        let realm_roles = [realm_roles, &["offline_access", "default-roles-polyclinic"]].concat();
        let claims = json!({
            "exp": now + 300, "iat": now, "nbf": now, "jti": Uuid::new_v4(),
            "iss": self.issuer(), "aud": ["polyclinic-api", "account"], "sub": subject,
            "typ": "Bearer", "azp": "polyclinic-app", "sid": Uuid::new_v4(),
            "realm_access": {"roles": realm_roles},
            "resource_access": clients,
            "preferred_username": "someone", "email": "someone@clinic.example",
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("keycloak-test-key".into());
        header.typ = Some("JWT".into());
        let key = EncodingKey::from_rsa_der(include_bytes!("../fixtures/keycloak-test-key.der"));
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    /// Makes every admin token invalid, as an expiry or a revocation would.
    fn expire_admin_tokens(&self) {
        self.realm.lock().unwrap().valid_tokens.clear();
    }
}

fn authorized(state: &FakeKeycloak, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    state
        .realm
        .lock()
        .unwrap()
        .valid_tokens
        .iter()
        .any(|token| token == presented)
}

macro_rules! guard {
    ($state:expr, $headers:expr) => {
        if !authorized(&$state, &$headers) {
            return (AxumStatus::UNAUTHORIZED, Json(json!({"error": "HTTP 401 Unauthorized"}))).into_response();
        }
    };
}

async fn token(
    State(state): State<FakeKeycloak>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some("polyclinic-identity")
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !valid {
        return (
            AxumStatus::UNAUTHORIZED,
            Json(json!({"error": "unauthorized_client"})),
        )
            .into_response();
    }
    let token = format!("admin-token-{}", Uuid::new_v4());
    let mut realm = state.realm.lock().unwrap();
    realm.valid_tokens.push(token.clone());
    realm.token_grants += 1;
    Json(json!({"access_token": token, "expires_in": 300, "token_type": "Bearer"})).into_response()
}

async fn certs() -> Json<Value> {
    let jwk: Value =
        serde_json::from_str(include_str!("../fixtures/keycloak-test-key.jwk.json")).unwrap();
    Json(
        json!({"keys": [jwk, {"kid": "enc-key", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"}]}),
    )
}

async fn create_user(
    State(state): State<FakeKeycloak>,
    headers: HeaderMap,
    Json(user): Json<Value>,
) -> Response {
    guard!(state, headers);
    let mut realm = state.realm.lock().unwrap();
    let clash = realm.users.values().any(|existing| {
        existing["username"].as_str().map(str::to_lowercase)
            == user["username"].as_str().map(str::to_lowercase)
            || existing["email"].as_str().map(str::to_lowercase)
                == user["email"].as_str().map(str::to_lowercase)
    });
    if clash {
        return (
            AxumStatus::CONFLICT,
            Json(json!({"errorMessage": "User exists with same username"})),
        )
            .into_response();
    }
    let id = Uuid::new_v4();
    let password = user["credentials"][0]["value"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let mut stored = user.clone();
    stored.as_object_mut().unwrap().remove("credentials");
    stored["id"] = json!(id);
    realm.users.insert(id, stored);
    realm.passwords.insert(id, password);
    let location = format!("http://{}/admin/realms/{REALM}/users/{id}", state.address);
    (AxumStatus::CREATED, [(header::LOCATION, location)]).into_response()
}

async fn search_users(
    State(state): State<FakeKeycloak>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    guard!(state, headers);
    let email = query.get("email").cloned().unwrap_or_default();
    let found: Vec<Value> = state
        .user_by_email(&email)
        .map(|(_, user)| user)
        .into_iter()
        .collect();
    Json(found).into_response()
}

async fn update_user(
    State(state): State<FakeKeycloak>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(change): Json<Value>,
) -> Response {
    guard!(state, headers);
    let mut realm = state.realm.lock().unwrap();
    let Some(user) = realm.users.get_mut(&id) else {
        return AxumStatus::NOT_FOUND.into_response();
    };
    for (key, value) in change.as_object().unwrap() {
        user[key] = value.clone();
    }
    AxumStatus::NO_CONTENT.into_response()
}

async fn delete_user(
    State(state): State<FakeKeycloak>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Response {
    guard!(state, headers);
    let mut realm = state.realm.lock().unwrap();
    if realm.users.remove(&id).is_none() {
        return AxumStatus::NOT_FOUND.into_response();
    }
    realm.deleted.push(id);
    AxumStatus::NO_CONTENT.into_response()
}

async fn log_out(
    State(state): State<FakeKeycloak>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Response {
    guard!(state, headers);
    let mut realm = state.realm.lock().unwrap();
    if !realm.users.contains_key(&id) {
        return AxumStatus::NOT_FOUND.into_response();
    }
    realm.logged_out.push(id);
    AxumStatus::NO_CONTENT.into_response()
}

async fn reset_password(
    State(state): State<FakeKeycloak>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(credential): Json<Value>,
) -> Response {
    guard!(state, headers);
    let mut realm = state.realm.lock().unwrap();
    if !realm.users.contains_key(&id) {
        return AxumStatus::NOT_FOUND.into_response();
    }
    realm
        .passwords
        .insert(id, credential["value"].as_str().unwrap_or("").to_owned());
    AxumStatus::NO_CONTENT.into_response()
}

async fn role(
    State(state): State<FakeKeycloak>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    guard!(state, headers);
    if !["ADMIN", "DOCTOR", "NURSE", "PATIENT", "SERVICE"].contains(&name.as_str()) {
        return AxumStatus::NOT_FOUND.into_response();
    }
    Json(json!({"id": format!("role-{name}"), "name": name, "composite": false})).into_response()
}

async fn role_mappings(
    State(state): State<FakeKeycloak>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(roles): Json<Vec<Value>>,
) -> Response {
    guard!(state, headers);
    let mut realm = state.realm.lock().unwrap();
    if !realm.users.contains_key(&id) {
        return AxumStatus::NOT_FOUND.into_response();
    }
    let names: Vec<String> = roles
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    let held = realm.roles.entry(id).or_default();
    if method == axum::http::Method::DELETE {
        held.retain(|name| !names.contains(name));
    } else {
        held.extend(names);
    }
    AxumStatus::NO_CONTENT.into_response()
}

async fn start_keycloak() -> FakeKeycloak {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = FakeKeycloak {
        realm: Arc::default(),
        address,
    };
    let admin = format!("/admin/realms/{REALM}");
    let app = Router::new()
        .route(
            &format!("/realms/{REALM}/protocol/openid-connect/token"),
            post(token),
        )
        .route(
            &format!("/realms/{REALM}/protocol/openid-connect/certs"),
            get(certs),
        )
        .route(
            &format!("{admin}/users"),
            post(create_user).get(search_users),
        )
        .route(
            &format!("{admin}/users/{{id}}"),
            put(update_user).delete(delete_user),
        )
        .route(
            &format!("{admin}/users/{{id}}/reset-password"),
            put(reset_password),
        )
        .route(&format!("{admin}/users/{{id}}/logout"), post(log_out))
        .route(
            &format!("{admin}/users/{{id}}/role-mappings/realm"),
            post(role_mappings).delete(role_mappings),
        )
        .route(&format!("{admin}/roles/{{name}}"), get(role))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    state
}

async fn keycloak_platform(keycloak: &FakeKeycloak) -> TestPlatform {
    let url = keycloak.url();
    TestPlatform::start_with(&[Service::Identity, Service::Gateway], move |config, _| {
        config.identity_provider = polyclinic_config::IdentityProvider::Keycloak;
        config.keycloak.url = url;
        config.keycloak.client_secret = Some(CLIENT_SECRET.into());
    })
    .await
}

fn admin_token(keycloak: &FakeKeycloak) -> String {
    let (admin_id, _) = keycloak
        .user_by_email(polyclinic_testing::ADMIN_EMAIL)
        .expect("the admin is in Keycloak");
    keycloak.token(admin_id, &["ADMIN"], &[])
}

#[tokio::test]
async fn the_first_admin_is_ensured_in_keycloak_with_the_admin_role() {
    let keycloak = start_keycloak().await;
    let platform = keycloak_platform(&keycloak).await;
    let (id, user) = keycloak
        .user_by_email(polyclinic_testing::ADMIN_EMAIL)
        .unwrap();
    assert_eq!(user["enabled"], true);
    assert_eq!(keycloak.roles_of(id), ["ADMIN"]);
    let token = admin_token(&keycloak);
    let me = platform
        .call(Method::GET, "/api/users/me", Some(&token), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["id"], json!(id), "our id is Keycloak's id");
    assert_eq!(me.body["role"], "ADMIN");
}

#[tokio::test]
async fn staff_are_created_updated_disabled_and_reset_through_the_admin_api() {
    let keycloak = start_keycloak().await;
    let platform = keycloak_platform(&keycloak).await;
    let admin = admin_token(&keycloak);
    let department = platform.create_department(&admin, "Keycloak Ward").await;

    let created = platform
        .call(
            Method::POST,
            "/api/users/staff",
            Some(&admin),
            Some(json!({"role": "NURSE", "first_name": "Kay", "last_name": "Cloak", "email": "kay@clinic.example",
                "password": "nurse passphrase", "department_id": department["id"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let (kc_id, kc_user) = keycloak.user_by_email("kay@clinic.example").unwrap();
    assert_eq!(created.body["id"], json!(kc_id));
    assert_eq!(kc_user["firstName"], "Kay");
    assert_eq!(keycloak.roles_of(kc_id), ["NURSE"]);
    assert_eq!(
        keycloak.realm.lock().unwrap().passwords[&kc_id],
        "nurse passphrase"
    );

    let path = format!("/api/users/{kc_id}");
    let renamed = platform
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"last_name": "Renamed"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(
        keycloak.user_by_email("kay@clinic.example").unwrap().1["lastName"],
        "Renamed"
    );

    let promoted = platform
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(
                json!({"role": "DOCTOR", "specialization": "Triage", "years_of_experience": 4,
                "consultation_fee": {"amount": 4000, "currency": "EUR"}}),
            ),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{:?}", promoted.body);
    assert_eq!(
        keycloak.roles_of(kc_id),
        ["DOCTOR"],
        "the realm role follows the role"
    );

    let reset = platform
        .call(
            Method::POST,
            &format!("{path}/password"),
            Some(&admin),
            Some(json!({"new_password": "another passphrase"})),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(
        keycloak.realm.lock().unwrap().passwords[&kc_id],
        "another passphrase"
    );

    let disabled = platform
        .call(Method::DELETE, &path, Some(&admin), None)
        .await;
    assert_eq!(disabled.status, StatusCode::NO_CONTENT);
    assert_eq!(
        keycloak.user_by_email("kay@clinic.example").unwrap().1["enabled"],
        false
    );
}

#[tokio::test]
async fn a_failed_local_insert_removes_the_keycloak_user_again() {
    let keycloak = start_keycloak().await;
    let platform = keycloak_platform(&keycloak).await;
    let admin = admin_token(&keycloak);
    let reply = platform
        .call(
            Method::POST,
            "/api/users/staff",
            Some(&admin),
            Some(json!({"role": "NURSE", "first_name": "Orphan", "last_name": "Nurse", "email": "orphan@clinic.example",
                "password": "nurse passphrase", "department_id": Uuid::now_v7()})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "unknown_department"),
        "{:?}",
        reply.body
    );
    assert!(
        keycloak.user_by_email("orphan@clinic.example").is_none(),
        "compensated"
    );
    assert_eq!(keycloak.realm.lock().unwrap().deleted.len(), 1);
}

#[tokio::test]
async fn a_duplicate_in_keycloak_is_a_409_and_an_expired_admin_token_is_renewed() {
    let keycloak = start_keycloak().await;
    let platform = keycloak_platform(&keycloak).await;
    let admin = admin_token(&keycloak);
    let body = json!({"first_name": "Dup", "last_name": "Licate", "email": "dup@clinic.example", "password": "patient passphrase"});
    let first = platform
        .call(
            Method::POST,
            "/api/users/patients",
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let grants_before = keycloak.realm.lock().unwrap().token_grants;

    keycloak.expire_admin_tokens();
    let second = platform
        .call(Method::POST, "/api/users/patients", None, Some(body))
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.code(), "email_taken");
    assert_eq!(
        keycloak.realm.lock().unwrap().token_grants,
        grants_before + 1,
        "renewed after a 401"
    );
    let _ = admin;
}

#[tokio::test]
async fn keycloak_shaped_tokens_are_verified_with_realm_and_client_roles() {
    let keycloak = start_keycloak().await;
    let platform = keycloak_platform(&keycloak).await;
    let (admin_id, _) = keycloak
        .user_by_email(polyclinic_testing::ADMIN_EMAIL)
        .unwrap();

    // An admin role granted only as a client role of the API still counts.
    let client_role = keycloak.token(admin_id, &[], &["ADMIN"]);
    for service in [Service::Gateway, Service::Identity] {
        let reply = platform
            .call_service(service, Method::GET, "/api/users", Some(&client_role), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{service}: {:?}", reply.body);
    }
    // Keycloak's default roles alone grant nothing.
    let no_role = keycloak.token(admin_id, &[], &[]);
    let reply = platform
        .call(Method::GET, "/api/users", Some(&no_role), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // The built-in provider's endpoints are off: Keycloak issues tokens.
    let builtin = platform
        .call(Method::GET, "/api/auth/jwks", None, None)
        .await;
    assert_eq!(builtin.status, StatusCode::NOT_FOUND);
    assert_eq!(builtin.code(), "issued_by_keycloak");
}

#[tokio::test]
async fn an_admin_role_on_another_keycloak_client_grants_nothing() {
    let keycloak = start_keycloak().await;
    let platform = keycloak_platform(&keycloak).await;
    let (admin_id, _) = keycloak
        .user_by_email(polyclinic_testing::ADMIN_EMAIL)
        .unwrap();
    // A patient of the realm whom another application of the same realm made its admin.
    let foreign = keycloak.token_with_clients(
        admin_id,
        &["PATIENT"],
        json!({"billing-app": {"roles": ["admin"]}, "account": {"roles": ["ADMIN", "manage-account"]}}),
    );
    for service in [Service::Gateway, Service::Identity] {
        let reply = platform
            .call_service(service, Method::GET, "/api/users", Some(&foreign), None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{service}: {:?}",
            reply.body
        );
    }
    let own = platform
        .call(Method::GET, "/api/users/me", Some(&foreign), None)
        .await;
    assert_eq!(
        own.status,
        StatusCode::OK,
        "the realm's PATIENT role still counts"
    );
}

#[test]
fn the_shipped_realm_has_the_roles_clients_and_audience_the_services_expect() {
    let realm: Value = serde_json::from_str(include_str!(
        "../../../../deploy/keycloak/polyclinic-realm.json"
    ))
    .unwrap();
    assert_eq!(realm["realm"], REALM);
    let roles: Vec<&str> = realm["roles"]["realm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for role in ["ADMIN", "DOCTOR", "NURSE", "PATIENT", "SERVICE"] {
        assert!(roles.contains(&role), "{role}");
    }
    let clients = realm["clients"].as_array().unwrap();
    let client = |id: &str| {
        clients
            .iter()
            .find(|c| c["clientId"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    let app = client("polyclinic-app");
    assert_eq!(app["publicClient"], true);
    assert_eq!(app["attributes"]["pkce.code.challenge.method"], "S256");
    let audience = |client: &Value| {
        client["protocolMappers"].as_array().is_some_and(|mappers| {
            mappers.iter().any(|m| {
                m["protocolMapper"] == "oidc-audience-mapper"
                    && m["config"]["included.custom.audience"] == "polyclinic-api"
            })
        })
    };
    assert!(audience(app));
    for service in [
        "identity",
        "gateway",
        "appointments",
        "payments",
        "notifications",
        "prescriptions",
    ] {
        let confidential = client(&format!("polyclinic-{service}"));
        assert_eq!(confidential["publicClient"], false, "{service}");
        assert_eq!(confidential["serviceAccountsEnabled"], true, "{service}");
        assert!(audience(confidential), "{service}");
    }
    // Each service account holds exactly the scopes the built-in provider grants the same
    // client, as client roles of the API.
    let accounts = realm["users"].as_array().unwrap();
    for service in polyclinic_config::Service::ALL {
        let granted = polyclinic_auth::scopes::granted_to(service);
        let account = accounts
            .iter()
            .find(|u| u["serviceAccountClientId"] == format!("polyclinic-{service}"));
        let Some(account) = account else {
            assert!(granted.is_empty(), "{service} needs a service account");
            continue;
        };
        let mut held: Vec<&str> = account["clientRoles"]["polyclinic-api"]
            .as_array()
            .map(|roles| roles.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        held.sort_unstable();
        let mut expected = granted.to_vec();
        expected.sort_unstable();
        assert_eq!(held, expected, "{service}");
        assert!(
            account["realmRoles"]
                .as_array()
                .is_some_and(|roles| roles.contains(&json!("SERVICE"))),
            "{service}"
        );
    }
    let defined: Vec<&str> = realm["roles"]["client"]["polyclinic-api"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|role| role["name"].as_str())
        .collect();
    for scope in polyclinic_auth::scopes::ALL {
        assert!(
            defined.contains(scope),
            "{scope} is a client role of the API"
        );
    }
    let identity_account = accounts
        .iter()
        .find(|u| u["serviceAccountClientId"] == "polyclinic-identity")
        .unwrap();
    assert!(
        identity_account["clientRoles"]["realm-management"]
            .as_array()
            .unwrap()
            .contains(&json!("manage-users"))
    );
}
