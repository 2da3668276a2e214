//! Emails through a real SMTP server on loopback (the harness's sink; `lettre` does the
//! sending), parsed as they arrived: who got what, once, on both buses; retries while the
//! server is away; resending; skipped recipients; the inbox.

use std::collections::BTreeMap;
use std::time::Duration;

use mail_parser::MessageParser;
use polyclinic_config::EmailTransport;
use polyclinic_testing::{
    Config, Service, SmtpSink, TcpProxy, TestPlatform, eventually, use_kafka,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A received email, parsed.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    /// Without the angle brackets.
    pub message_id: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn parse(sink: &SmtpSink) -> Vec<Email> {
    sink.received()
        .iter()
        .map(|received| {
            let message = MessageParser::default()
                .parse(&received.data)
                .expect("a parsable email");
            assert_eq!(received.to.len(), 1, "one recipient per message");
            Email {
                to: received.to[0].clone(),
                message_id: message.message_id().unwrap_or("").to_owned(),
                subject: message.subject().unwrap_or("").to_owned(),
                text: message
                    .body_text(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
                html: message
                    .body_html(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

pub fn send_to(config: &mut Config, address: std::net::SocketAddr) {
    config.email.transport = EmailTransport::Smtp;
    config.email.smtp_url = Some(format!("smtp://{address}?tls=none"));
    config.email.from = "Polyclinic <noreply@clinic.example>".into();
}

pub async fn platform_sending_to(
    address: std::net::SocketAddr,
    kafka: bool,
    tune: impl FnOnce(&mut Config),
) -> TestPlatform {
    TestPlatform::start_with(&Service::ALL, |config, _| {
        send_to(config, address);
        config.timezone = "Europe/Berlin".into();
        if kafka {
            use_kafka(config);
        }
        tune(config);
    })
    .await
}

/// Waits until the sink holds `count` emails, then a little longer to catch any extra.
pub async fn exactly(sink: &SmtpSink, count: usize) -> Vec<Email> {
    eventually(&format!("{count} emails"), || async {
        (sink.received().len() >= count).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let emails = parse(sink);
    assert_eq!(
        emails.len(),
        count,
        "{:#?}",
        emails
            .iter()
            .map(|e| (&e.to, &e.subject))
            .collect::<Vec<_>>()
    );
    emails
}

fn by_recipient(emails: &[Email]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for email in emails {
        map.entry(email.to.clone())
            .or_default()
            .push(email.subject.clone());
    }
    for subjects in map.values_mut() {
        subjects.sort();
    }
    map
}

async fn the_booking_flow_sends_each_person_the_right_emails_once(kafka: bool) {
    let sink = SmtpSink::start().await;
    let platform = platform_sending_to(sink.address(), kafka, |_| {}).await;
    let clinic = platform.clinic().await;
    let (patient, token) = platform.register_patient("ada@clinic.example").await;
    let free = platform.free_slots(&clinic.doctor_id, None).await;
    let starts_at = &free[2];
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, starts_at)
        .await;
    assert_eq!(
        platform
            .approve(&clinic, paid["id"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );

    // The admin, the doctor, the nurse and the patient were welcomed; the patient heard of
    // the authorisation; patient, doctor and nurse of the approval.
    let emails = exactly(&sink, 8).await;
    let users = platform
        .call(
            Method::GET,
            "/api/users?limit=100",
            Some(&clinic.admin),
            None,
        )
        .await;
    let email_of = |id: &str| {
        users.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .unwrap()["email"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (doctor_email, nurse_email) = (email_of(&clinic.doctor_id), email_of(&clinic.nurse_id));
    let patient_email = patient["email"].as_str().unwrap().to_owned();
    let got = by_recipient(&emails);
    assert_eq!(got["admin@polyclinic.local"], ["Welcome to Polyclinic"]);
    assert_eq!(got[&doctor_email].len(), 2, "{got:?}");
    assert_eq!(got[&nurse_email].len(), 2, "{got:?}");
    assert_eq!(got[&patient_email].len(), 3, "{got:?}");
    assert_eq!(got.len(), 4, "nobody else: {got:?}");

    let local = chrono::DateTime::parse_from_rfc3339(starts_at)
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Berlin);
    let (date, time) = (
        local.format("%A %-d %B %Y").to_string(),
        local.format("%H:%M").to_string(),
    );
    let find = |to: &str, start: &str| {
        emails
            .iter()
            .find(|e| e.to == to && e.subject.starts_with(start))
            .unwrap_or_else(|| panic!("{to}: {start}"))
            .clone()
    };
    let confirmed = find(&patient_email, "Confirmed:");
    assert_eq!(
        confirmed.subject,
        format!("Confirmed: {date} at {time} with Dr Sam doctor staff")
    );
    assert!(
        confirmed.text.contains("Room:") && confirmed.text.contains("60.00 EUR"),
        "{}",
        confirmed.text
    );
    assert!(
        confirmed.html.contains("<table>") && confirmed.html.contains(&time),
        "both parts: {}",
        confirmed.html
    );
    let authorised = find(&patient_email, "Payment authorised");
    assert!(authorised.text.contains("60.00 EUR") && authorised.text.contains(&time));
    let for_doctor = find(&doctor_email, "New appointment:");
    assert!(for_doctor.text.contains("Pat Ient") && for_doctor.text.contains("Nurse:"));
    let for_nurse = find(&nurse_email, "Assigned:");
    assert!(for_nurse.text.contains("Dr Sam doctor staff") && for_nurse.text.contains("Pat Ient"));

    // Every email is also in its recipient's inbox.
    let inbox = platform
        .call_service(
            Service::Gateway,
            Method::GET,
            "/api/notifications/me",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(inbox.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(inbox.body["unread_count"], 3);
    let sent = platform
        .call_service(
            Service::Gateway,
            Method::GET,
            "/api/notifications?status=SENT",
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(sent.body["items"].as_array().unwrap().len(), 8);
    assert!(
        sent.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["transport"] == "smtp" && n["attempts"] == 1)
    );
}

#[tokio::test]
async fn the_booking_flow_sends_each_person_the_right_emails_once_on_the_postgres_bus() {
    the_booking_flow_sends_each_person_the_right_emails_once(false).await;
}

#[tokio::test]
async fn the_booking_flow_sends_each_person_the_right_emails_once_on_the_kafka_bus() {
    the_booking_flow_sends_each_person_the_right_emails_once(true).await;
}

#[tokio::test]
async fn messages_wait_while_the_smtp_server_is_away_then_fail_and_are_resent_by_an_admin() {
    let sink = SmtpSink::start().await;
    let proxy = TcpProxy::start(sink.address()).await;
    let platform = TestPlatform::start_with(
        &[Service::Identity, Service::Notifications, Service::Gateway],
        |config, _| {
            send_to(config, proxy.address());
            config.email.retry_base_ms = 200;
            config.email.max_attempts = 4;
        },
    )
    .await;
    let admin = platform.admin_token().await;
    exactly(&sink, 1).await;

    // Away for a second: the retries carry the message through.
    proxy.cut();
    platform.register_patient("patient@clinic.example").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.received().len(), 1, "nothing while it is away");
    proxy.restore();
    let emails = exactly(&sink, 2).await;
    assert_eq!(emails[1].to, "patient@clinic.example");
    let retried = platform
        .call(
            Method::GET,
            "/api/notifications?template=welcome",
            Some(&admin),
            None,
        )
        .await;
    let patients = retried.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["recipient_email"] == "patient@clinic.example")
        .unwrap()
        .clone();
    assert_eq!(patients["status"], "SENT");
    assert!(patients["attempts"].as_i64().unwrap() >= 2, "{patients}");

    // Away for longer than every attempt: FAILED, visible to admins, sent again on request.
    proxy.cut();
    platform.register_patient("unlucky@clinic.example").await;
    let failed = eventually("the message to fail", || async {
        let reply = platform
            .call(
                Method::GET,
                "/api/notifications?status=FAILED",
                Some(&admin),
                None,
            )
            .await;
        reply.body["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
    })
    .await;
    assert_eq!(failed["recipient_email"], "unlucky@clinic.example");
    assert_eq!(failed["attempts"], 4);
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|error| !error.is_empty())
    );
    proxy.restore();
    let id = failed["id"].as_str().unwrap();
    let (_, patient) = platform.register_patient("nosy@clinic.example").await;
    let refused = platform
        .call(
            Method::POST,
            &format!("/api/notifications/{id}/resend"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let resent = platform
        .call(
            Method::POST,
            &format!("/api/notifications/{id}/resend"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{:?}", resent.body);
    let emails = exactly(&sink, 4).await;
    let resent: Vec<&Email> = emails
        .iter()
        .filter(|email| email.to == "unlucky@clinic.example")
        .collect();
    assert_eq!(resent.len(), 1);
    assert_eq!(
        resent[0].message_id,
        format!("{id}@clinic.example"),
        "the notification's own Message-ID, the same on every attempt"
    );
    let mut ids: Vec<&str> = emails
        .iter()
        .map(|email| email.message_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every message has its own Message-ID");
    let again = platform
        .call(
            Method::POST,
            &format!("/api/notifications/{id}/resend"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "notification_state"),
        "only failed ones"
    );
}

#[tokio::test]
async fn a_redelivered_event_and_a_second_instance_send_nothing_twice() {
    let sink = SmtpSink::start().await;
    let platform = TestPlatform::start_with(
        &[Service::Identity, Service::Notifications, Service::Gateway],
        |config, _| {
            send_to(config, sink.address());
        },
    )
    .await;
    // A second notifications instance on the same database, as a scaled-out deployment runs.
    let mut second = platform.config.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    second.notifications.port = listener.local_addr().unwrap().port();
    let shutdown = polyclinic_http::CancellationToken::new();
    let other = tokio::spawn(polyclinic_notifications::run(
        second,
        listener,
        shutdown.clone(),
    ));

    for n in 0..20 {
        platform
            .register_patient(&format!("twin{n}@clinic.example"))
            .await;
    }
    let emails = exactly(&sink, 21).await;
    let distinct: std::collections::BTreeSet<&str> = emails.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(distinct.len(), 21, "each welcome once");

    // The bus delivers every registration again, to a consumer that forgot it saw them: the
    // log's rows go to the end of the log and the consumer's inbox is emptied.
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("create temporary table again on commit drop as select topic, key, event_id, event_type, envelope from eventbus.events where topic = 'polyclinic.identity'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("delete from eventbus.events where topic = 'polyclinic.identity'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("insert into eventbus.events (topic, key, event_id, event_type, envelope) select * from again order by event_id")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("delete from notifications.inbox where consumer = 'notifications-mail'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sqlx::query("select pg_notify('polyclinic_eventbus', '')")
        .execute(&pool)
        .await
        .ok();
    eventually("the events to be handled again", || async {
        let handled: i64 = sqlx::query_scalar(
            "select count(*) from notifications.inbox where consumer = 'notifications-mail'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (handled >= 21).then_some(())
    })
    .await;
    let rows: i64 = sqlx::query_scalar("select count(*) from notifications.notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 21, "no message written twice");
    exactly(&sink, 21).await;
    shutdown.cancel();
    other.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_burst_goes_out_over_no_more_connections_than_the_concurrency_each_kept_open() {
    let sink = SmtpSink::start().await;
    let platform = TestPlatform::start_with(
        &[Service::Identity, Service::Notifications, Service::Gateway],
        |config, _| {
            send_to(config, sink.address());
            config.email.concurrency = 4;
        },
    )
    .await;
    // The first admin's welcome goes out first, on a connection the pool keeps.
    exactly(&sink, 1).await;
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    sqlx::query(
        "insert into notifications.notifications
             (id, event_id, event_type, recipient_id, recipient_email, template, subject,
              body_text, body_html)
         select gen_random_uuid(), gen_random_uuid(), 'polyclinic.bench.burst.v1',
                gen_random_uuid(), 'person' || n || '@clinic.example', 'welcome',
                'Message ' || n, 'Text ' || n, '<p>HTML ' || n || '</p>'
         from generate_series(1, 200) n",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("select pg_notify('polyclinic_notifications', '')")
        .execute(&pool)
        .await
        .ok();

    let emails = exactly(&sink, 201).await;
    let distinct: std::collections::BTreeSet<&str> = emails.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(distinct.len(), 201, "each message once");
    assert!(
        sink.most_open_at_once() <= 4,
        "{} connections open at once with email.concurrency 4",
        sink.most_open_at_once()
    );
    assert!(
        sink.connections() <= 4,
        "{} connections made for 201 messages: the pool keeps four",
        sink.connections()
    );
    let (sent, attempts): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'SENT' and sent_at is not null and transport = 'smtp'),
                sum(attempts)
         from notifications.notifications",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (sent, attempts),
        (201, 201),
        "every message recorded as sent once"
    );
}

#[tokio::test]
async fn an_event_about_an_unknown_user_is_skipped_not_retried() {
    let sink = SmtpSink::start().await;
    let platform = TestPlatform::start_with(
        &[Service::Identity, Service::Notifications, Service::Gateway],
        |config, _| {
            send_to(config, sink.address());
        },
    )
    .await;
    let admin = platform.admin_token().await;
    let stranger = uuid::Uuid::now_v7();
    let identity = polyclinic_db::pool(&platform.config, Service::Identity).unwrap();
    let mut tx = identity.begin().await.unwrap();
    let event = polyclinic_contracts::identity::UserRegisteredV1 {
        user_id: stranger,
        role: "PATIENT".into(),
        registered_at: chrono::Utc::now(),
    };
    let context = polyclinic_events::EventContext {
        correlation_id: Some("ghost-1".into()),
        trace: Default::default(),
    };
    polyclinic_events::outbox::enqueue(&mut tx, Service::Identity, &event, &context)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let outcome = eventually("the event to be handled", || async {
        let reply = platform
            .call(
                Method::GET,
                "/api/events?correlation_id=ghost-1",
                Some(&admin),
                None,
            )
            .await;
        reply.body["items"][0]["outcomes"]
            .as_array()
            .and_then(|outcomes| {
                outcomes
                    .iter()
                    .find(|o| o["consumer"] == "notifications-mail")
                    .cloned()
            })
    })
    .await;
    assert_eq!(outcome["outcome"], "skipped");
    assert!(
        outcome["detail"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{outcome}"
    );
    let letters = platform
        .call(Method::GET, "/api/events/dead-letters", Some(&admin), None)
        .await;
    assert!(
        letters.body["items"].as_array().unwrap().is_empty(),
        "not a dead letter"
    );
    exactly(&sink, 1).await;
}

#[tokio::test]
async fn the_prescription_email_says_to_sign_in_and_carries_no_clinical_detail() {
    let sink = SmtpSink::start().await;
    let platform =
        TestPlatform::start_with(&Service::ALL, |config, _| send_to(config, sink.address())).await;
    let admin = platform.admin_token().await;
    let (patient, _) = platform.register_patient("rx@clinic.example").await;
    let department = platform.create_department(&admin, "General").await;
    let (doctor, _) = platform
        .create_staff(
            &admin,
            "DOCTOR",
            "dr.rx@clinic.example",
            department["id"].as_str(),
        )
        .await;
    let prescriptions = polyclinic_db::pool(&platform.config, Service::Prescriptions).unwrap();
    let mut tx = prescriptions.begin().await.unwrap();
    let event = polyclinic_contracts::prescriptions::PrescriptionIssuedV1 {
        prescription_id: uuid::Uuid::now_v7(),
        patient_id: patient["id"].as_str().unwrap().parse().unwrap(),
        doctor_id: doctor["id"].as_str().unwrap().parse().unwrap(),
        issued_at: chrono::Utc::now(),
    };
    polyclinic_events::outbox::enqueue(
        &mut tx,
        Service::Prescriptions,
        &event,
        &Default::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let emails = exactly(&sink, 4).await;
    let rx = emails
        .iter()
        .find(|e| e.to == "rx@clinic.example" && e.subject.contains("prescription"))
        .unwrap();
    assert_eq!(rx.subject, "A new prescription from Dr Sam doctor staff");
    for part in [&rx.text, &rx.html] {
        assert!(part.contains("sign in to read it"), "{part}");
        for clinical in ["mg", "tablet", "dose", "diagnos"] {
            assert!(
                !part.to_lowercase().contains(clinical),
                "{clinical} in {part}"
            );
        }
    }
}

#[tokio::test]
async fn people_see_only_their_own_notifications_and_mark_them_read() {
    let platform =
        TestPlatform::start(&[Service::Identity, Service::Notifications, Service::Gateway]).await;
    let admin = platform.admin_token().await;
    let (_, mine) = platform.register_patient("me@clinic.example").await;
    let (_, theirs) = platform.register_patient("them@clinic.example").await;
    let inbox = eventually("the welcome in the inbox", || async {
        let reply = platform
            .call(Method::GET, "/api/notifications/me", Some(&mine), None)
            .await;
        (reply.body["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1))
        .then_some(reply.body)
    })
    .await;
    assert_eq!(inbox["unread_count"], 1);
    let item = &inbox["items"][0];
    assert_eq!(item["template"], "welcome");
    assert!(
        item["body_text"]
            .as_str()
            .unwrap()
            .contains("Dear Pat Ient")
    );
    let id = item["id"].as_str().unwrap();

    let stolen = platform
        .call(
            Method::POST,
            &format!("/api/notifications/{id}/read"),
            Some(&theirs),
            None,
        )
        .await;
    assert_eq!(
        (stolen.status, stolen.code()),
        (StatusCode::NOT_FOUND, "notification_not_found")
    );
    let read = platform
        .call(
            Method::POST,
            &format!("/api/notifications/{id}/read"),
            Some(&mine),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.body["read_at"].is_string());
    let after = platform
        .call(
            Method::GET,
            "/api/notifications/me?unread=true",
            Some(&mine),
            None,
        )
        .await;
    assert_eq!(
        (
            after.body["unread_count"].clone(),
            after.body["items"].clone()
        ),
        (json!(0), json!([]))
    );

    // The log transport records without sending.
    let all = platform
        .call(Method::GET, "/api/notifications", Some(&admin), None)
        .await;
    let items: &Vec<Value> = all.body["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|n| n["transport"] == "log" || n["status"] == "PENDING"),
        "{items:?}"
    );
    assert!(
        items.iter().all(|n| n.get("body_text").is_none()),
        "admins see deliveries, not bodies"
    );

    for (method, path, token, status) in [
        (
            Method::GET,
            "/api/notifications/me".to_owned(),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/api/notifications".to_owned(),
            Some(&mine),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/notifications?status=LOST".to_owned(),
            Some(&admin),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/notifications/{id}/resend"),
            Some(&mine),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            format!("/api/notifications/{id}/resend"),
            Some(&admin),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            format!("/api/notifications/{}/resend", uuid::Uuid::now_v7()),
            Some(&admin),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/notifications/{id}/read"),
            Some(&admin),
            StatusCode::NOT_FOUND,
        ),
    ] {
        for service in [Service::Gateway, Service::Notifications] {
            let reply = platform
                .call_service(
                    service,
                    method.clone(),
                    &path,
                    token.map(String::as_str),
                    None,
                )
                .await;
            assert_eq!(reply.status, status, "{method} {path} via {service}");
        }
    }
}
