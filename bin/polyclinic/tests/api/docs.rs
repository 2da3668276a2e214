//! The documentation that must not drift: each service's entity-relationship diagram in
//! `docs/erd/<service>.md` is generated from its migrated schema and compared here, and the
//! event catalogue in `docs/events.md` names every event type the contracts define. Run with
//! `POLYCLINIC_WRITE_DOCS=1` to rewrite the diagrams after a migration.

use std::collections::BTreeMap;
use std::fmt::Write;

use polyclinic_testing::{Service, TestPlatform};

const BEGIN: &str = "<!-- generated from the migrations: begin -->";
const END: &str = "<!-- generated from the migrations: end -->";

/// The schema's tables as a mermaid `erDiagram`.
async fn diagram(pool: &sqlx::PgPool, schema: &str) -> String {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "select c.table_name::text, c.column_name::text, c.udt_name::text
         from information_schema.columns c
         join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
         where c.table_schema = $1 and t.table_type = 'BASE TABLE' and c.table_name <> '_sqlx_migrations'
         order by c.table_name, c.ordinal_position",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "select tc.table_name::text, k.column_name::text, tc.constraint_type::text
         from information_schema.table_constraints tc
         join information_schema.key_column_usage k on k.constraint_name = tc.constraint_name and k.table_schema = tc.table_schema
         where tc.table_schema = $1 and tc.constraint_type in ('PRIMARY KEY', 'FOREIGN KEY', 'UNIQUE')",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let references: Vec<(String, String, String)> = sqlx::query_as(
        "select distinct child.relname::text, parent.relname::text, a.attname::text
         from pg_constraint c
         join pg_class child on child.oid = c.conrelid
         join pg_class parent on parent.oid = c.confrelid
         join pg_namespace n on n.oid = child.relnamespace
         join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any(c.conkey)
         where c.contype = 'f' and n.nspname = $1
         order by 1, 2, 3",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, column, kind) in columns {
        let mut marks: Vec<&str> = keys
            .iter()
            .filter(|(t, c, _)| *t == table && *c == column)
            .map(|(_, _, constraint)| match constraint.as_str() {
                "PRIMARY KEY" => "PK",
                "FOREIGN KEY" => "FK",
                _ => "UK",
            })
            .collect();
        marks.sort_unstable();
        marks.dedup();
        let line = if marks.is_empty() {
            format!("        {kind} {column}")
        } else {
            format!("        {kind} {column} {}", marks.join(", "))
        };
        tables.entry(table).or_default().push(line);
    }
    let mut text = String::from("```mermaid\nerDiagram\n");
    for (table, lines) in &tables {
        writeln!(text, "    {table} {{").unwrap();
        for line in lines {
            writeln!(text, "{line}").unwrap();
        }
        text.push_str("    }\n");
    }
    for (child, parent, column) in references {
        writeln!(text, "    {parent} ||--o{{ {child} : {column}").unwrap();
    }
    text.push_str("```\n");
    text
}

#[tokio::test]
async fn each_services_entity_relationship_diagram_matches_its_migrations() {
    let platform = TestPlatform::start(&[]).await;
    polyclinic::migrate(&platform.config).await.unwrap();
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let write = std::env::var("POLYCLINIC_WRITE_DOCS").is_ok();
    let mut stale = Vec::new();
    for service in Service::ALL {
        let Some(schema) = service.schema() else {
            continue;
        };
        let generated = diagram(&pool, schema).await;
        let path = format!("{}/../../docs/erd/{service}.md", env!("CARGO_MANIFEST_DIR"));
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        let (Some(start), Some(end)) = (current.find(BEGIN), current.find(END)) else {
            stale.push(format!("{path}: no generated section"));
            continue;
        };
        let inside = current[start + BEGIN.len()..end].trim_start_matches('\n');
        if inside != generated {
            if write {
                let updated = format!(
                    "{}{BEGIN}\n{generated}{}",
                    &current[..start],
                    &current[end..]
                );
                std::fs::write(&path, updated).unwrap();
            } else {
                stale.push(format!("{path} differs from the {schema} schema; run the test with POLYCLINIC_WRITE_DOCS=1"));
            }
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

#[test]
fn the_event_catalogue_names_every_event_type() {
    let catalogue = include_str!("../../../../docs/events.md");
    let contracts = [
        include_str!("../../../../crates/contracts/src/identity.rs"),
        include_str!("../../../../crates/contracts/src/appointments.rs"),
        include_str!("../../../../crates/contracts/src/payments.rs"),
        include_str!("../../../../crates/contracts/src/prescriptions.rs"),
    ];
    let mut types = Vec::new();
    for source in contracts {
        for piece in source.split('"').skip(1).step_by(2) {
            if piece.starts_with("polyclinic.") && piece.ends_with(".v1") {
                types.push(piece);
            }
        }
    }
    assert!(types.len() >= 20, "{types:?}");
    for event_type in types {
        assert!(
            catalogue.contains(&format!("`{event_type}`")),
            "docs/events.md lacks {event_type}"
        );
    }
}
