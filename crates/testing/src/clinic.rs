//! A small clinic for booking tests: a department with a room, a doctor and a nurse, and
//! helpers for the booking flow's endpoints.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Config, Reply, Service, TestPlatform};

/// The people and places of a test clinic.
#[derive(Debug, Clone)]
pub struct Clinic {
    pub admin: String,
    pub department_id: String,
    pub room_id: String,
    pub doctor_id: String,
    pub doctor: String,
    pub doctor_email: String,
    pub nurse_id: String,
    pub nurse: String,
    pub nurse_email: String,
}

/// Waits up to 30 s for `check` to return `Some`, polling every 25 ms.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(Duration::from_secs(30), what, check).await
}

/// Like [`eventually`], waiting up to `limit` (for what waits out a retry's backoff).
pub async fn eventually_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Points `config` at the test Kafka broker (`POLYCLINIC_TEST_KAFKA`, default
/// `127.0.0.1:9092`) with topics and groups of this test's own.
pub fn use_kafka(config: &mut Config) {
    config.event_bus = polyclinic_config::EventBus::Kafka;
    config.kafka.brokers =
        std::env::var("POLYCLINIC_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    config.kafka.properties = std::env::var("POLYCLINIC_TEST_KAFKA_PROPERTIES")
        .unwrap_or_else(|_| "batch.num.messages=1".into())
        .split(',')
        .filter(|property| !property.is_empty())
        .map(str::to_owned)
        .collect();
    config.kafka.partitions = 3;
    config.kafka.topic_prefix = format!("test-{}-", uuid::Uuid::new_v4().simple());
}

impl TestPlatform {
    /// Sets up a clinic: a department with a room, a doctor (fee 60.00 EUR) and a nurse in
    /// it. The doctor works every day from 00:00 to 23:00 in 60-minute slots, so that tests
    /// find slots at any hour.
    pub async fn clinic(&self) -> Clinic {
        let admin = self.admin_token().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let department = self
            .create_department(&admin, &format!("Cardiology {}", &suffix[..8]))
            .await;
        let department_id = department["id"]
            .as_str()
            .expect("a department id")
            .to_owned();
        let room = self
            .call(
                Method::POST,
                "/api/rooms",
                Some(&admin),
                Some(json!({"name": format!("Room {}", &suffix[..8]), "department_id": department_id})),
            )
            .await;
        assert_eq!(room.status, StatusCode::CREATED, "{:?}", room.body);
        let doctor_email = format!("doctor-{suffix}@clinic.example");
        let nurse_email = format!("nurse-{suffix}@clinic.example");
        let (doctor, doctor_token) = self
            .create_staff(&admin, "DOCTOR", &doctor_email, Some(&department_id))
            .await;
        let (nurse, nurse_token) = self
            .create_staff(&admin, "NURSE", &nurse_email, Some(&department_id))
            .await;
        let clinic = Clinic {
            admin,
            department_id,
            room_id: room.body["id"].as_str().expect("a room id").to_owned(),
            doctor_id: doctor["id"].as_str().expect("a doctor id").to_owned(),
            doctor: doctor_token,
            doctor_email,
            nurse_id: nurse["id"].as_str().expect("a nurse id").to_owned(),
            nurse: nurse_token,
            nurse_email,
        };
        self.works_every_hour(&clinic.admin, &clinic.doctor_id)
            .await;
        clinic
    }

    /// Gives `doctor_id` the test clinic's week: every day from 00:00 to 23:00 in 60-minute
    /// slots.
    pub async fn works_every_hour(&self, admin: &str, doctor_id: &str) {
        let days: Vec<Value> = (1..=7)
            .map(|weekday| json!({"weekday": weekday, "starts_at": "00:00", "ends_at": "23:00", "slot_minutes": 60}))
            .collect();
        let schedule = self
            .book(
                Method::PUT,
                &format!("/api/doctors/{doctor_id}/schedule"),
                Some(admin),
                Some(json!({ "days": days })),
            )
            .await;
        assert_eq!(schedule.status, StatusCode::OK, "{:?}", schedule.body);
    }

    /// Another doctor of the clinic's department, working the same hours; their id.
    pub async fn another_doctor(&self, clinic: &Clinic, email: &str) -> String {
        let (doctor, _) = self
            .create_staff(&clinic.admin, "DOCTOR", email, Some(&clinic.department_id))
            .await;
        let id = doctor["id"].as_str().expect("a doctor id").to_owned();
        self.works_every_hour(&clinic.admin, &id).await;
        id
    }

    /// Another room of the clinic's department; its id.
    pub async fn another_room(&self, clinic: &Clinic, name: &str) -> String {
        let room = self
            .call(
                Method::POST,
                "/api/rooms",
                Some(&clinic.admin),
                Some(json!({"name": name, "department_id": clinic.department_id})),
            )
            .await;
        assert_eq!(room.status, StatusCode::CREATED, "{:?}", room.body);
        room.body["id"].as_str().expect("a room id").to_owned()
    }

    /// Another nurse of the clinic's department; their id.
    pub async fn another_nurse(&self, clinic: &Clinic, email: &str) -> String {
        let (nurse, _) = self
            .create_staff(&clinic.admin, "NURSE", email, Some(&clinic.department_id))
            .await;
        nurse["id"].as_str().expect("a nurse id").to_owned()
    }

    /// Sends a request to the appointments or payments API (through the gateway when it runs).
    pub async fn book(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let owner = if path.starts_with("/api/payments") {
            Service::Payments
        } else {
            Service::Appointments
        };
        self.call_service(self.entry(owner), method, path, token, body)
            .await
    }

    /// The free slots of `doctor_id` from `from` (a local date, or today) for a week.
    pub async fn free_slots(&self, doctor_id: &str, from: Option<&str>) -> Vec<String> {
        let query = from.map(|from| format!("?from={from}")).unwrap_or_default();
        let reply = self
            .book(
                Method::GET,
                &format!("/api/doctors/{doctor_id}/availability{query}"),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["slots"]
            .as_array()
            .expect("slots")
            .iter()
            .filter(|slot| slot["state"] == "free")
            .map(|slot| slot["starts_at"].as_str().expect("a start").to_owned())
            .collect()
    }

    /// Reserves `starts_at` with `doctor_id` as `patient`; panics unless it succeeds.
    pub async fn reserve(&self, patient: &str, doctor_id: &str, starts_at: &str) -> Value {
        let reply = self
            .book(
                Method::POST,
                "/api/appointments",
                Some(patient),
                Some(json!({"doctor_id": doctor_id, "starts_at": starts_at, "reason": "check-up"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body
    }

    /// Confirms `payment_id` with a test card as `patient`.
    pub async fn pay(&self, patient: &str, payment_id: &str, card: &str) -> Reply {
        self.book(
            Method::POST,
            &format!("/api/payments/{payment_id}/confirm"),
            Some(patient),
            Some(json!({ "payment_method": card })),
        )
        .await
    }

    /// Waits until the appointment, as `token` reads it, has `status`.
    pub async fn appointment_becomes(&self, token: &str, id: &str, status: &str) -> Value {
        eventually(&format!("appointment {id} to become {status}"), || async {
            let reply = self
                .book(
                    Method::GET,
                    &format!("/api/appointments/{id}"),
                    Some(token),
                    None,
                )
                .await;
            (reply.body["status"] == status).then_some(reply.body)
        })
        .await
    }

    /// Waits until the payment, as `token` reads it, satisfies `done`.
    pub async fn payment_becomes(
        &self,
        token: &str,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(&format!("payment {id}: {what}"), || async {
            let reply = self
                .book(
                    Method::GET,
                    &format!("/api/payments/{id}"),
                    Some(token),
                    None,
                )
                .await;
            done(&reply.body).then_some(reply.body)
        })
        .await
    }

    /// Reserves a slot for `patient` and pays it with a test card; returns the appointment
    /// once it is PAID.
    pub async fn paid_appointment(&self, patient: &str, doctor_id: &str, starts_at: &str) -> Value {
        let reserved = self.reserve(patient, doctor_id, starts_at).await;
        let payment_id = reserved["payment"]["id"].as_str().expect("a payment id");
        let paid = self.pay(patient, payment_id, "pm_card_visa").await;
        assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
        let id = reserved["id"].as_str().expect("an appointment id");
        self.appointment_becomes(patient, id, "PAID").await
    }

    /// Approves a paid appointment with the clinic's room and nurse.
    pub async fn approve(&self, clinic: &Clinic, id: &str) -> Reply {
        self.book(
            Method::POST,
            &format!("/api/appointments/{id}/approve"),
            Some(&clinic.admin),
            Some(json!({"room_id": clinic.room_id, "nurse_id": clinic.nurse_id})),
        )
        .await
    }
}
