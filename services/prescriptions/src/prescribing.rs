//! The prescribing flows: a doctor prescribes for the patient of one of their appointments
//! (with the allergy check), ends a prescription; the patient asks for a refill and the
//! prescribing doctor decides. Each flow owns its transaction: the change, its row in the
//! audit trail and the event announcing it commit together. A refused attempt is audited
//! on its own, and answers as if the thing did not exist.

use chrono::{Duration, NaiveDate, Utc};
use polyclinic_contracts::prescriptions::{
    PrescriptionCancelledV1, PrescriptionIssuedV1, RefillApprovedV1, RefillDeclinedV1, RefillRef,
    RefillRequestedV1,
};
use polyclinic_events::{EventContext, outbox};
use uuid::Uuid;

use crate::AppState;
use crate::access::{CareTeamUnavailable, Level, Viewer, allowed};
use crate::domain::prescription::{
    Item, OverrideReason, RequiredReason, Status, allergy_conflicts, validate_items,
};
use crate::repo::audit::{self, Outcome};
use crate::repo::prescriptions::{self, NewPrescription, PrescriptionRow, RefillRow};
use crate::repo::records;

/// Why a prescribing flow was refused.
#[derive(Debug, thiserror::Error)]
pub enum PrescribingError {
    /// Fields that break the rules: `(field, what it must be)`.
    #[error("invalid fields")]
    Invalid(Vec<(String, String)>),
    /// Not one of the doctor's scheduled or completed appointments.
    #[error("appointment_id: not a scheduled or completed appointment of yours")]
    UnknownAppointment,
    #[error("no such prescription of yours")]
    PrescriptionNotFound,
    #[error("no such refill request for you")]
    RefillNotFound,
    /// The patient is allergic to these, and no override reason was given.
    #[error(
        "the patient is allergic to {}; confirm with allergy_override_reason",
        .0.join(", ")
    )]
    AllergyConflict(Vec<String>),
    #[error("the prescription is {0}")]
    PrescriptionState(Status),
    #[error("only an active, valid prescription with refills left can be refilled")]
    NoRefillPossible,
    #[error("a refill of this prescription is already waiting")]
    RefillPending,
    /// The refill is decided already (or, for an approval, none is left).
    #[error("the refill is {0}")]
    RefillState(String),
    #[error(transparent)]
    CareTeam(#[from] CareTeamUnavailable),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for PrescribingError {
    fn from(err: sqlx::Error) -> Self {
        PrescribingError::Unexpected(err.into())
    }
}

/// What a doctor prescribes.
#[derive(Debug)]
pub struct Prescribe<'a> {
    pub appointment_id: Uuid,
    pub items: &'a [Item],
    /// Default: 30 days from today.
    pub valid_until: Option<NaiveDate>,
    /// Default: 0.
    pub refills_allowed: Option<i16>,
    pub allergy_override_reason: Option<&'a str>,
}

fn context(viewer: &Viewer<'_>) -> EventContext {
    EventContext {
        correlation_id: Some(viewer.request_id.to_owned()),
        trace: viewer.call.trace.to_owned(),
    }
}

fn refill_ref(refill: &RefillRow) -> RefillRef {
    RefillRef {
        refill_id: refill.id,
        prescription_id: refill.prescription_id,
        patient_id: refill.patient_id,
        doctor_id: refill.doctor_id,
    }
}

/// Writes a prescription for the patient of one of the doctor's appointments.
pub async fn prescribe(
    state: &AppState,
    viewer: &Viewer<'_>,
    request: Prescribe<'_>,
) -> Result<PrescriptionRow, PrescribingError> {
    let mut errors = validate_items(request.items).err().unwrap_or_default();
    let today = Utc::now().date_naive();
    let valid_until = request.valid_until.unwrap_or(today + Duration::days(30));
    if valid_until < today || valid_until > today + Duration::days(366) {
        errors.push(("valid_until".into(), "today to a year from now".into()));
    }
    let refills = request.refills_allowed.unwrap_or(0);
    if !(0..=12).contains(&refills) {
        errors.push(("refills_allowed".into(), "0 to 12".into()));
    }
    let override_reason = request
        .allergy_override_reason
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if let Some(Err(message)) = request.allergy_override_reason.map(OverrideReason::check) {
        errors.push(("allergy_override_reason".into(), message));
    }
    if !errors.is_empty() {
        return Err(PrescribingError::Invalid(errors));
    }
    let appointment = state
        .care
        .appointment(request.appointment_id, viewer.call)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "the appointments service could not be asked");
            CareTeamUnavailable
        })?
        .filter(|a| viewer.is_doctor(a.doctor_id) && a.makes_carers());
    let Some(appointment) = appointment else {
        state
            .audit(viewer, "prescription.write", None, None, Outcome::Denied)
            .await?;
        return Err(PrescribingError::UnknownAppointment);
    };
    let patient_id = appointment.patient_id;
    let mut tx = state.pool.begin().await?;
    let record_id = records::ensure_record(&mut tx, patient_id).await?;
    let conflicts = allergy_conflicts(
        request.items,
        &records::allergies(&mut tx, record_id).await?,
    );
    if !conflicts.is_empty() && override_reason.is_none() {
        return Err(PrescribingError::AllergyConflict(conflicts));
    }
    let prescription = prescriptions::insert(
        &mut tx,
        &NewPrescription {
            record_id,
            patient_id,
            doctor_id: viewer.id,
            appointment_id: appointment.id,
            issued_on: today,
            valid_until,
            refills_allowed: refills,
            allergy_override_reason: if conflicts.is_empty() {
                None
            } else {
                override_reason
            },
            items: request.items,
        },
    )
    .await?;
    audit::append(
        &mut tx,
        &allowed(
            viewer,
            "prescription.write",
            patient_id,
            Some(record_id),
            Some(prescription.id),
        ),
    )
    .await?;
    let issued = PrescriptionIssuedV1 {
        prescription_id: prescription.id,
        patient_id,
        doctor_id: viewer.id,
        issued_at: prescription.created_at,
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &issued, &context(viewer)).await?;
    tx.commit().await?;
    Ok(prescription)
}

/// The prescriptions a patient has, or a doctor wrote; none for anyone else. Newest first.
pub async fn mine(
    state: &AppState,
    viewer: &Viewer<'_>,
) -> Result<Vec<PrescriptionRow>, PrescribingError> {
    use crate::access::Acting;
    let (patient, doctor) = match viewer.acting {
        Acting::Patient => (Some(viewer.id), None),
        Acting::Doctor => (None, Some(viewer.id)),
        Acting::Nurse | Acting::Admin => return Ok(Vec::new()),
    };
    state
        .audit(viewer, "prescription.list", patient, None, Outcome::Allowed)
        .await?;
    Ok(prescriptions::list(&state.pool, patient, doctor, 200).await?)
}

/// Part of the prescriptions `viewer` may list, in id order from `from` on: `patient`'s
/// (the patient themself, or their care team; anyone else is refused and audited), or
/// without a patient the viewer's own (a patient's, or those a doctor wrote). Audited as a
/// list of the patient's prescriptions.
pub async fn page(
    state: &AppState,
    viewer: &Viewer<'_>,
    patient: Option<Uuid>,
    status: Option<Status>,
    from: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PrescriptionRow>, PrescribingError> {
    use crate::access::Acting;
    let (patient, doctor) = match (patient, viewer.acting) {
        (Some(patient), _) => {
            let may =
                viewer.is_patient(patient) || state.level(viewer, patient).await? != Level::None;
            if !may {
                state
                    .audit(
                        viewer,
                        "prescription.list",
                        Some(patient),
                        None,
                        Outcome::Denied,
                    )
                    .await?;
                return Err(PrescribingError::PrescriptionNotFound);
            }
            (Some(patient), None)
        }
        (None, Acting::Patient) => (Some(viewer.id), None),
        (None, Acting::Doctor) => (None, Some(viewer.id)),
        (None, Acting::Nurse | Acting::Admin) => return Ok(Vec::new()),
    };
    state
        .audit(viewer, "prescription.list", patient, None, Outcome::Allowed)
        .await?;
    Ok(prescriptions::page(&state.pool, patient, doctor, status, from, limit).await?)
}

/// Loads a prescription for `viewer`: its patient, its doctor, or the patient's care team
/// may read it; anyone else is told it does not exist, and a denied row is audited.
async fn visible(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
    action: &str,
) -> Result<PrescriptionRow, PrescribingError> {
    let found = prescriptions::find(&state.pool, id).await?;
    let may = match &found {
        None => false,
        Some(p) if viewer.is_patient(p.patient_id) || viewer.is_doctor(p.doctor_id) => true,
        Some(p) => state.level(viewer, p.patient_id).await? != Level::None,
    };
    match found {
        Some(prescription) if may => Ok(prescription),
        found => {
            state
                .audit(
                    viewer,
                    action,
                    found.map(|p| p.patient_id),
                    Some(id),
                    Outcome::Denied,
                )
                .await?;
            Err(PrescribingError::PrescriptionNotFound)
        }
    }
}

/// One prescription, read by its patient, its doctor or the patient's care team.
pub async fn read(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
) -> Result<PrescriptionRow, PrescribingError> {
    let prescription = visible(state, viewer, id, "prescription.read").await?;
    state
        .audit(
            viewer,
            "prescription.read",
            Some(prescription.patient_id),
            Some(id),
            Outcome::Allowed,
        )
        .await?;
    Ok(prescription)
}

/// Ends an active prescription of the doctor's (cancelled or stopped), with a reason.
pub async fn end(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
    reason: &str,
    status: Status,
) -> Result<PrescriptionRow, PrescribingError> {
    let found = prescriptions::find(&state.pool, id).await?;
    let Some(current) = found.filter(|p| viewer.is_doctor(p.doctor_id)) else {
        state
            .audit(
                viewer,
                "prescription.write",
                None,
                Some(id),
                Outcome::Denied,
            )
            .await?;
        return Err(PrescribingError::PrescriptionNotFound);
    };
    if let Err(message) = RequiredReason::check(reason) {
        return Err(PrescribingError::Invalid(vec![("reason".into(), message)]));
    }
    let reason = reason.trim();
    let mut tx = state.pool.begin().await?;
    let Some(mut ended) = prescriptions::end(&mut tx, id, status, reason).await? else {
        return Err(PrescribingError::PrescriptionState(current.status));
    };
    audit::append(
        &mut tx,
        &allowed(
            viewer,
            "prescription.write",
            current.patient_id,
            Some(current.record_id),
            Some(id),
        ),
    )
    .await?;
    let event = PrescriptionCancelledV1 {
        prescription_id: id,
        patient_id: current.patient_id,
        doctor_id: viewer.id,
        status: status.as_str().to_owned(),
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &event, &context(viewer)).await?;
    tx.commit().await?;
    ended.items = current.items;
    Ok(ended)
}

/// Asks the prescribing doctor for a refill of the patient's active prescription with
/// refills left; one waiting request at a time.
pub async fn request_refill(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
) -> Result<RefillRow, PrescribingError> {
    let found = prescriptions::find(&state.pool, id).await?;
    let Some(prescription) = found.filter(|p| viewer.is_patient(p.patient_id)) else {
        state
            .audit(viewer, "refill.request", None, Some(id), Outcome::Denied)
            .await?;
        return Err(PrescribingError::PrescriptionNotFound);
    };
    if prescription.status != Status::Active
        || prescription.refills_left == 0
        || prescription.valid_until < Utc::now().date_naive()
    {
        return Err(PrescribingError::NoRefillPossible);
    }
    let mut tx = state.pool.begin().await?;
    let Some(refill) = prescriptions::request_refill(&mut tx, id).await? else {
        return Err(PrescribingError::RefillPending);
    };
    audit::append(
        &mut tx,
        &allowed(
            viewer,
            "refill.request",
            prescription.patient_id,
            Some(prescription.record_id),
            Some(refill.id),
        ),
    )
    .await?;
    let requested = RefillRequestedV1 {
        refill: refill_ref(&refill),
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &requested, &context(viewer)).await?;
    tx.commit().await?;
    Ok(refill)
}

/// The doctor's waiting refill requests, oldest first.
pub async fn refill_queue(
    state: &AppState,
    viewer: &Viewer<'_>,
) -> Result<Vec<RefillRow>, PrescribingError> {
    state
        .audit(viewer, "refill.list", None, None, Outcome::Allowed)
        .await?;
    Ok(prescriptions::queue(&state.pool, viewer.id).await?)
}

/// The refill, if `viewer` prescribed it.
async fn own_refill(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
) -> Result<RefillRow, PrescribingError> {
    let mut conn = state.pool.acquire().await?;
    match prescriptions::find_refill(&mut conn, id).await? {
        Some(refill) if viewer.is_doctor(refill.doctor_id) => Ok(refill),
        _ => {
            drop(conn);
            state
                .audit(viewer, "refill.decide", None, Some(id), Outcome::Denied)
                .await?;
            Err(PrescribingError::RefillNotFound)
        }
    }
}

/// Approves a waiting refill (the prescribing doctor): one refill fewer left.
pub async fn approve_refill(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
) -> Result<RefillRow, PrescribingError> {
    let waiting = own_refill(state, viewer, id).await?;
    let mut tx = state.pool.begin().await?;
    let Some((refill, left)) = prescriptions::approve_refill(&mut tx, id).await? else {
        return Err(PrescribingError::RefillState(format!(
            "{}, or none is left",
            waiting.status
        )));
    };
    audit::append(
        &mut tx,
        &allowed(viewer, "refill.decide", refill.patient_id, None, Some(id)),
    )
    .await?;
    let event = RefillApprovedV1 {
        refill: refill_ref(&refill),
        refills_left: left,
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &event, &context(viewer)).await?;
    tx.commit().await?;
    Ok(refill)
}

/// Declines a waiting refill (the prescribing doctor), with a reason.
pub async fn decline_refill(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
    reason: &str,
) -> Result<RefillRow, PrescribingError> {
    if let Err(message) = RequiredReason::check(reason) {
        return Err(PrescribingError::Invalid(vec![("reason".into(), message)]));
    }
    let reason = reason.trim();
    let waiting = own_refill(state, viewer, id).await?;
    let mut tx = state.pool.begin().await?;
    let Some(refill) = prescriptions::decline_refill(&mut tx, id, reason).await? else {
        return Err(PrescribingError::RefillState(waiting.status));
    };
    audit::append(
        &mut tx,
        &allowed(viewer, "refill.decide", refill.patient_id, None, Some(id)),
    )
    .await?;
    let event = RefillDeclinedV1 {
        refill: refill_ref(&refill),
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &event, &context(viewer)).await?;
    tx.commit().await?;
    Ok(refill)
}
