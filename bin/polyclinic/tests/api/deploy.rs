//! The Kubernetes manifests as the pods would receive them: `deploy/render.py` renders each
//! workload's arguments and environment (its ConfigMap and its own Secret, placeholders
//! filled), and the binary's own production check runs on each, so a manifest that would
//! crash-loop fails here.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use polyclinic_testing::Service;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Pod {
    workload: String,
    args: Vec<String>,
    secret_keys: Vec<String>,
    env: BTreeMap<String, String>,
}

fn rendered() -> Vec<Pod> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/render.py");
    let output = Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 runs deploy/render.py");
    assert!(
        output.status.success(),
        "deploy/render.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `polyclinic check <service>` with exactly this environment, as the pod would run it.
fn check(service: &str, env: &BTreeMap<String, String>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polyclinic"))
        .env_clear()
        .envs(env)
        .args(["check", service])
        .output()
        .unwrap()
}

#[test]
fn every_pod_passes_the_production_check_with_only_its_own_secrets() {
    let pods = rendered();
    let services = Service::ALL.map(Service::as_str);
    for service in services {
        assert!(
            pods.iter()
                .any(|pod| pod.workload == format!("Deployment/{service}")),
            "a Deployment for {service}"
        );
    }
    for pod in &pods {
        // The rendering, for the record (`cargo nextest run ... --no-capture` shows it).
        println!(
            "{} {:?}: secrets {:?}",
            pod.workload, pod.args, pod.secret_keys
        );
        assert_eq!(
            pod.env.get("POLYCLINIC_ENVIRONMENT").map(String::as_str),
            Some("production"),
            "{}",
            pod.workload
        );
        let command = pod.args.first().map(String::as_str).unwrap_or_default();
        if command == "migrate" {
            assert_eq!(
                pod.secret_keys,
                ["DATABASE_URL"],
                "the migration Job holds the owner, and nothing else"
            );
            continue;
        }
        assert!(services.contains(&command), "{}: {command}", pod.workload);
        let output = check(command, &pod.env);
        assert!(
            output.status.success(),
            "{} would crash-loop: {}",
            pod.workload,
            String::from_utf8_lossy(&output.stderr)
        );
        println!("  {}", String::from_utf8_lossy(&output.stdout).trim());

        // Its own database login at most, never the owner's or another service's.
        let own_database = format!("POLYCLINIC_{}_DATABASE_URL", command.to_uppercase());
        for key in pod.env.keys().filter(|key| key.ends_with("DATABASE_URL")) {
            assert_eq!(key, &own_database, "{}", pod.workload);
        }
        let own_client = format!("POLYCLINIC_{}_CLIENT_SECRET", command.to_uppercase());
        for key in pod.env.keys().filter(|key| key.ends_with("_CLIENT_SECRET")) {
            assert!(
                key == &own_client || (command == "identity" && key.contains("KEYCLOAK")),
                "{}: {key}",
                pod.workload
            );
        }
        let third_party = [
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
            "POLYCLINIC_SMTP_URL",
        ];
        for key in third_party {
            let allowed = match key {
                "POLYCLINIC_SMTP_URL" => command == "notifications",
                _ => command == "payments",
            };
            assert_eq!(
                pod.env.contains_key(key),
                allowed,
                "{}: {key}",
                pod.workload
            );
        }
    }
    let web = pods
        .iter()
        .find(|pod| pod.workload == "Deployment/web")
        .unwrap();
    assert_eq!(
        web.secret_keys,
        [
            "POLYCLINIC_HTTP_METRICS_TOKEN",
            "POLYCLINIC_SESSIONS_KEYS",
            "POLYCLINIC_WEB_DATABASE_URL"
        ],
        "the web app: its own database login and session keys, no client secret, no third party"
    );
}

#[test]
fn a_pod_missing_its_secret_fails_the_check_naming_the_variable() {
    let pods = rendered();
    let payments = pods
        .iter()
        .find(|pod| pod.workload == "Deployment/payments")
        .unwrap();
    for missing in ["POLYCLINIC_PAYMENTS_CLIENT_SECRET", "STRIPE_WEBHOOK_SECRET"] {
        let mut env = payments.env.clone();
        env.remove(missing);
        let output = check("payments", &env);
        assert_eq!(output.status.code(), Some(2), "{missing}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(missing), "{stderr}");
    }
    // The gateway's own pod lacks payments' secret: checking payments there fails.
    let gateway = pods
        .iter()
        .find(|pod| pod.workload == "Deployment/gateway")
        .unwrap();
    assert_eq!(check("payments", &gateway.env).status.code(), Some(2));
}
