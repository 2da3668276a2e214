//! A reference clinic at a chosen scale ([`seed`], from `scale.sql`) and the plans
//! PostgreSQL picks for queries on it ([`Plan`]): the scale benchmark measures the routes on
//! it at 1x, 10x and 100x, and the query-plan test checks on the 1x sample that the hot
//! queries read the indexes meant for them.

use polyclinic_db::sqlx::{self, Connection, PgConnection};
use serde_json::Value;

/// The seed: set-based SQL, one transaction.
const SEED: &str = include_str!("scale.sql");

/// Writes the reference clinic `factor` times over into the migrated platform database at
/// `url` (whose first administrator exists: every seeded person signs in with that
/// administrator's password), laid out in the clinic's `zone`, and gathers statistics.
pub async fn seed(url: &str, factor: u32, zone: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query(
        "select set_config('polyclinic.scale', $1, false), set_config('timezone', $2, false)",
    )
    .bind(factor.to_string())
    .bind(zone)
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql(SEED).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// One node of a plan that reads a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// `Seq Scan`, `Index Scan`, `Index Only Scan`, `Bitmap Heap Scan`, ...
    pub node: String,
    pub relation: Option<String>,
    pub index: Option<String>,
}

/// A plan as `EXPLAIN (FORMAT JSON)` gives it.
#[derive(Debug, Clone)]
pub struct Plan(pub Value);

impl Plan {
    /// Every node of the plan, outermost first.
    pub fn nodes(&self) -> Vec<&Value> {
        fn walk<'a>(node: &'a Value, nodes: &mut Vec<&'a Value>) {
            nodes.push(node);
            for child in node
                .get("Plans")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk(child, nodes);
            }
        }
        let mut nodes = Vec::new();
        for root in self.0.as_array().into_iter().flatten() {
            if let Some(plan) = root.get("Plan") {
                walk(plan, &mut nodes);
            }
        }
        nodes
    }

    /// Every node that reads a table or an index, outermost first.
    pub fn scans(&self) -> Vec<Scan> {
        self.nodes()
            .into_iter()
            .filter_map(|node| {
                let text = |key: &str| node.get(key).and_then(Value::as_str).map(str::to_owned);
                let kind = text("Node Type")?;
                (kind.contains("Scan") && kind != "Subquery Scan" && kind != "CTE Scan").then(
                    || Scan {
                        node: kind,
                        relation: text("Relation Name"),
                        index: text("Index Name"),
                    },
                )
            })
            .collect()
    }

    /// Every node's filter: the conditions checked on rows after they were read.
    pub fn filters(&self) -> Vec<String> {
        self.nodes()
            .into_iter()
            .filter_map(|node| node.get("Filter").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }

    /// Whether some node reads `index`.
    pub fn uses(&self, index: &str) -> bool {
        self.scans()
            .iter()
            .any(|scan| scan.index.as_deref() == Some(index))
    }

    /// Whether some node reads all of `table`.
    pub fn scans_all_of(&self, table: &str) -> bool {
        self.scans()
            .iter()
            .any(|scan| scan.node == "Seq Scan" && scan.relation.as_deref() == Some(table))
    }

    /// Whether the plan sorts rows (rather than reading them in order off an index).
    pub fn sorts(&self) -> bool {
        self.nodes()
            .into_iter()
            .any(|node| node.get("Node Type").and_then(Value::as_str) == Some("Sort"))
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pretty = serde_json::to_string_pretty(&self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&pretty)
    }
}
