//! One helper per endpoint that tests use again and again, so tests read as what they
//! check. Requests go through the gateway when it runs, otherwise to the owning service.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN_EMAIL, ADMIN_PASSWORD, Service, TestPlatform};

/// A response: status, headers and the JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The problem document's `code`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// An access token and, for logins, the refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
}

impl TestPlatform {
    /// Where API requests go: the gateway if it runs, otherwise `owner`.
    pub fn entry(&self, owner: Service) -> Service {
        if self.runs(Service::Gateway) {
            Service::Gateway
        } else {
            owner
        }
    }

    /// Sends a request to `service` and reads the reply.
    pub async fn call_service(
        &self,
        service: Service,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client().request(method, self.url(service, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends a request through the gateway (or to the identity service when alone).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_service(self.entry(Service::Identity), method, path, token, body)
            .await
    }

    /// `POST /api/auth/token` with a form.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> Reply {
        let response = self
            .client()
            .post(self.url(self.entry(Service::Identity), "/api/auth/token"))
            .form(form)
            .send()
            .await
            .expect("the token endpoint answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Logs in with the password grant; panics unless it succeeds.
    pub async fn login(&self, login: &str, password: &str) -> Tokens {
        let reply = self
            .token_request(&[
                ("grant_type", "password"),
                ("username", login),
                ("password", password),
            ])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "login of {login} failed: {:?}",
            reply.body
        );
        Tokens {
            access: reply.body["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned(),
            refresh: reply.body["refresh_token"].as_str().map(str::to_owned),
        }
    }

    /// The first administrator's access token.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access
    }

    /// Registers a patient with `email` and a fixed password; returns the user and a token.
    pub async fn register_patient(&self, email: &str) -> (Value, String) {
        let reply = self
            .call(
                Method::POST,
                "/api/users/patients",
                None,
                Some(json!({
                    "first_name": "Pat",
                    "last_name": "Ient",
                    "email": email,
                    "password": "patient passphrase",
                })),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "registration failed: {:?}",
            reply.body
        );
        let token = self.login(email, "patient passphrase").await.access;
        (reply.body, token)
    }

    /// Creates a department as `admin`.
    pub async fn create_department(&self, admin: &str, name: &str) -> Value {
        let reply = self
            .call(
                Method::POST,
                "/api/departments",
                Some(admin),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body
    }

    /// Creates a staff member as `admin`: `role` is `DOCTOR`, `NURSE` or `ADMIN`; the
    /// password is `staff passphrase`. Returns the user and a token.
    pub async fn create_staff(
        &self,
        admin: &str,
        role: &str,
        email: &str,
        department_id: Option<&str>,
    ) -> (Value, String) {
        let mut body = json!({
            "role": role,
            "first_name": "Sam",
            "last_name": format!("{role} Staff").to_lowercase(),
            "email": email,
            "password": "staff passphrase",
        });
        if let Some(department_id) = department_id {
            body["department_id"] = json!(department_id);
        }
        if role == "DOCTOR" {
            body["specialization"] = json!("Cardiology");
            body["years_of_experience"] = json!(12);
            body["consultation_fee"] = json!({"amount": 6000, "currency": "EUR"});
        }
        let reply = self
            .call(Method::POST, "/api/users/staff", Some(admin), Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "creating {role} failed: {:?}",
            reply.body
        );
        let token = self.login(email, "staff passphrase").await.access;
        (reply.body, token)
    }
}
