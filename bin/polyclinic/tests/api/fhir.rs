//! The FHIR R4 API through the gateway: every resource type and every appointment status
//! mapping, validated by two independent validators (FHIR.js and HL7's R4 JSON schema, run
//! with Node from `crates/fhir/tests/validator`), and the REST API's access rules and audit
//! holding on the FHIR routes.

use std::path::{Path, PathBuf};

use polyclinic_testing::{Clinic, Reply, Service, TestPlatform, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the validators are given: every document the API answered, one file each.
struct Collected {
    directory: PathBuf,
    count: usize,
}

impl Collected {
    fn new(name: &str) -> Self {
        let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).unwrap();
        Self {
            directory,
            count: 0,
        }
    }

    fn keep(&mut self, what: &str, body: &Value) {
        self.count += 1;
        let name = format!(
            "{:03}-{}.json",
            self.count,
            what.replace(['/', '?', '&', '=', ':'], "_")
        );
        std::fs::write(
            self.directory.join(name),
            serde_json::to_vec_pretty(body).unwrap(),
        )
        .unwrap();
    }

    /// Runs both validators over everything kept; panics with their report on any error.
    fn validate(&self) -> String {
        let validator =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/fhir/tests/validator");
        assert!(
            validator.join("node_modules/fhir").is_dir(),
            "the FHIR validators are not installed: run `npm ci` in {} (.ci/run does)",
            validator.display()
        );
        let output = std::process::Command::new("node")
            .arg("validate.mjs")
            .arg(&self.directory)
            .current_dir(&validator)
            .output()
            .expect("node runs (Node.js 20 or later)");
        let report = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "the FHIR validators found errors:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        report
    }
}

async fn fhir(platform: &TestPlatform, path: &str, token: Option<&str>) -> Reply {
    let reply = platform
        .call_service(
            Service::Gateway,
            Method::GET,
            &format!("/fhir/{path}"),
            token,
            None,
        )
        .await;
    assert_eq!(
        reply.headers["content-type"], "application/fhir+json; charset=utf-8",
        "GET /fhir/{path}: {} {:?}",
        reply.status, reply.body
    );
    reply
}

/// Reads `path` as `token`, expecting 200, and keeps the document for the validators.
async fn read(
    platform: &TestPlatform,
    kept: &mut Collected,
    path: &str,
    token: Option<&str>,
) -> Value {
    let reply = fhir(platform, path, token).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "GET /fhir/{path}: {:?}",
        reply.body
    );
    kept.keep(path, &reply.body);
    reply.body
}

/// The resources of a searchset.
fn entries(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| entry["resource"].clone())
                .collect()
        })
        .unwrap_or_default()
}

fn ids(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .map(|resource| resource["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn ok(
    platform: &TestPlatform,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> Value {
    let reply = platform
        .call(method.clone(), path, Some(token), Some(body))
        .await;
    assert!(
        reply.status.is_success(),
        "{method} {path}: {} {:?}",
        reply.status,
        reply.body
    );
    reply.body
}

/// A patient with a scheduled visit, a record (a diagnosis, vitals, an allergy the doctor
/// recorded and one the patient declared) and a prescription.
pub struct Chart {
    pub patient_id: String,
    pub patient: String,
    pub visit_id: String,
    pub prescription_id: String,
    pub diagnosis_id: String,
    pub vitals_id: String,
    pub allergy_id: String,
}

pub async fn chart(platform: &TestPlatform, clinic: &Clinic) -> Chart {
    let (patient, token) = platform.register_patient("fhir-ada@example.test").await;
    let patient_id = patient["id"].as_str().unwrap().to_owned();
    let slots = platform.free_slots(&clinic.doctor_id, None).await;
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &slots[0])
        .await;
    let visit_id = paid["id"].as_str().unwrap().to_owned();
    assert_eq!(
        platform.approve(clinic, &visit_id).await.status,
        StatusCode::OK
    );
    platform
        .appointment_becomes(&token, &visit_id, "SCHEDULED")
        .await;
    ok(
        platform,
        Method::PATCH,
        "/api/users/me",
        &token,
        json!({"allergies": ["Latex"]}),
    )
    .await;

    let entry = |body: Value| {
        let path = format!("/api/records/{patient_id}/entries");
        let doctor = clinic.doctor.clone();
        async move {
            ok(platform, Method::POST, &path, &doctor, body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let diagnosis_id = entry(
        json!({"kind": "DIAGNOSIS", "icd10_code": "I10", "description": "Essential hypertension"}),
    )
    .await;
    let vitals_id = entry(json!({"kind": "VITALS", "systolic_mmhg": 135, "diastolic_mmhg": 85, "pulse_bpm": 78,
        "temperature_c": 36.8, "respiratory_rate": 14, "spo2_percent": 98, "weight_kg": 71.5, "height_cm": 172.0})).await;
    let allergy_id = entry(json!({"kind": "ALLERGY", "substance": "Penicillin", "reaction": "Hives", "severity": "SEVERE"})).await;
    let prescription = ok(platform, Method::POST, "/api/prescriptions", &clinic.doctor, json!({
        "appointment_id": visit_id, "refills_allowed": 2,
        "items": [
            {"medication": "Ramipril", "strength": "5 mg", "form": "tablet", "dose": "1 tablet", "route": "oral",
             "frequency": "once daily", "duration": "30 days", "quantity": 30, "instructions": "Take in the morning"},
            {"medication": "Amlodipine", "strength": "5 mg", "form": "tablet", "dose": "1 tablet", "route": "oral",
             "frequency": "once daily", "duration": "30 days", "quantity": 30}
        ]})).await;
    Chart {
        patient_id,
        patient: token,
        visit_id,
        prescription_id: prescription["id"].as_str().unwrap().to_owned(),
        diagnosis_id,
        vitals_id,
        allergy_id,
    }
}

/// Appointments of the patient in every status the platform has, for the status mapping.
async fn every_status(
    platform: &TestPlatform,
    clinic: &Clinic,
    chart: &Chart,
) -> Vec<(String, &'static str)> {
    let slots = platform.free_slots(&clinic.doctor_id, None).await;
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let mut made = vec![(chart.visit_id.clone(), "SCHEDULED")];
    let pending = platform
        .reserve(&chart.patient, &clinic.doctor_id, &slots[0])
        .await;
    made.push((pending["id"].as_str().unwrap().to_owned(), "PENDING"));
    let paid = platform
        .paid_appointment(&chart.patient, &clinic.doctor_id, &slots[1])
        .await;
    made.push((paid["id"].as_str().unwrap().to_owned(), "PAID"));
    let cancelled = platform
        .reserve(&chart.patient, &clinic.doctor_id, &slots[2])
        .await;
    let id = cancelled["id"].as_str().unwrap().to_owned();
    ok(
        platform,
        Method::POST,
        &format!("/api/appointments/{id}/cancel"),
        &chart.patient,
        json!({"reason": "Cannot come"}),
    )
    .await;
    made.push((id, "CANCELLED"));
    let rejected = platform
        .paid_appointment(&chart.patient, &clinic.doctor_id, &slots[3])
        .await;
    let id = rejected["id"].as_str().unwrap().to_owned();
    ok(
        platform,
        Method::POST,
        &format!("/api/appointments/{id}/reject"),
        &clinic.admin,
        json!({"reason": "The doctor is away"}),
    )
    .await;
    made.push((id, "REJECTED"));
    // Completed, no-show and expired need time to pass: set as the jobs would leave them.
    for (slot, status) in [
        (&slots[4], "COMPLETED"),
        (&slots[5], "NO_SHOW"),
        (&slots[6], "EXPIRED"),
    ] {
        let reserved = platform
            .reserve(&chart.patient, &clinic.doctor_id, slot)
            .await;
        let id = reserved["id"].as_str().unwrap().to_owned();
        sqlx::query("update appointments.appointments set status = $2 where id = $1::uuid")
            .bind(&id)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        made.push((id, status));
    }
    made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_the_fhir_api_answers_is_valid_r4_for_two_independent_validators() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let chart = chart(&platform, &clinic).await;
    let statuses = every_status(&platform, &clinic, &chart).await;
    let mut kept = Collected::new("fhir-documents");
    let (doctor, nurse, admin, patient) = (
        Some(clinic.doctor.as_str()),
        Some(clinic.nurse.as_str()),
        Some(clinic.admin.as_str()),
        Some(chart.patient.as_str()),
    );

    let statement = read(&platform, &mut kept, "metadata", None).await;
    assert_eq!(statement["fhirVersion"], "4.0.1");

    // Who people are, and where.
    read(
        &platform,
        &mut kept,
        &format!("Patient/{}", chart.patient_id),
        patient,
    )
    .await;
    read(
        &platform,
        &mut kept,
        &format!("Patient?_id={}", chart.patient_id),
        doctor,
    )
    .await;
    read(&platform, &mut kept, "Patient", admin).await;
    read(
        &platform,
        &mut kept,
        &format!("Practitioner/{}", clinic.doctor_id),
        None,
    )
    .await;
    read(
        &platform,
        &mut kept,
        &format!("Practitioner/{}", clinic.nurse_id),
        nurse,
    )
    .await;
    read(&platform, &mut kept, "Practitioner", None).await;
    read(
        &platform,
        &mut kept,
        &format!("PractitionerRole/{}", clinic.doctor_id),
        None,
    )
    .await;
    read(
        &platform,
        &mut kept,
        &format!(
            "PractitionerRole?organization=Organization/{}",
            clinic.department_id
        ),
        admin,
    )
    .await;
    read(&platform, &mut kept, "Organization/clinic", None).await;
    read(
        &platform,
        &mut kept,
        &format!("Organization/{}", clinic.department_id),
        None,
    )
    .await;
    read(&platform, &mut kept, "Organization", None).await;
    read(
        &platform,
        &mut kept,
        &format!("Location/{}", clinic.room_id),
        nurse,
    )
    .await;
    read(&platform, &mut kept, "Location", admin).await;

    // The calendar.
    read(
        &platform,
        &mut kept,
        &format!("Schedule/{}", clinic.doctor_id),
        None,
    )
    .await;
    read(
        &platform,
        &mut kept,
        &format!("Schedule?actor=Practitioner/{}", clinic.doctor_id),
        None,
    )
    .await;
    let slots = read(
        &platform,
        &mut kept,
        &format!("Slot?schedule=Schedule/{}", clinic.doctor_id),
        None,
    )
    .await;
    let slot_ids = ids(&slots);
    read(&platform, &mut kept, &format!("Slot/{}", slot_ids[0]), None).await;
    for (id, _) in &statuses {
        read(&platform, &mut kept, &format!("Appointment/{id}"), patient).await;
    }
    read(
        &platform,
        &mut kept,
        &format!("Appointment?patient=Patient/{}", chart.patient_id),
        admin,
    )
    .await;
    read(&platform, &mut kept, "Appointment", doctor).await;

    // The record.
    let requests = read(
        &platform,
        &mut kept,
        &format!("MedicationRequest?patient=Patient/{}", chart.patient_id),
        doctor,
    )
    .await;
    for id in ids(&requests) {
        read(
            &platform,
            &mut kept,
            &format!("MedicationRequest/{id}"),
            patient,
        )
        .await;
    }
    let allergies = eventually("the declared allergy in the record", || async {
        let reply = fhir(
            &platform,
            &format!("AllergyIntolerance?patient=Patient/{}", chart.patient_id),
            patient,
        )
        .await;
        (entries(&reply.body).len() == 2).then_some(reply.body)
    })
    .await;
    kept.keep("AllergyIntolerance-search", &allergies);
    for id in ids(&allergies) {
        read(
            &platform,
            &mut kept,
            &format!("AllergyIntolerance/{id}"),
            doctor,
        )
        .await;
    }
    read(
        &platform,
        &mut kept,
        &format!("Condition?patient=Patient/{}", chart.patient_id),
        nurse,
    )
    .await;
    read(
        &platform,
        &mut kept,
        &format!("Condition/{}", chart.diagnosis_id),
        patient,
    )
    .await;
    let vitals = read(
        &platform,
        &mut kept,
        &format!(
            "Observation?patient=Patient/{}&category=vital-signs",
            chart.patient_id
        ),
        doctor,
    )
    .await;
    for id in ids(&vitals) {
        read(&platform, &mut kept, &format!("Observation/{id}"), patient).await;
    }
    let log = read(
        &platform,
        &mut kept,
        &format!("AuditEvent?patient=Patient/{}", chart.patient_id),
        patient,
    )
    .await;
    read(
        &platform,
        &mut kept,
        &format!("AuditEvent/{}", ids(&log)[0]),
        patient,
    )
    .await;
    read(
        &platform,
        &mut kept,
        &format!("AuditEvent?agent=Practitioner/{}", clinic.doctor_id),
        admin,
    )
    .await;

    // Errors are OperationOutcomes too.
    for (path, token, status) in [
        ("Appointment/not-an-id", patient, StatusCode::NOT_FOUND),
        ("Appointment?status=maybe", patient, StatusCode::BAD_REQUEST),
        ("Nonsense", None, StatusCode::NOT_FOUND),
        ("Condition", doctor, StatusCode::BAD_REQUEST),
        ("Appointment", None, StatusCode::UNAUTHORIZED),
    ] {
        let reply = fhir(&platform, path, token).await;
        assert_eq!(reply.status, status, "{path}: {:?}", reply.body);
        assert_eq!(reply.body["resourceType"], "OperationOutcome", "{path}");
        kept.keep(&format!("outcome-{path}"), &reply.body);
    }

    let report = kept.validate();
    println!("{report}");
    for resource_type in [
        "CapabilityStatement",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "Schedule",
        "Slot",
        "Appointment",
        "MedicationRequest",
        "AllergyIntolerance",
        "Condition",
        "Observation",
        "AuditEvent",
        "OperationOutcome",
        "Bundle",
    ] {
        assert!(
            report.contains(&format!("\"{resource_type}\":")),
            "no {resource_type} was validated: {report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_api_keeps_the_rest_apis_rules_and_its_audit() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let chart = chart(&platform, &clinic).await;
    let statuses = every_status(&platform, &clinic, &chart).await;
    let (_, stranger) = platform
        .register_patient("fhir-stranger@example.test")
        .await;

    // Each platform status reads as FHIR maps it, and as the REST API says.
    for (id, status) in &statuses {
        let appointment = fhir(
            &platform,
            &format!("Appointment/{id}"),
            Some(&chart.patient),
        )
        .await
        .body;
        let expected = match *status {
            "PENDING" | "PAID" => "pending",
            "SCHEDULED" => "booked",
            "COMPLETED" => "fulfilled",
            "NO_SHOW" => "noshow",
            _ => "cancelled",
        };
        assert_eq!(appointment["status"], expected, "{status}");
        assert_eq!(
            appointment["cancelationReason"].is_object(),
            expected == "cancelled",
            "{status}"
        );
        let rest = platform
            .call(
                Method::GET,
                &format!("/api/appointments/{id}"),
                Some(&chart.patient),
                None,
            )
            .await;
        assert_eq!(rest.body["status"], *status);
    }
    let cancelled = fhir(
        &platform,
        &format!(
            "Appointment?patient=Patient/{}&status=cancelled",
            chart.patient_id
        ),
        Some(&clinic.admin),
    )
    .await;
    assert_eq!(
        entries(&cancelled.body).len(),
        3,
        "cancelled, rejected and expired"
    );

    // Another patient sees none of it: 404 for reads, nothing in searches.
    for path in [
        format!("Patient/{}", chart.patient_id),
        format!("Appointment/{}", chart.visit_id),
        format!("MedicationRequest/{}-1", chart.prescription_id),
        format!("Condition/{}", chart.diagnosis_id),
        format!("Observation/{}-bp", chart.vitals_id),
        format!("AllergyIntolerance/{}", chart.allergy_id),
        format!("Condition?patient=Patient/{}", chart.patient_id),
    ] {
        let reply = fhir(&platform, &path, Some(&stranger)).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }
    let theirs = fhir(
        &platform,
        &format!("Appointment?patient=Patient/{}", chart.patient_id),
        Some(&stranger),
    )
    .await;
    assert!(entries(&theirs.body).is_empty());
    // Administrators read no clinical content.
    let reply = fhir(
        &platform,
        &format!("Observation?patient=Patient/{}", chart.patient_id),
        Some(&clinic.admin),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // The blood pressure is a panel of two LOINC-coded components in mm[Hg].
    let bp = fhir(
        &platform,
        &format!("Observation/{}-bp", chart.vitals_id),
        Some(&clinic.doctor),
    )
    .await
    .body;
    assert_eq!(bp["code"]["coding"][0]["code"], "85354-9");
    assert_eq!(bp["component"][0]["valueQuantity"]["value"], 135.0);
    assert_eq!(bp["component"][1]["code"]["coding"][0]["code"], "8462-4");
    assert_eq!(bp["component"][1]["valueQuantity"]["code"], "mm[Hg]");
    // Prescription items are grouped by their prescription, refills as repeats.
    let requests = fhir(
        &platform,
        &format!("MedicationRequest?patient=Patient/{}", chart.patient_id),
        Some(&chart.patient),
    )
    .await;
    let requests = entries(&requests.body);
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request["groupIdentifier"]["value"],
            chart.prescription_id.as_str()
        );
        assert_eq!(request["dispenseRequest"]["numberOfRepeatsAllowed"], 2);
        assert_eq!(request["intent"], "order");
    }
    // Items page one by one through the next link, each once.
    let mut seen = Vec::new();
    let mut path = format!(
        "MedicationRequest?patient=Patient/{}&_count=1",
        chart.patient_id
    );
    loop {
        let page = fhir(&platform, &path, Some(&chart.patient)).await.body;
        seen.extend(ids(&page));
        let Some(next) = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|link| link["relation"] == "next")
        else {
            break;
        };
        path = next["url"]
            .as_str()
            .unwrap()
            .split_once("/fhir/")
            .unwrap()
            .1
            .to_owned();
    }
    assert_eq!(
        seen,
        [
            format!("{}-1", chart.prescription_id),
            format!("{}-2", chart.prescription_id)
        ]
    );
    let condition = fhir(
        &platform,
        &format!("Condition/{}", chart.diagnosis_id),
        Some(&chart.patient),
    )
    .await
    .body;
    assert_eq!(
        condition["code"]["coding"][0],
        json!({"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"})
    );

    // The doctor's FHIR reads of the record are in the patient's access log, REST and FHIR.
    let log = platform
        .call(
            Method::GET,
            &format!("/api/records/{}/access-log", chart.patient_id),
            Some(&chart.patient),
            None,
        )
        .await;
    let doctor_reads = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| {
            row["actor_id"] == clinic.doctor_id.as_str() && row["action"] == "record.read"
        })
        .count();
    assert!(doctor_reads >= 1, "{:?}", log.body);
    let events = fhir(
        &platform,
        &format!("AuditEvent?patient=Patient/{}", chart.patient_id),
        Some(&chart.patient),
    )
    .await;
    let refused = entries(&events.body)
        .iter()
        .filter(|event| event["outcome"] == "4")
        .count();
    assert!(
        refused >= 1,
        "the stranger's refused reads are audited: {:?}",
        events.body
    );
    let audited = entries(&events.body).iter().any(|event| {
        event["agent"][0]["who"]["reference"] == format!("Practitioner/{}", clinic.doctor_id)
    });
    assert!(audited, "{:?}", events.body);

    // Paging is by the next link, with the same parameters.
    let first = fhir(
        &platform,
        &format!("Appointment?patient=Patient/{}&_count=3", chart.patient_id),
        Some(&clinic.admin),
    )
    .await
    .body;
    let mut seen = ids(&first);
    let mut next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|link| link["relation"] == "next")
        .cloned();
    while let Some(link) = next {
        let url = link["url"].as_str().unwrap();
        let path = url.split_once("/fhir/").unwrap().1;
        let page = fhir(&platform, path, Some(&clinic.admin)).await.body;
        seen.extend(ids(&page));
        next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|link| link["relation"] == "next")
            .cloned();
    }
    let mut expected: Vec<String> = statuses.iter().map(|(id, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every appointment once, in booking order");

    // Unknown parameters and formats are refused, not ignored.
    let reply = fhir(&platform, "Practitioner?gender=female", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = fhir(&platform, "metadata?_format=xml", None).await;
    assert_eq!(reply.status, StatusCode::NOT_ACCEPTABLE);
}

async fn operation(
    platform: &TestPlatform,
    path: &str,
    token: Option<&str>,
    parameters: Value,
    key: Option<&str>,
) -> Reply {
    let mut request = platform
        .client()
        .post(platform.url(Service::Gateway, &format!("/fhir/{path}")))
        .header("content-type", "application/fhir+json")
        .body(
            serde_json::to_vec(&json!({"resourceType": "Parameters", "parameter": parameters}))
                .unwrap(),
        );
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    assert_eq!(
        headers["content-type"], "application/fhir+json; charset=utf-8",
        "{path}: {status} {body:?}"
    );
    Reply {
        status,
        headers,
        body,
    }
}

fn extension<'a>(resource: &'a Value, name: &str) -> &'a Value {
    resource["extension"]
        .as_array()
        .and_then(|extensions| {
            extensions.iter().find(|extension| {
                extension["url"]
                    .as_str()
                    .is_some_and(|url| url.ends_with(name))
            })
        })
        .map_or(&Value::Null, |extension| {
            extension
                .get("valueString")
                .or(extension.get("valueDateTime"))
                .unwrap_or(&Value::Null)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_through_find_book_payment_and_approval_reaches_booked_with_rest_and_fhir_agreeing()
{
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (patient, token) = platform.register_patient("fhir-booker@example.test").await;
    let patient_id = patient["id"].as_str().unwrap().to_owned();
    let (_, stranger) = platform.register_patient("fhir-other@example.test").await;
    let mut kept = Collected::new("fhir-booking");
    let rest = |id: String| {
        let token = token.clone();
        let platform = &platform;
        async move {
            platform
                .call(
                    Method::GET,
                    &format!("/api/appointments/{id}"),
                    Some(&token),
                    None,
                )
                .await
                .body
        }
    };

    // $find: the doctor's free slots over the coming week, as proposed Appointments.
    let found = operation(&platform, "Appointment/$find", None, json!([
        {"name": "practitioner", "valueReference": {"reference": format!("Practitioner/{}", clinic.doctor_id)}},
        {"name": "_count", "valueInteger": 5}
    ]), None).await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
    kept.keep("find", &found.body);
    let proposals = entries(&found.body);
    assert_eq!(proposals.len(), 5);
    assert!(
        proposals
            .iter()
            .all(|proposal| proposal["status"] == "proposed")
    );
    let free: Vec<String> = platform.free_slots(&clinic.doctor_id, None).await;
    assert_eq!(
        proposals[0]["start"]
            .as_str()
            .unwrap()
            .replace('Z', "+00:00"),
        free[0].replace('Z', "+00:00"),
        "the first proposal is the first free slot"
    );
    let by_specialty = operation(
        &platform,
        "Appointment/$find",
        None,
        json!([{"name": "specialty", "valueString": "cardio"}]),
        None,
    )
    .await;
    assert_eq!(
        by_specialty.status,
        StatusCode::OK,
        "{:?}",
        by_specialty.body
    );

    // $book a proposal's slot: pending, with its payment and client secret; REST agrees.
    let slot = proposals[0]["slot"][0]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = operation(&platform, "Appointment/$book", Some(&token), json!([{"name": "slot", "valueReference": {"reference": slot}}, {"name": "reason", "valueString": "check-up"}]), Some("book-1")).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{:?}", booked.body);
    kept.keep("book", &booked.body);
    let id = booked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(booked.body["status"], "pending");
    let payment_id = extension(&booked.body, "/payment")
        .as_str()
        .unwrap()
        .to_owned();
    assert!(extension(&booked.body, "/payment-client-secret").is_string());
    assert_eq!(rest(id.clone()).await["status"], "PENDING");
    // The same key answers the same booking, not a second one.
    let again = operation(&platform, "Appointment/$book", Some(&token), json!([{"name": "slot", "valueReference": {"reference": slot}}, {"name": "reason", "valueString": "check-up"}]), Some("book-1")).await;
    assert_eq!(again.body["id"], booked.body["id"]);
    // The slot is now busy for everyone else.
    let taken = operation(
        &platform,
        "Appointment/$book",
        Some(&stranger),
        json!([{"name": "slot", "valueString": slot}]),
        None,
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{:?}", taken.body);
    assert_eq!(taken.body["resourceType"], "OperationOutcome");
    kept.keep("book-taken", &taken.body);
    let slot_now = fhir(&platform, &slot, None).await.body;
    assert_eq!(slot_now["status"], "busy");

    // Paying makes it paid (still pending in FHIR); approval makes it booked.
    assert_eq!(
        platform
            .pay(&token, &payment_id, "pm_card_visa")
            .await
            .status,
        StatusCode::OK
    );
    platform.appointment_becomes(&token, &id, "PAID").await;
    assert_eq!(
        fhir(&platform, &format!("Appointment/{id}"), Some(&token))
            .await
            .body["status"],
        "pending"
    );
    assert_eq!(platform.approve(&clinic, &id).await.status, StatusCode::OK);
    platform.appointment_becomes(&token, &id, "SCHEDULED").await;
    let scheduled = fhir(&platform, &format!("Appointment/{id}"), Some(&token))
        .await
        .body;
    kept.keep("booked", &scheduled);
    assert_eq!(scheduled["status"], "booked");
    let actors: Vec<&str> = scheduled["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["actor"]["reference"].as_str().unwrap())
        .collect();
    assert!(actors.contains(&format!("Patient/{patient_id}").as_str()));
    assert!(actors.contains(&format!("Practitioner/{}", clinic.nurse_id).as_str()));
    assert!(actors.contains(&format!("Location/{}", clinic.room_id).as_str()));

    // $hold, then $book the hold: the same appointment, now with its payment.
    let held = operation(&platform, "Appointment/$hold", Some(&token), json!([{"name": "slot", "valueReference": {"reference": proposals[1]["slot"][0]["reference"]}}]), None).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    kept.keep("hold", &held.body);
    assert_eq!(held.body["status"], "pending");
    let hold_id = held.body["id"].as_str().unwrap().to_owned();
    let expires = extension(&held.body, "/hold-expires")
        .as_str()
        .unwrap()
        .to_owned();
    let rest_hold = rest(hold_id.clone()).await;
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&expires)
            .unwrap()
            .timestamp(),
        chrono::DateTime::parse_from_rfc3339(rest_hold["hold_expires_at"].as_str().unwrap())
            .unwrap()
            .timestamp()
    );
    let stranger_books = operation(&platform, "Appointment/$book", Some(&stranger), json!([{"name": "appointment", "valueReference": {"reference": format!("Appointment/{hold_id}")}}]), None).await;
    assert_eq!(
        stranger_books.status,
        StatusCode::NOT_FOUND,
        "another patient's hold is not theirs to book"
    );
    let booked_hold = operation(&platform, "Appointment/$book", Some(&token), json!([{"name": "appointment", "valueReference": {"reference": format!("Appointment/{hold_id}")}}]), None).await;
    assert_eq!(booked_hold.status, StatusCode::OK, "{:?}", booked_hold.body);
    assert_eq!(booked_hold.body["id"], hold_id.as_str());
    assert_eq!(
        extension(&booked_hold.body, "/payment"),
        &rest_hold["payment_id"]
    );
    assert!(extension(&booked_hold.body, "/payment-client-secret").is_string());

    // $cancel the hold; PATCH-cancel another; both as REST sees them.
    let cancelled = operation(
        &platform,
        &format!("Appointment/{hold_id}/$cancel"),
        Some(&token),
        json!([{"name": "reason", "valueString": "Plans changed"}]),
        None,
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    kept.keep("cancel", &cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(rest(hold_id.clone()).await["status"], "CANCELLED");
    let third = operation(
        &platform,
        "Appointment/$hold",
        Some(&token),
        json!([{"name": "slot", "valueString": proposals[2]["slot"][0]["reference"]}]),
        None,
    )
    .await;
    let third_id = third.body["id"].as_str().unwrap().to_owned();
    let patch = |body: Value, token: String| {
        let url = platform.url(Service::Gateway, &format!("/fhir/Appointment/{third_id}"));
        let client = platform.client().clone();
        async move {
            let response = client
                .patch(url)
                .bearer_auth(token)
                .header("content-type", "application/json-patch+json")
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, refused) = patch(
        json!([{"op": "replace", "path": "/start", "value": "2030-01-01T00:00:00Z"}]),
        token.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused:?}");
    assert_eq!(refused["resourceType"], "OperationOutcome");
    let (status, theirs) = patch(
        json!([{"op": "replace", "path": "/status", "value": "cancelled"}]),
        stranger.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{theirs:?}");
    let (status, patched) = patch(json!([{"op": "replace", "path": "/status", "value": "cancelled"}, {"op": "add", "path": "/cancelationReason", "value": {"text": "Found an earlier slot"}}]), token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{patched:?}");
    kept.keep("patch", &patched);
    assert_eq!(
        patched["cancelationReason"]["text"],
        "Found an earlier slot"
    );
    assert_eq!(rest(third_id.clone()).await["status"], "CANCELLED");

    // Bad input is a 4xx OperationOutcome, and nothing is booked by it.
    for (path, parameters) in [
        ("Appointment/$find", json!([])),
        (
            "Appointment/$find",
            json!([{"name": "colour", "valueString": "red"}]),
        ),
        (
            "Appointment/$book",
            json!([{"name": "slot", "valueString": "Slot/not-a-slot"}]),
        ),
        ("Appointment/$hold", json!([])),
    ] {
        let reply = operation(&platform, path, Some(&token), parameters.clone(), None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path} {parameters}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }
    let mine = platform
        .call(Method::GET, "/api/appointments/mine", Some(&token), None)
        .await;
    assert_eq!(
        mine.body["items"].as_array().unwrap().len(),
        3,
        "the booking, the cancelled hold and the patched one"
    );

    let report = kept.validate();
    println!("{report}");
}
