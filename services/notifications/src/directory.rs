//! Who the people and places in a message or a calendar are, asked of the identity service
//! with this service's own token (client credentials), since no user is behind an event.

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
    /// A doctor's profile: where they work.
    #[serde(default)]
    pub doctor: Option<DoctorProfile>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DoctorProfile {
    pub department_id: Uuid,
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

/// A room, and the department it belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct Room {
    pub name: String,
    pub department_id: Uuid,
}

#[derive(Debug, Clone, Deserialize)]
struct Department {
    name: String,
}

/// How long an answer about a person is reused: a burst of events about the same people
/// asks once, and a deactivation is seen within this long.
const PERSON_TTL: Duration = Duration::from_secs(10);

/// How long an answer about a room or a department is reused: they are renamed rarely, and
/// a calendar feed names many.
const PLACE_TTL: Duration = Duration::from_secs(60);

/// Answers kept for a while, by id.
#[derive(Debug)]
struct Cache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<Uuid, (Instant, Option<T>)>>,
}

impl<T: Clone> Cache<T> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer about `id` if it is fresh: `Some(None)` is a fresh "there is none".
    fn get(&self, id: Uuid) -> Option<Option<T>> {
        self.entries.lock().ok().and_then(|entries| {
            entries
                .get(&id)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, value)| value.clone())
        })
    }

    fn put(&self, id: Uuid, value: Option<T>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            entries.insert(id, (Instant::now(), value));
        }
    }
}

/// The identity service, asked as this service.
#[derive(Debug)]
pub struct Directory {
    client: ServiceClient,
    tokens: ServiceTokens,
    identity: String,
    people: Cache<Person>,
    rooms: Cache<Room>,
    departments: Cache<Department>,
}

impl Directory {
    pub fn new(client: ServiceClient, tokens: ServiceTokens, identity_url: &str) -> Self {
        Self {
            client,
            tokens,
            identity: identity_url.trim_end_matches('/').to_owned(),
            people: Cache::new(PERSON_TTL),
            rooms: Cache::new(PLACE_TTL),
            departments: Cache::new(PLACE_TTL),
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

    /// `GET path` as this service, through `cache`.
    async fn cached<T: Clone + serde::de::DeserializeOwned>(
        &self,
        cache: &Cache<T>,
        id: Uuid,
        path: String,
        request_id: Option<&str>,
    ) -> Result<Option<T>, ClientError> {
        if let Some(value) = cache.get(id) {
            return Ok(value);
        }
        let value: Option<T> = self.get(&path, request_id).await?;
        cache.put(id, value.clone());
        Ok(value)
    }

    /// The person, as the identity service answered at most 10 seconds ago.
    pub async fn person(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Option<Person>, ClientError> {
        self.cached(&self.people, id, format!("/api/users/{id}"), request_id)
            .await
    }

    /// The room, as the identity service answered at most a minute ago.
    pub async fn room(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Option<Room>, ClientError> {
        self.cached(&self.rooms, id, format!("/api/rooms/{id}"), request_id)
            .await
    }

    pub async fn room_name(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        Ok(self.room(id, request_id).await?.map(|room| room.name))
    }

    /// The department's name, as the identity service answered at most a minute ago.
    pub async fn department_name(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        let path = format!("/api/departments/{id}");
        Ok(self
            .cached(&self.departments, id, path, request_id)
            .await?
            .map(|department| department.name))
    }

    /// Where a visit of `doctor` in `room` (once one is assigned) takes place: the
    /// department and the room, as far as they are known.
    pub async fn location(
        &self,
        doctor: Option<&Person>,
        room: Option<Uuid>,
        request_id: Option<&str>,
    ) -> Result<String, ClientError> {
        let room = match room {
            Some(id) => self.room(id, request_id).await?,
            None => None,
        };
        let department_id = room.as_ref().map(|room| room.department_id).or_else(|| {
            doctor
                .and_then(|doctor| doctor.doctor.as_ref())
                .map(|profile| profile.department_id)
        });
        let department = match department_id {
            Some(id) => self.department_name(id, request_id).await?,
            None => None,
        };
        Ok(match (department, room) {
            (Some(department), Some(room)) => format!("{department}, {}", room.name),
            (None, Some(room)) => room.name,
            (Some(department), None) => department,
            (None, None) => String::new(),
        })
    }
}
