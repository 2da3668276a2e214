use polyclinic_db::sqlx;
use polyclinic_testing::{Service, TcpProxy, TestPlatform};
use serde_json::Value;

#[tokio::test]
async fn every_service_becomes_ready_with_its_own_schema_and_migration_history() {
    let platform = TestPlatform::start(&Service::ALL).await;

    for service in Service::ALL {
        let response = platform.get(service, "/health/ready").await;
        assert_eq!(response.status(), 200, "{service} is ready");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["service"], service.as_str());
        if service.schema().is_some() {
            assert_eq!(
                body["checks"]["postgres"]["status"], "up",
                "{service}: {body}"
            );
        }
    }

    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let histories: Vec<String> = sqlx::query_scalar(
        "select table_schema::text from information_schema.tables \
         where table_name = '_sqlx_migrations' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        histories,
        [
            "appointments",
            "eventbus",
            "identity",
            "notifications",
            "payments",
            "prescriptions",
            "web"
        ],
        "each service keeps its own migration history in its own schema, and so does the event log"
    );
    pool.close().await;
    platform.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_turns_503_when_postgres_is_unreachable_and_200_when_it_returns() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let platform = TestPlatform::start_with(&[Service::Identity], |config, db| {
        config.identity.database_url = Some(db.url_via(proxy.address()));
    })
    .await;
    assert_eq!(
        platform
            .get(Service::Identity, "/health/ready")
            .await
            .status(),
        200
    );

    proxy.cut();
    let down = platform.get(Service::Identity, "/health/ready").await;
    assert_eq!(down.status(), 503);
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["postgres"]["status"], "down", "{body}");
    assert_eq!(
        platform
            .get(Service::Identity, "/health/live")
            .await
            .status(),
        200,
        "still alive while a dependency is down"
    );

    proxy.restore();
    let mut status = 0;
    for _ in 0..50 {
        status = platform
            .get(Service::Identity, "/health/ready")
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again once PostgreSQL is reachable");
}

#[tokio::test]
async fn an_unknown_route_on_any_service_is_a_404_problem_with_a_request_id() {
    let platform = TestPlatform::start(&Service::ALL).await;
    for service in Service::ALL {
        let response = platform.get(service, "/api/nothing-here").await;
        assert_eq!(response.status(), 404, "{service}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert!(response.headers().contains_key("x-request-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "route_not_found");
    }
}

#[tokio::test]
async fn the_database_is_created_when_missing() {
    let platform = TestPlatform::start_with(&[Service::Payments], |config, db| {
        config.database_url = db.url().replace(db.name(), &format!("{}_new", db.name()));
    })
    .await;
    let created_url = platform.config.database_url.clone();
    assert_eq!(
        platform
            .get(Service::Payments, "/health/ready")
            .await
            .status(),
        200
    );
    platform.stop().await.unwrap();

    let pool = sqlx::PgPool::connect(&created_url).await.unwrap();
    let schema: Option<String> =
        sqlx::query_scalar("select nspname::text from pg_namespace where nspname = 'payments'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(schema.as_deref(), Some("payments"));
    pool.close().await;
    let name = created_url.rsplit('/').next().unwrap().to_owned();
    let admin = created_url.replace(&name, "postgres");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("drop database {name} with (force)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn without_migrations_at_start_a_service_refuses_an_old_schema_until_migrate_has_run() {
    // Roles belong to the server: a first migration elsewhere creates the runtime roles, so
    // the refusal below is about the schema, not about a missing role.
    let elsewhere = polyclinic_testing::TestDb::create().await;
    let mut config = polyclinic_config::Config {
        database_url: elsewhere.url(),
        ..polyclinic_config::Config::default()
    };
    polyclinic::migrate(&config).await.unwrap();

    let db = polyclinic_testing::TestDb::create().await;
    config.database_url = db.url();
    config.migrate_on_start = false;
    let refused = polyclinic_db::open(&config, Service::Identity, &polyclinic_identity::MIGRATOR)
        .await
        .expect_err("the schema has none of the migrations");
    let message = format!("{refused:#}");
    assert!(
        message.contains("schema identity lacks") && message.contains("polyclinic migrate"),
        "{message}"
    );
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_schema = 'identity'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0, "the service created nothing itself");

    polyclinic::migrate(&config).await.unwrap();
    let opened = polyclinic_db::open(&config, Service::Identity, &polyclinic_identity::MIGRATOR)
        .await
        .expect("up to date after `polyclinic migrate`");
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&opened)
        .await
        .unwrap();
    assert_eq!(users, 0, "it runs on the migrated schema");
}
