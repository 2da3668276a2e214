use std::process::Command;

use serde_json::Value;

fn polyclinic() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polyclinic"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("POLYCLINIC_CONFIG");
    command
}

#[test]
fn a_bad_configuration_value_stops_start_up_naming_the_key() {
    let output = polyclinic()
        .arg("all")
        .env("POLYCLINIC_APPOINTMENTS_PORT", "not-a-port")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`appointments.port`"), "{stderr}");
    assert!(stderr.contains("POLYCLINIC_APPOINTMENTS_PORT"), "{stderr}");
}

#[test]
fn a_bad_value_in_the_configuration_file_names_the_file_and_key() {
    let path = std::env::temp_dir().join(format!("polyclinic-cli-{}.toml", std::process::id()));
    std::fs::write(&path, "[log]\nformat = \"xml\"\n").unwrap();
    let output = polyclinic()
        .arg("--config")
        .arg(&path)
        .arg("all")
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`log.format`"), "{stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
}

#[test]
fn the_config_command_shows_the_environment_wins_and_masks_passwords() {
    let output = polyclinic()
        .arg("config")
        .env(
            "DATABASE_URL",
            "postgres://app:s3cret@db.internal:5432/clinic",
        )
        .env("POLYCLINIC_GATEWAY_PORT", "9080")
        .env("STRIPE_SECRET_KEY", "sk_live_do_not_print")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("gateway.port = 9080    # POLYCLINIC_GATEWAY_PORT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("postgres://app:***@db.internal:5432/clinic"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(!stdout.contains("sk_live_do_not_print"), "{stdout}");
    assert!(
        stdout.contains("stripe.secret_key = ***    # STRIPE_SECRET_KEY"),
        "{stdout}"
    );
}

#[test]
fn the_openapi_command_prints_the_merged_document() {
    let output = polyclinic().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["info"]["title"], "Polyclinic");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/health/ready"].is_object());
}

#[test]
fn help_documents_every_subcommand() {
    let output = polyclinic().arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for command in [
        "all",
        "gateway",
        "identity",
        "appointments",
        "payments",
        "notifications",
        "prescriptions",
        "migrate",
        "openapi",
        "config",
        "rotate-signing-key",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.trim_start().starts_with(command)),
            "{command} missing from --help:\n{stdout}"
        );
    }
    assert!(stdout.contains("--config"), "{stdout}");
}

#[test]
fn the_readme_lists_every_configuration_variable() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for (key, var) in polyclinic_config::keys() {
        assert!(
            readme.contains(&format!("`{var}`")),
            "README.md does not list {var} ({key})"
        );
    }
}

#[tokio::test]
async fn audit_verify_reports_an_intact_trail_and_names_a_row_altered_by_hand() {
    let db = polyclinic_testing::TestDb::create().await;
    let migrated = polyclinic()
        .arg("migrate")
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let config = polyclinic_testing::Config {
        database_url: db.url(),
        ..polyclinic_testing::Config::default()
    };
    let pool = polyclinic_db::pool(&config, polyclinic_testing::Service::Prescriptions).unwrap();
    for action in ["record.read", "entry.write"] {
        polyclinic_prescriptions::audit::record(
            &pool,
            &polyclinic_prescriptions::audit::Access {
                actor_id: "a-doctor",
                actor_role: "DOCTOR",
                action,
                patient_id: None,
                record_id: None,
                entry_id: None,
                request_id: Some("cli-test"),
                outcome: polyclinic_prescriptions::audit::Outcome::Allowed,
            },
        )
        .await
        .unwrap();
    }
    let intact = polyclinic()
        .arg("audit-verify")
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(intact.status.success());
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact: 2 rows"));

    // Someone with the schema owner's rights (the service's own role has none of them).
    let owner = polyclinic_db::schema_pool(&db.url(), "prescriptions", 1, "test").unwrap();
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("alter table audit_log disable trigger audit_log_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update audit_log set actor_id = 'someone-else' where action = 'entry.write'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let broken = polyclinic()
        .arg("audit-verify")
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("row 2 does not match"), "{stderr}");
}
