//! The resources Polyclinic serves, with the elements it fills. [`Resource`] writes the
//! `resourceType` every FHIR resource starts with.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::bundle::Bundle;
use crate::capability::CapabilityStatement;
use crate::outcome::OperationOutcome;
use crate::types::{
    Address, CodeableConcept, Coding, ContactPoint, Count, DatePeriod, Extension, HumanName,
    Identifier, Meta, Quantity, Reference, instant,
};

/// Any resource the API answers, tagged with its `resourceType`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "resourceType")]
pub enum Resource {
    Patient(Patient),
    Practitioner(Practitioner),
    PractitionerRole(PractitionerRole),
    Organization(Organization),
    Location(Location),
    Schedule(Schedule),
    Slot(Slot),
    Appointment(Appointment),
    MedicationRequest(MedicationRequest),
    AllergyIntolerance(AllergyIntolerance),
    Condition(Condition),
    Observation(Observation),
    AuditEvent(AuditEvent),
    Bundle(Bundle),
    CapabilityStatement(CapabilityStatement),
    OperationOutcome(OperationOutcome),
}

impl Resource {
    /// The resource's `id`, for a Bundle entry's `fullUrl` (none for the documents that have
    /// no identity of their own).
    pub fn id(&self) -> Option<&str> {
        match self {
            Resource::Patient(it) => Some(&it.id),
            Resource::Practitioner(it) => Some(&it.id),
            Resource::PractitionerRole(it) => Some(&it.id),
            Resource::Organization(it) => Some(&it.id),
            Resource::Location(it) => Some(&it.id),
            Resource::Schedule(it) => Some(&it.id),
            Resource::Slot(it) => Some(&it.id),
            Resource::Appointment(it) => Some(&it.id),
            Resource::MedicationRequest(it) => Some(&it.id),
            Resource::AllergyIntolerance(it) => Some(&it.id),
            Resource::Condition(it) => Some(&it.id),
            Resource::Observation(it) => Some(&it.id),
            Resource::AuditEvent(it) => Some(&it.id),
            Resource::Bundle(_)
            | Resource::CapabilityStatement(_)
            | Resource::OperationOutcome(_) => None,
        }
    }

    /// The `resourceType`.
    pub fn resource_type(&self) -> &'static str {
        match self {
            Resource::Patient(_) => "Patient",
            Resource::Practitioner(_) => "Practitioner",
            Resource::PractitionerRole(_) => "PractitionerRole",
            Resource::Organization(_) => "Organization",
            Resource::Location(_) => "Location",
            Resource::Schedule(_) => "Schedule",
            Resource::Slot(_) => "Slot",
            Resource::Appointment(_) => "Appointment",
            Resource::MedicationRequest(_) => "MedicationRequest",
            Resource::AllergyIntolerance(_) => "AllergyIntolerance",
            Resource::Condition(_) => "Condition",
            Resource::Observation(_) => "Observation",
            Resource::AuditEvent(_) => "AuditEvent",
            Resource::Bundle(_) => "Bundle",
            Resource::CapabilityStatement(_) => "CapabilityStatement",
            Resource::OperationOutcome(_) => "OperationOutcome",
        }
    }
}

macro_rules! into_resource {
    ($($name:ident),*) => {
        $(impl From<$name> for Resource {
            fn from(resource: $name) -> Self {
                Resource::$name(resource)
            }
        })*
    };
}

into_resource!(
    Patient,
    Practitioner,
    PractitionerRole,
    Organization,
    Location,
    Schedule,
    Slot,
    Appointment,
    MedicationRequest,
    AllergyIntolerance,
    Condition,
    Observation,
    AuditEvent,
    Bundle,
    CapabilityStatement,
    OperationOutcome
);

/// A patient: who they are and how to reach them. Nothing clinical.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub id: String,
    pub active: bool,
    pub name: Vec<HumanName>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    /// `male`, `female`, `other` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<Address>,
}

/// A doctor or a nurse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    pub id: String,
    pub active: bool,
    pub name: Vec<HumanName>,
}

/// What a practitioner does where: a doctor's specialty in their department, a nurse's
/// nursing in theirs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerRole {
    pub id: String,
    pub active: bool,
    pub practitioner: Reference,
    pub organization: Reference,
    pub code: Vec<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub specialty: Vec<CodeableConcept>,
}

/// The clinic, or one of its departments (`partOf` the clinic).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub active: bool,
    #[serde(rename = "type")]
    pub kind: Vec<CodeableConcept>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_of: Option<Reference>,
}

/// A room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub id: String,
    /// `active`.
    pub status: &'static str,
    pub name: String,
    /// `instance`: one room, not a kind of room.
    pub mode: &'static str,
    pub physical_type: CodeableConcept,
    pub managing_organization: Reference,
}

/// A doctor's calendar: the container of their slots.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub id: String,
    pub active: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub specialty: Vec<CodeableConcept>,
    pub actor: Vec<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A bookable time of a schedule: `free` or `busy`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub id: String,
    pub schedule: Reference,
    pub status: &'static str,
    #[serde(serialize_with = "instant")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "instant")]
    pub end: DateTime<Utc>,
}

/// Someone taking part in an appointment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    #[serde(rename = "type", skip_serializing_if = "Vec::is_empty")]
    pub kind: Vec<CodeableConcept>,
    pub actor: Reference,
    /// `required`.
    pub required: &'static str,
    /// `accepted`, `tentative`, `needs-action` or `declined`.
    pub status: &'static str,
}

/// A visit, or (from `$find`) a proposed one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelation_reason: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub specialty: Vec<CodeableConcept>,
    #[serde(serialize_with = "instant")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "instant")]
    pub end: DateTime<Utc>,
    pub minutes_duration: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slot: Vec<Reference>,
    #[serde(
        serialize_with = "crate::types::optional_instant",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<DateTime<Utc>>,
    pub participant: Vec<Participant>,
}

/// How a medication is taken.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dosage {
    pub sequence: i64,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_instruction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<CodeableConcept>,
}

/// What may be dispensed, how often, until when.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DispenseRequest {
    pub validity_period: DatePeriod,
    pub number_of_repeats_allowed: i64,
    pub quantity: Count,
}

/// One item of a prescription.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationRequest {
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The prescription the item belongs to.
    pub group_identifier: Identifier,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<CodeableConcept>,
    /// `order`.
    pub intent: &'static str,
    pub medication_codeable_concept: CodeableConcept,
    pub subject: Reference,
    #[serde(serialize_with = "instant")]
    pub authored_on: DateTime<Utc>,
    pub requester: Reference,
    pub dosage_instruction: Vec<Dosage>,
    pub dispense_request: DispenseRequest,
}

/// What a reaction to a substance looks like.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub manifestation: Vec<CodeableConcept>,
    /// `mild`, `moderate` or `severe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<&'static str>,
}

/// An allergy: clinician-recorded ones `confirmed`, patient-reported ones `unconfirmed`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllergyIntolerance {
    pub id: String,
    pub clinical_status: CodeableConcept,
    pub verification_status: CodeableConcept,
    /// `low`, `high` or `unable-to-assess`.
    pub criticality: &'static str,
    pub code: CodeableConcept,
    pub patient: Reference,
    #[serde(
        serialize_with = "crate::types::optional_instant",
        skip_serializing_if = "Option::is_none"
    )]
    pub recorded_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorder: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asserter: Option<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reaction: Vec<Reaction>,
}

/// A diagnosis, coded in ICD-10.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub id: String,
    pub clinical_status: CodeableConcept,
    pub verification_status: CodeableConcept,
    pub category: Vec<CodeableConcept>,
    pub code: CodeableConcept,
    pub subject: Reference,
    #[serde(serialize_with = "instant")]
    pub recorded_date: DateTime<Utc>,
    pub recorder: Reference,
}

/// One part of a panel (blood pressure's systolic and diastolic).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub code: CodeableConcept,
    pub value_quantity: Quantity,
}

/// A vital sign, per the FHIR vital-signs profile.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub id: String,
    pub meta: Meta,
    /// `final`.
    pub status: &'static str,
    pub category: Vec<CodeableConcept>,
    pub code: CodeableConcept,
    pub subject: Reference,
    #[serde(serialize_with = "instant")]
    pub effective_date_time: DateTime<Utc>,
    #[serde(serialize_with = "instant")]
    pub issued: DateTime<Utc>,
    pub performer: Vec<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub component: Vec<Component>,
}

/// Who did it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditAgent {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<CodeableConcept>,
    pub who: Reference,
    pub requestor: bool,
}

/// What recorded it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditSource {
    pub observer: Reference,
}

/// What it was done to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntity {
    pub what: Reference,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Coding>,
}

/// One row of a record's access log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Coding,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subtype: Vec<Coding>,
    /// `C`, `R`, `U`, `D` or `E`.
    pub action: &'static str,
    #[serde(serialize_with = "instant")]
    pub recorded: DateTime<Utc>,
    /// `0` success, `4` refused.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_desc: Option<String>,
    pub agent: Vec<AuditAgent>,
    pub source: AuditSource,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entity: Vec<AuditEntity>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_written_with_its_resource_type_first_class() {
        let resource = Resource::from(Practitioner {
            id: "abc".into(),
            active: true,
            name: vec![HumanName::official("Ada", "Lovelace")],
        });
        let json = serde_json::to_value(&resource).unwrap();
        assert_eq!(json["resourceType"], "Practitioner");
        assert_eq!(json["id"], "abc");
        assert_eq!(json["name"][0]["family"], "Lovelace");
        assert_eq!(resource.id(), Some("abc"));
    }
}
