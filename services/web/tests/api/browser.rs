//! The browser flow (tests/browser/flow.mjs) in Debian's Chromium against the whole
//! platform with an SMTP sink, so the patient's emails really leave over SMTP.

use std::path::Path;

use polyclinic_testing::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Service, SmtpSink, TestPlatform, eventually,
};

const STAFF_PASSWORD: &str = "staff passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_registers_books_pays_and_reads_the_prescription_in_a_real_browser() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        scripts.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in {} (.ci/run does)",
        scripts.display()
    );
    let sink = SmtpSink::start().await;
    let address = sink.address();
    let platform = TestPlatform::start_with(&Service::ALL, |config, _| {
        config.email.transport = polyclinic_config::EmailTransport::Smtp;
        config.email.smtp_url = Some(format!("smtp://{address}?tls=none"));
    })
    .await;
    let clinic = platform.clinic().await;
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    let patient_email = format!("ada-{}@example.test", uuid_suffix());

    let mut node = std::process::Command::new("node");
    node.arg("flow.mjs")
        .current_dir(&scripts)
        .env("WEB_URL", platform.url(Service::Web, ""))
        .env("ARTIFACTS", &artifacts)
        .env("ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("DOCTOR_EMAIL", &clinic.doctor_email)
        .env("NURSE_EMAIL", &clinic.nurse_email)
        .env("STAFF_PASSWORD", STAFF_PASSWORD)
        .env("PATIENT_EMAIL", &patient_email);
    // The platform keeps serving on the runtime's other threads meanwhile.
    let output = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node runs (Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser flow failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");

    // What the patient saw in the list went out as real email.
    let mails = eventually("the prescription email over SMTP", || {
        let received = sink.received();
        let patient_email = patient_email.clone();
        async move {
            received
                .into_iter()
                .filter(|mail| mail.to.contains(&patient_email))
                .find(|mail| {
                    String::from_utf8_lossy(&mail.data)
                        .to_lowercase()
                        .contains("prescription")
                })
        }
    })
    .await;
    assert!(
        !String::from_utf8_lossy(&mails.data).contains("Penicillin"),
        "the email carries no clinical detail"
    );
    for screenshot in [
        "02-directory",
        "03-week",
        "04-pay",
        "06-admin-queue",
        "10-allergy-warning",
        "11-record",
        "12-notifications",
    ] {
        assert!(
            artifacts.join(format!("{screenshot}.png")).is_file(),
            "{screenshot}.png was saved"
        );
    }
}

fn uuid_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
