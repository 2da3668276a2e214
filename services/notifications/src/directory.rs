//! Who the people and places in a message are, asked of the identity service with this
//! service's own token (client credentials), since no user is behind an event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use polyclinic_client::{CallContext, ClientError, ServiceClient, ServiceTokens};
use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// A person as messages need them.
#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub role: String,
    pub status: String,
}

impl Person {
    pub fn is_active(&self) -> bool {
        self.status == "ACTIVE"
    }

    /// How messages name them: doctors with their title.
    pub fn display_name(&self) -> String {
        let name = format!("{} {}", self.first_name, self.last_name);
        if self.role == "DOCTOR" {
            format!("Dr {name}")
        } else {
            name
        }
    }
}

#[derive(Debug, Deserialize)]
struct Room {
    name: String,
}

/// How long an answer about a person is reused: a burst of events about the same people
/// asks once, and a deactivation is seen within this long.
const PERSON_TTL: Duration = Duration::from_secs(10);

/// The identity service, asked as this service.
#[derive(Debug)]
pub struct Directory {
    client: ServiceClient,
    tokens: ServiceTokens,
    identity: String,
    people: Mutex<HashMap<Uuid, (Instant, Option<Person>)>>,
}

impl Directory {
    pub fn new(client: ServiceClient, tokens: ServiceTokens, identity_url: &str) -> Self {
        Self {
            client,
            tokens,
            identity: identity_url.trim_end_matches('/').to_owned(),
            people: Mutex::new(HashMap::new()),
        }
    }

    /// `GET path` as this service; `None` for a 404. A refused token is renewed once.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request_id: Option<&str>,
    ) -> Result<Option<T>, ClientError> {
        let url = format!("{}{path}", self.identity);
        // The lookup is part of the trace of the event being handled.
        let trace = polyclinic_telemetry::TraceContext::current().unwrap_or_default();
        for attempt in 0..2 {
            let token = self.tokens.token().await?;
            let context = CallContext {
                bearer: Some(&token),
                request_id,
                trace: trace.as_headers(),
            };
            match self.client.get_json(&url, context).await {
                Ok(value) => return Ok(Some(value)),
                Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => return Ok(None),
                Err(err) if err.status() == Some(StatusCode::UNAUTHORIZED) && attempt == 0 => {
                    self.tokens.forget().await;
                }
                Err(err) => return Err(err),
            }
        }
        Err(ClientError::Unreachable {
            url,
            reason: "the service token was refused twice".to_owned(),
        })
    }

    /// The person, as the identity service answered at most 10 seconds ago.
    pub async fn person(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Option<Person>, ClientError> {
        let cached = self.people.lock().ok().and_then(|people| {
            people
                .get(&id)
                .filter(|(at, _)| at.elapsed() < PERSON_TTL)
                .map(|(_, person)| person.clone())
        });
        if let Some(person) = cached {
            return Ok(person);
        }
        let person: Option<Person> = self.get(&format!("/api/users/{id}"), request_id).await?;
        if let Ok(mut people) = self.people.lock() {
            people.retain(|_, (at, _)| at.elapsed() < PERSON_TTL);
            people.insert(id, (Instant::now(), person.clone()));
        }
        Ok(person)
    }

    pub async fn room_name(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        Ok(self
            .get::<Room>(&format!("/api/rooms/{id}"), request_id)
            .await?
            .map(|room| room.name))
    }
}
