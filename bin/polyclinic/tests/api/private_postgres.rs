//! `polyclinic all` on a machine with no PostgreSQL running: a private cluster from the
//! installed server binaries.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use polyclinic::local_postgres::{INSTALL_HINT, LocalPostgres, candidate_bin_dirs, reachable};

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polyclinic-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn count_visits(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let count = sqlx::query_scalar("select count(*) from visits")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

#[tokio::test]
async fn a_private_cluster_starts_where_none_runs_keeps_its_data_between_runs_and_stops_on_exit() {
    let scratch = scratch_dir("private-postgres");
    let data = scratch.join("postgres");
    let port = free_port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(!reachable(address));

    let first = LocalPostgres::start(&data, port, &candidate_bin_dirs()).unwrap();
    assert!(first.started_here());
    assert!(
        data.join("PG_VERSION").is_file(),
        "initdb ran in the data directory"
    );
    let url = first.url();
    assert!(
        url.contains(&format!("127.0.0.1:{port}/polyclinic")),
        "{url}"
    );
    let without_password = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    assert!(
        sqlx::PgPool::connect(&without_password).await.is_err(),
        "the cluster asks for its password"
    );
    polyclinic_db::ensure_database(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("create table visits (id int primary key)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("insert into visits values (1), (2)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    drop(first);
    assert!(!reachable(address), "the cluster stops when its owner ends");

    let second = LocalPostgres::start(&data, port, &candidate_bin_dirs()).unwrap();
    assert!(second.started_here());
    assert_eq!(
        count_visits(&second.url()).await,
        2,
        "the data survived the restart"
    );

    // A second start while it runs adopts it and leaves it running for its owner.
    let adopted = LocalPostgres::start(&data, port, &candidate_bin_dirs()).unwrap();
    assert!(!adopted.started_here());
    drop(adopted);
    assert!(
        reachable(address),
        "adopting does not stop the owner's cluster"
    );
    drop(second);
    assert!(!reachable(address));
    let password = std::fs::metadata(format!("{}.password", data.display())).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&password.permissions()) & 0o777,
        0o600,
        "the password is its user's alone"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[tokio::test]
async fn with_no_server_binaries_installed_one_line_says_how_to_install_them_or_set_database_url() {
    let empty = scratch_dir("no-postgres");
    let err = LocalPostgres::start(
        &empty.join("postgres"),
        free_port(),
        std::slice::from_ref(&empty),
    )
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.contains(INSTALL_HINT), "{message}");
    assert!(message.contains("apt-get install postgresql"), "{message}");
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(
        !empty.join("postgres").exists(),
        "nothing is created without a server to run"
    );
    std::fs::remove_dir_all(&empty).unwrap();
}
