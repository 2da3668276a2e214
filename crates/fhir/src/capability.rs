//! What the FHIR API supports, said once: [`SUPPORTED`] names each resource type, the
//! service that owns its data, who may pass the gateway, and its interactions, search
//! parameters and operations. The CapabilityStatement at `/fhir/metadata` is built from it,
//! the gateway's tests check that it forwards every interaction listed to the service named,
//! and the services' tests that each one answers.

use chrono::{DateTime, Utc};
use polyclinic_config::Service;
use serde::Serialize;

use crate::FHIR_VERSION;
use crate::types::{CodeableConcept, Coding, Extension, instant};

/// A search parameter: its name and FHIR type.
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    pub name: &'static str,
    /// `token`, `reference`, `date`, `string`.
    pub kind: &'static str,
    pub documentation: &'static str,
}

/// Who may reach a resource type through the gateway (the owning service decides, per
/// record, who sees what).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone, like the doctor directory and availability.
    Public,
    /// A person with a valid token.
    People,
    /// Clinic staff.
    Staff,
    /// Patients and administrators (bookings).
    PatientsAndAdmins,
}

/// An operation on a resource type (`POST <Type>/$name`) or on one of its instances
/// (`POST <Type>/{id}/$name`).
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub name: &'static str,
    pub instance: bool,
    /// Who may reach it through the gateway.
    pub audience: Audience,
    pub documentation: &'static str,
}

impl Operation {
    /// Its path under the FHIR base, as the gateway's table writes it.
    pub fn path(&self, resource_type: &str) -> String {
        if self.instance {
            format!("/fhir/{resource_type}/{{id}}/${}", self.name)
        } else {
            format!("/fhir/{resource_type}/${}", self.name)
        }
    }

    /// Its canonical definition's URL.
    pub fn definition(&self, resource_type: &str) -> String {
        format!(
            "{}/OperationDefinition/{}-{}",
            crate::systems::DEFINITION_BASE,
            resource_type,
            self.name
        )
    }
}

/// One resource type as served.
#[derive(Debug, Clone, Copy)]
pub struct Support {
    pub resource_type: &'static str,
    pub service: Service,
    pub audience: Audience,
    /// What the type is, for the CapabilityStatement.
    pub documentation: &'static str,
    pub search: &'static [SearchParam],
    pub operations: &'static [Operation],
    /// Whether `PATCH <Type>/{id}` is served (and who may reach it).
    pub patch: Option<Audience>,
}

macro_rules! params {
    ($($name:literal : $kind:literal => $doc:literal),* $(,)?) => {
        &[$(SearchParam { name: $name, kind: $kind, documentation: $doc }),*]
    };
}

/// Every resource type the API serves, with `read` and `search-type`.
pub const SUPPORTED: &[Support] = &[
    Support {
        resource_type: "Patient",
        service: Service::Identity,
        audience: Audience::People,
        documentation: "A patient's demographics and contacts: the patient themself, their care team and administrators.",
        search: params!["_id": "token" => "The patient's id."],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Practitioner",
        service: Service::Identity,
        audience: Audience::Public,
        documentation: "The clinic's doctors (public, like the directory); nurses for the staff.",
        search: params![
            "_id": "token" => "The practitioner's id.",
            "name": "string" => "Part of the first or last name, case-insensitive.",
        ],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "PractitionerRole",
        service: Service::Identity,
        audience: Audience::Public,
        documentation: "A doctor's specialty in their department (public); a nurse's role in theirs (staff).",
        search: params![
            "practitioner": "reference" => "The practitioner.",
            "specialty": "token" => "The specialty, as its text (case-insensitive).",
            "organization": "reference" => "The department.",
        ],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Organization",
        service: Service::Identity,
        audience: Audience::Public,
        documentation: "The clinic, and its departments as parts of it.",
        search: params![
            "_id": "token" => "The organization's id.",
            "partof": "reference" => "The organization this one is part of.",
        ],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Location",
        service: Service::Identity,
        audience: Audience::Staff,
        documentation: "The clinic's rooms (staff only).",
        search: params!["organization": "reference" => "The department the room belongs to."],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Schedule",
        service: Service::Appointments,
        audience: Audience::Public,
        documentation: "One schedule per doctor: the container of their slots.",
        search: params!["actor": "reference" => "The doctor (Practitioner)."],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Slot",
        service: Service::Appointments,
        audience: Audience::Public,
        documentation: "Bookable times, computed from the doctor's weekly template, time off and bookings; the id names the doctor and the start, so it is stable.",
        search: params![
            "schedule": "reference" => "The schedule (required).",
            "start": "date" => "The slot's start; ge and lt bound a period of at most 31 days.",
            "status": "token" => "free or busy.",
        ],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Appointment",
        service: Service::Appointments,
        audience: Audience::People,
        documentation: "Visits: a patient's own, a doctor's or a nurse's, all for administrators.",
        search: params![
            "patient": "reference" => "The patient.",
            "practitioner": "reference" => "The doctor or the nurse.",
            "date": "date" => "The visit's start.",
            "status": "token" => "proposed (a waitlist's offer), pending, booked, fulfilled, noshow or cancelled.",
        ],
        operations: &[
            Operation {
                name: "find",
                instance: false,
                audience: Audience::Public,
                documentation: "Free slots as proposed Appointments: `practitioner` (Reference) or `specialty` (text), `start` and `end` (at most 31 days), `_count`.",
            },
            Operation {
                name: "hold",
                instance: false,
                audience: Audience::PatientsAndAdmins,
                documentation: "Holds a `slot` (Reference) for the caller (an admin names the `patient`): the pending Appointment, with when the hold expires (extension hold-expires).",
            },
            Operation {
                name: "book",
                instance: false,
                audience: Audience::PatientsAndAdmins,
                documentation: "Books a free `slot` or the held `appointment` (References): the pending Appointment with its payment and the client secret to authorise it with (extensions payment and payment-client-secret).",
            },
            Operation {
                name: "cancel",
                instance: true,
                audience: Audience::PatientsAndAdmins,
                documentation: "Cancels the appointment, with an optional `reason`; the payment is voided or refunded.",
            },
        ],
        patch: Some(Audience::PatientsAndAdmins),
    },
    Support {
        resource_type: "MedicationRequest",
        service: Service::Prescriptions,
        audience: Audience::People,
        documentation: "One per prescription item, grouped by the prescription (groupIdentifier).",
        search: params![
            "patient": "reference" => "The patient.",
            "status": "token" => "active, completed, cancelled or stopped.",
        ],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "AllergyIntolerance",
        service: Service::Prescriptions,
        audience: Audience::People,
        documentation: "Allergies: recorded by a clinician (confirmed) or reported by the patient (unconfirmed).",
        search: params!["patient": "reference" => "The patient (required)."],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Condition",
        service: Service::Prescriptions,
        audience: Audience::People,
        documentation: "Diagnoses, coded in ICD-10.",
        search: params!["patient": "reference" => "The patient (required)."],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "Observation",
        service: Service::Prescriptions,
        audience: Audience::People,
        documentation: "Vital signs per the FHIR vital-signs profile (LOINC codes, UCUM units; blood pressure as a panel).",
        search: params![
            "patient": "reference" => "The patient (required).",
            "category": "token" => "vital-signs.",
            "date": "date" => "When the vitals were taken.",
        ],
        operations: &[],
        patch: None,
    },
    Support {
        resource_type: "AuditEvent",
        service: Service::Prescriptions,
        audience: Audience::People,
        documentation: "The access log of medical records: a patient's own (patient), any for administrators (agent, date).",
        search: params![
            "patient": "reference" => "The patient whose record was accessed.",
            "agent": "reference" => "Who accessed it (administrators only).",
            "date": "date" => "When.",
        ],
        operations: &[],
        patch: None,
    },
];

/// The support of `resource_type`, if it is served.
pub fn support(resource_type: &str) -> Option<&'static Support> {
    SUPPORTED
        .iter()
        .find(|support| support.resource_type == resource_type)
}

#[derive(Debug, Clone, Serialize)]
struct Interaction {
    code: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchParamEntry {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    documentation: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct OperationEntry {
    name: &'static str,
    definition: String,
    documentation: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct RestResource {
    #[serde(rename = "type")]
    kind: &'static str,
    documentation: &'static str,
    interaction: Vec<Interaction>,
    search_param: Vec<SearchParamEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    operation: Vec<OperationEntry>,
}

#[derive(Debug, Clone, Serialize)]
struct Security {
    extension: Vec<Extension>,
    service: Vec<CodeableConcept>,
    description: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Rest {
    mode: &'static str,
    documentation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    security: Option<Security>,
    resource: Vec<RestResource>,
}

/// Where SMART apps authorize, get and revoke tokens (the built-in provider's endpoints, or
/// Keycloak's).
#[derive(Debug, Clone)]
pub struct SmartEndpoints {
    pub authorize: String,
    pub token: String,
    pub revoke: String,
}

impl SmartEndpoints {
    /// The endpoints of the issuer `issuer`: the built-in provider's, or (`keycloak`) a
    /// Keycloak realm's.
    pub fn of_issuer(issuer: &str, keycloak: bool) -> Self {
        if keycloak {
            Self {
                authorize: format!("{issuer}/protocol/openid-connect/auth"),
                token: format!("{issuer}/protocol/openid-connect/token"),
                revoke: format!("{issuer}/protocol/openid-connect/revoke"),
            }
        } else {
            Self {
                authorize: format!("{issuer}/authorize"),
                token: format!("{issuer}/token"),
                revoke: format!("{issuer}/revoke"),
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Software {
    name: &'static str,
    version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Implementation {
    description: &'static str,
    url: String,
}

/// The server's CapabilityStatement.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityStatement {
    status: &'static str,
    #[serde(serialize_with = "instant")]
    date: DateTime<Utc>,
    publisher: &'static str,
    kind: &'static str,
    software: Software,
    implementation: Implementation,
    fhir_version: &'static str,
    format: Vec<&'static str>,
    rest: Vec<Rest>,
}

impl CapabilityStatement {
    /// What the server at `base` supports, its SMART endpoints `smart`; `date` is when this
    /// statement was made.
    pub fn of_server(base: &str, smart: &SmartEndpoints, date: DateTime<Utc>) -> Self {
        let uri = |name: &str, value: &str| Extension::uri(name, value);
        let security = Security {
            extension: vec![Extension::complex(
                "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                vec![
                    uri("authorize", &smart.authorize),
                    uri("token", &smart.token),
                    uri("revoke", &smart.revoke),
                ],
            )],
            service: vec![CodeableConcept::coded(Coding::new(
                "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "SMART-on-FHIR",
                Some("SMART-on-FHIR"),
            ))],
            description: "SMART App Launch 2.x (standalone launch, authorization code with PKCE S256); see `.well-known/smart-configuration`. A token that carries scopes is held to them.",
        };
        let resource = SUPPORTED
            .iter()
            .map(|support| RestResource {
                kind: support.resource_type,
                documentation: support.documentation,
                interaction: [
                    Some("read"),
                    Some("search-type"),
                    support.patch.map(|_| "patch"),
                ]
                .into_iter()
                .flatten()
                .map(|code| Interaction { code })
                .collect(),
                operation: support
                    .operations
                    .iter()
                    .map(|operation| OperationEntry {
                        name: operation.name,
                        definition: operation.definition(support.resource_type),
                        documentation: operation.documentation,
                    })
                    .collect(),
                search_param: support
                    .search
                    .iter()
                    .map(|param| SearchParamEntry {
                        name: param.name,
                        kind: param.kind,
                        documentation: param.documentation,
                    })
                    .collect(),
            })
            .collect();
        Self {
            status: "active",
            date,
            publisher: "Polyclinic",
            kind: "instance",
            software: Software {
                name: "Polyclinic",
                version: env!("CARGO_PKG_VERSION"),
            },
            implementation: Implementation {
                description: "Polyclinic's FHIR R4 API",
                url: base.to_owned(),
            },
            fhir_version: FHIR_VERSION,
            format: vec!["json"],
            rest: vec![Rest {
                mode: "server",
                security: Some(security),
                documentation: "Every access rule of the REST API holds: a patient sees only their own, the care team theirs, administrators no clinical content; anything else is 404. Searches refuse parameters they do not support (400) and page with `_count` (1 to 100) and the `next` link.",
                resource,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_lists_every_supported_type_with_its_search_parameters() {
        let smart = SmartEndpoints::of_issuer("https://c/api/auth", false);
        let statement = CapabilityStatement::of_server("https://c/fhir", &smart, Utc::now());
        let json = serde_json::to_value(crate::Resource::from(statement)).unwrap();
        assert_eq!(json["resourceType"], "CapabilityStatement");
        assert_eq!(json["fhirVersion"], "4.0.1");
        let resources = json["rest"][0]["resource"].as_array().unwrap();
        assert_eq!(resources.len(), SUPPORTED.len());
        let slot = resources.iter().find(|r| r["type"] == "Slot").unwrap();
        let names: Vec<_> = slot["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["schedule", "start", "status"]);
        let security = &json["rest"][0]["security"];
        assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
        assert_eq!(
            security["extension"][0]["extension"][0],
            serde_json::json!({ "url": "authorize", "valueUri": "https://c/api/auth/authorize" })
        );
    }

    #[test]
    fn no_type_is_listed_twice() {
        for (index, support) in SUPPORTED.iter().enumerate() {
            assert!(
                SUPPORTED[index + 1..]
                    .iter()
                    .all(|other| other.resource_type != support.resource_type),
                "{} is listed twice",
                support.resource_type
            );
        }
    }
}
