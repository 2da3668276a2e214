//! The hot queries keep their indexes: on a sample of the reference clinic
//! (`polyclinic_testing::scale` at 3x: 60 doctors, so that one doctor's share of the
//! appointments is closer to a real clinic's than at 1x; statistics gathered), each list,
//! search and nightly sweep is planned as a read of the index meant for it, never a scan of
//! the whole table. A migration that drops an index, or a query rewritten so that its index
//! no longer serves it, fails here; the scale benchmark (`bench/scale.sh`) measures what
//! these plans cost at 1x, 10x and 100x.
use chrono::{Duration, Utc};
use polyclinic_appointments::domain::appointment::Status;
use polyclinic_appointments::repo::appointments::{self as booking, Due, Filter};
use polyclinic_db::sqlx::{self, Connection, PgConnection};
use polyclinic_db::{explain, explain_generic};
use polyclinic_notifications::repo::{events, notifications};
use polyclinic_prescriptions::repo::{audit, records};
use polyclinic_testing::TestDb;
use polyclinic_testing::scale::{self, Plan};
use uuid::Uuid;

async fn connect(db: &TestDb, schema: &str) -> PgConnection {
    let mut conn = PgConnection::connect(&db.url()).await.unwrap();
    sqlx::query(&format!("set search_path = {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// A database with every service's schema.
async fn migrated() -> TestDb {
    let db = TestDb::create().await;
    let config = polyclinic_config::Config {
        database_url: db.url(),
        ..polyclinic_config::Config::default()
    };
    polyclinic::migrate(&config).await.unwrap();
    db
}

async fn one(conn: &mut PgConnection, sql: &str) -> Uuid {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// Asserts that `plan` reads `index` and scans no table whole.
fn reads(what: &str, plan: &Plan, index: &str) {
    reads_one_of(what, plan, &[index]);
}

/// Asserts that `plan` reads one of `indexes` (each serves the query; which is cheaper
/// depends on the sample's statistics) and scans no table whole.
fn reads_one_of(what: &str, plan: &Plan, indexes: &[&str]) {
    assert!(
        indexes.iter().any(|index| plan.uses(index)),
        "{what} should read one of {indexes:?}:\n{plan}"
    );
    let whole: Vec<_> = plan
        .scans()
        .into_iter()
        .filter(|scan| scan.node == "Seq Scan")
        .collect();
    assert!(
        whole.is_empty(),
        "{what} reads whole tables {whole:?}:\n{plan}"
    );
}

/// As [`reads`], and the rows come off the index in the page's order: no sort of every row
/// that matches (a patient's few rows may be sorted; a doctor's years of them may not).
fn reads_in_order(what: &str, plan: &Plan, index: &str) {
    reads(what, plan, index);
    assert!(
        !plan.sorts(),
        "{what} sorts instead of reading {index} in order:\n{plan}"
    );
}

#[tokio::test]
async fn every_hot_query_reads_its_index_on_a_clinic_with_statistics() {
    let db = migrated().await;
    scale::seed(&db.url(), 3, "UTC").await.unwrap();

    let mut conn = connect(&db, "appointments").await;
    let patient = one(
        &mut conn,
        "select patient_id from appointments order by id limit 1",
    )
    .await;
    let doctor = one(
        &mut conn,
        "select doctor_id from appointments order by id limit 1",
    )
    .await;
    let now = Utc::now();
    let limit = 51;

    let mine = Filter {
        patient_id: Some(patient.into()),
        ..Filter::default()
    };
    let plan = Plan(
        explain(&mut conn, booking::list_query(&mine, limit).build())
            .await
            .unwrap(),
    );
    reads(
        "a patient's appointments",
        &plan,
        "appointments_patient_idx",
    );

    let theirs = Filter {
        doctor_id: Some(doctor.into()),
        ..Filter::default()
    };
    let plan = Plan(
        explain(&mut conn, booking::list_query(&theirs, limit).build())
            .await
            .unwrap(),
    );
    reads_in_order(
        "a doctor's appointments",
        &plan,
        "appointments_doctor_list_idx",
    );

    let queue = Filter {
        statuses: vec![Status::Paid],
        ..Filter::default()
    };
    let plan = Plan(
        explain(&mut conn, booking::list_query(&queue, limit).build())
            .await
            .unwrap(),
    );
    reads_in_order("the approval queue", &plan, "appointments_status_list_idx");

    // A common status is read off the window in start order, a rare one off its own index.
    for (status, index) in [
        (Status::Completed, "appointments_starts_idx"),
        (Status::Rejected, "appointments_status_idx"),
    ] {
        let month = Filter {
            statuses: vec![status],
            from: Some(now - Duration::days(60)),
            to: Some(now - Duration::days(30)),
            ..Filter::default()
        };
        let plan = Plan(
            explain(&mut conn, booking::list_query(&month, limit).build())
                .await
                .unwrap(),
        );
        reads(
            &format!("the admin's {status:?} list by dates"),
            &plan,
            index,
        );
    }

    let days = Filter {
        from: Some(now - Duration::days(60)),
        to: Some(now - Duration::days(30)),
        ..Filter::default()
    };
    let plan = Plan(
        explain(&mut conn, booking::list_query(&days, limit).build())
            .await
            .unwrap(),
    );
    reads_in_order(
        "the admin's list by dates",
        &plan,
        "appointments_starts_idx",
    );

    let busy = sqlx::query(booking::BUSY)
        .bind(doctor)
        .bind(now)
        .bind(now + Duration::days(31));
    let plan = Plan(explain(&mut conn, busy).await.unwrap());
    reads(
        "a doctor's availability over 31 days",
        &plan,
        "appointment_no_overlap",
    );

    // Offers are rare and short-lived: their status's index serves as well as the holds'.
    for (due, indexes) in [
        (Due::HoldExpired, &["appointments_hold_idx"][..]),
        (
            Due::OfferExpired,
            &["appointments_hold_idx", "appointments_status_idx"],
        ),
        (Due::Ended, &["appointments_status_idx"]),
        (Due::Reminder, &["appointments_reminder_idx"]),
    ] {
        let sql = booking::due_sql(due);
        let sweep = sqlx::query(&sql).bind(now).bind(100_i64);
        let plan = Plan(explain(&mut conn, sweep).await.unwrap());
        reads_one_of(&format!("the {due:?} sweep"), &plan, indexes);
    }
    let purge = sqlx::query(booking::PURGE).bind(now - Duration::days(730));
    let plan = Plan(explain(&mut conn, purge).await.unwrap());
    reads("the nightly purge", &plan, "appointments_purge_idx");

    let mut conn = connect(&db, "prescriptions").await;
    let (actor, patient): (String, Uuid) =
        sqlx::query_as("select actor_id, patient_id from audit_log where actor_role = 'DOCTOR' order by id limit 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let by_patient = audit::Search {
        patient_id: Some(patient),
        ..audit::Search::default()
    };
    let plan = Plan(
        explain(&mut conn, audit::search_query(&by_patient, limit).build())
            .await
            .unwrap(),
    );
    reads(
        "the audit search by patient",
        &plan,
        "audit_log_patient_idx",
    );
    let by_actor = audit::Search {
        actor_id: Some(&actor),
        ..audit::Search::default()
    };
    let plan = Plan(
        explain(&mut conn, audit::search_query(&by_actor, limit).build())
            .await
            .unwrap(),
    );
    reads_in_order("the audit search by actor", &plan, "audit_log_actor_idx");

    let record = one(&mut conn, "select id from records order by id limit 1").await;
    let sql = records::current_entries_sql();
    let plan = Plan(
        explain(&mut conn, sqlx::query(&sql).bind(record))
            .await
            .unwrap(),
    );
    reads("a record's entries", &plan, "entries_record_idx");

    let mut conn = connect(&db, "notifications").await;
    let recipient = one(
        &mut conn,
        "select recipient_id from notifications order by id limit 1",
    )
    .await;
    let mut inbox = notifications::inbox_query(recipient, false, None, limit);
    let plan = Plan(explain(&mut conn, inbox.build()).await.unwrap());
    reads("a patient's inbox", &plan, "notifications_recipient_idx");
    let mut inbox = notifications::inbox_query(recipient, true, Some(Uuid::now_v7()), limit);
    let plan = Plan(explain(&mut conn, inbox.build()).await.unwrap());
    reads(
        "a patient's unread messages, second page",
        &plan,
        "notifications_recipient_idx",
    );

    let mut page = events::list_query(events::Filter::default(), 200);
    let plan = Plan(explain(&mut conn, page.build()).await.unwrap());
    reads_in_order("the event log's first page", &plan, "event_log_pkey");
    let before = events::Filter {
        before: Some(Uuid::now_v7()),
        ..events::Filter::default()
    };
    let plan = Plan(
        explain(&mut conn, events::list_query(before, 200).build())
            .await
            .unwrap(),
    );
    reads_in_order("the event log's next page", &plan, "event_log_pkey");
}

#[tokio::test]
async fn a_consumer_reads_its_topic_off_the_log_key_even_in_a_generic_plan() {
    let db = migrated().await;
    let mut conn = connect(&db, "eventbus").await;
    // A busy topic and a quiet one, as a clinic's appointments and identity events are.
    sqlx::raw_sql(
        "insert into events (topic, key, event_id, event_type, envelope)
         select case when n % 400 = 0 then 'polyclinic.identity' else 'polyclinic.appointments' end,
                n::text, gen_random_uuid(), 'polyclinic.test.v1', '{}'::jsonb
         from generate_series(1, 20000) as n;
         analyze events",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let plan = Plan(
        explain_generic(&mut conn, polyclinic_events::log::READ_AFTER)
            .await
            .unwrap(),
    );
    reads_in_order("a consumer's read of its topic", &plan, "events_pkey");
    let filters = plan.filters();
    assert!(
        filters.iter().all(|filter| !filter.contains("topic")),
        "the read should find its topic in the index, not drop other topics' events one by one: {filters:?}\n{plan}"
    );
}
