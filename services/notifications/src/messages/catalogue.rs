//! The catalogue: which events are told to whom, with which template. Everything else a
//! message says is looked up when it is written (names, rooms) or comes with the event.

use chrono::{DateTime, Utc};
use polyclinic_contracts::Event;
use polyclinic_contracts::appointments::{
    AppointmentCancelledV1, AppointmentClaimedV1, AppointmentCompletedV1,
    AppointmentOfferExpiredV1, AppointmentOfferedV1, AppointmentPaidV1, AppointmentRef,
    AppointmentRejectedV1, AppointmentReminderV1, AppointmentRescheduledV1, AppointmentScheduledV1,
    AppointmentStatus,
};
use polyclinic_contracts::identity::UserRegisteredV1;
use polyclinic_contracts::payments::PaymentActionRequiredV1;
use polyclinic_contracts::prescriptions::{
    PrescriptionCancelledV1, PrescriptionIssuedV1, RefillApprovedV1, RefillDeclinedV1, RefillRef,
    RefillRequestedV1,
};
use polyclinic_events::Envelope;
use uuid::Uuid;

use crate::calendar::{Method, Standing};

/// The part a recipient plays in what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Patient,
    Doctor,
    Nurse,
    /// The account holder (welcome).
    Account,
}

/// One person to tell, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user_id: Uuid,
    pub role: Role,
    pub template: &'static str,
}

/// The calendar part the messages of an event carry: what to ask of the recipients'
/// calendars about which appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub appointment_id: Uuid,
    pub ends_at: DateTime<Utc>,
    pub revision: i32,
    pub method: Method,
    pub standing: Standing,
}

/// Everything an event says that messages use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub recipients: Vec<Recipient>,
    pub patient_id: Option<Uuid>,
    pub doctor_id: Option<Uuid>,
    pub nurse_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub starts_at: Option<DateTime<Utc>>,
    pub previous_starts_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// Minor units and currency.
    pub amount: Option<(i64, String)>,
    /// `refund`, `void` or `none`.
    pub money: Option<&'static str>,
    /// Set for the messages about an appointment's time: each carries an iCalendar part.
    pub invitation: Option<Invitation>,
    /// The web app's page the message sends the recipient to (a path).
    pub action_path: Option<String>,
    /// The time by which to act.
    pub deadline: Option<DateTime<Utc>>,
}

/// How an appointment in `status` stands in a calendar: approved visits take place, paid
/// ones wait for the clinic.
fn standing(status: Option<AppointmentStatus>) -> Standing {
    match status {
        Some(AppointmentStatus::Paid) => Standing::Tentative,
        Some(
            AppointmentStatus::Cancelled | AppointmentStatus::Rejected | AppointmentStatus::Expired,
        ) => Standing::Cancelled,
        _ => Standing::Confirmed,
    }
}

/// The invitation of messages about `appointment`'s time.
fn invitation(appointment: &AppointmentRef, method: Method) -> Option<Invitation> {
    Some(Invitation {
        appointment_id: appointment.appointment_id,
        ends_at: appointment.ends_at,
        revision: appointment.revision,
        method,
        standing: match method {
            Method::Cancel => Standing::Cancelled,
            Method::Request => standing(appointment.status),
        },
    })
}

fn appointment(appointment: &AppointmentRef, recipients: &[(Role, &'static str)]) -> Outgoing {
    let id_of = |role: Role| match role {
        Role::Patient => Some(appointment.patient_id),
        Role::Doctor => Some(appointment.doctor_id),
        Role::Nurse => appointment.nurse_id,
        Role::Account => None,
    };
    Outgoing {
        recipients: recipients
            .iter()
            .filter_map(|(role, template)| {
                id_of(*role).map(|user_id| Recipient {
                    user_id,
                    role: *role,
                    template,
                })
            })
            .collect(),
        patient_id: Some(appointment.patient_id),
        doctor_id: Some(appointment.doctor_id),
        nurse_id: appointment.nurse_id,
        room_id: appointment.room_id,
        starts_at: Some(appointment.starts_at),
        amount: Some((appointment.amount, appointment.currency.clone())),
        ..Outgoing::default()
    }
}

/// Why an appointment was cancelled, as its email says it: from who cancelled it, never
/// from what they wrote (that may be clinical, and stays with the appointment).
fn cancelled_because(cancelled_by: &str) -> &'static str {
    match cancelled_by {
        "PATIENT" => "the patient cancelled it",
        "DOCTOR" => "the doctor is not available at that time",
        "SYSTEM" => "the card authorisation ran out before the visit",
        _ => "the clinic cancelled it",
    }
}

/// A refill's news, told to its patient or its doctor. Clinical detail (the medication, the
/// doctor's reason) stays out of emails: the recipient signs in to read it.
fn refill(refill: &RefillRef, role: Role, template: &'static str) -> Outgoing {
    let user_id = match role {
        Role::Doctor => refill.doctor_id,
        _ => refill.patient_id,
    };
    Outgoing {
        recipients: vec![Recipient {
            user_id,
            role,
            template,
        }],
        patient_id: Some(refill.patient_id),
        doctor_id: Some(refill.doctor_id),
        ..Outgoing::default()
    }
}

/// What to send for `envelope`; `None` for events nobody is told about.
pub fn plan(envelope: &Envelope) -> anyhow::Result<Option<Outgoing>> {
    use Role::*;
    let outgoing = match envelope.event_type.as_str() {
        UserRegisteredV1::TYPE => {
            let event: UserRegisteredV1 = envelope.data_as()?;
            Outgoing {
                recipients: vec![Recipient {
                    user_id: event.user_id,
                    role: Account,
                    template: "welcome",
                }],
                ..Outgoing::default()
            }
        }
        AppointmentPaidV1::TYPE => {
            let event: AppointmentPaidV1 = envelope.data_as()?;
            match event.authorize_at {
                // A visit booked far ahead: the card is saved, authorised later.
                Some(authorize_at) => Outgoing {
                    deadline: Some(authorize_at),
                    ..appointment(&event.appointment, &[(Patient, "appointment_card_saved")])
                },
                None => appointment(&event.appointment, &[(Patient, "appointment_paid")]),
            }
        }
        PaymentActionRequiredV1::TYPE => {
            let event: PaymentActionRequiredV1 = envelope.data_as()?;
            Outgoing {
                recipients: vec![Recipient {
                    user_id: event.payment.patient_id,
                    role: Patient,
                    template: "payment_action_required",
                }],
                patient_id: Some(event.payment.patient_id),
                starts_at: event.visit_starts_at,
                amount: Some((event.payment.amount, event.payment.currency.clone())),
                // A code (`card_declined`, `authentication_required`), not free text.
                reason: Some(event.reason.clone()),
                action_path: Some(format!(
                    "/appointments/{}/pay",
                    event.payment.appointment_id
                )),
                deadline: Some(event.deadline),
                ..Outgoing::default()
            }
        }
        AppointmentScheduledV1::TYPE => {
            let event: AppointmentScheduledV1 = envelope.data_as()?;
            Outgoing {
                invitation: invitation(&event.appointment, Method::Request),
                // Taken later, for a visit booked far ahead.
                deadline: event.charge_at,
                ..appointment(
                    &event.appointment,
                    &[
                        (Patient, "appointment_scheduled_patient"),
                        (Doctor, "appointment_scheduled_doctor"),
                        (Nurse, "appointment_scheduled_nurse"),
                    ],
                )
            }
        }
        AppointmentRejectedV1::TYPE => {
            let event: AppointmentRejectedV1 = envelope.data_as()?;
            Outgoing {
                // Only a request moved while it waited had reached a calendar, as tentative.
                invitation: invitation(&event.appointment, Method::Cancel),
                ..appointment(&event.appointment, &[(Patient, "appointment_rejected")])
            }
        }
        AppointmentCancelledV1::TYPE => {
            let event: AppointmentCancelledV1 = envelope.data_as()?;
            // A scheduled appointment's payment was captured; a paid one's only authorised.
            let money = match event.previous_status {
                AppointmentStatus::Scheduled => "refund",
                AppointmentStatus::Paid => "void",
                _ => "none",
            };
            // A hold that was never paid reached no calendar: nothing to remove.
            let announced = matches!(
                event.previous_status,
                AppointmentStatus::Paid | AppointmentStatus::Scheduled
            );
            Outgoing {
                reason: Some(cancelled_because(&event.cancelled_by).to_owned()),
                money: Some(money),
                invitation: announced
                    .then(|| invitation(&event.appointment, Method::Cancel))
                    .flatten(),
                ..appointment(
                    &event.appointment,
                    &[
                        (Patient, "appointment_cancelled_patient"),
                        (Doctor, "appointment_cancelled_doctor"),
                        (Nurse, "appointment_cancelled_nurse"),
                    ],
                )
            }
        }
        AppointmentRescheduledV1::TYPE => {
            let event: AppointmentRescheduledV1 = envelope.data_as()?;
            Outgoing {
                previous_starts_at: Some(event.previous_starts_at),
                invitation: invitation(&event.appointment, Method::Request),
                ..appointment(
                    &event.appointment,
                    &[
                        (Patient, "appointment_rescheduled_patient"),
                        (Doctor, "appointment_rescheduled_doctor"),
                        (Nurse, "appointment_rescheduled_nurse"),
                    ],
                )
            }
        }
        AppointmentReminderV1::TYPE => {
            let event: AppointmentReminderV1 = envelope.data_as()?;
            Outgoing {
                invitation: invitation(&event.appointment, Method::Request),
                ..appointment(&event.appointment, &[(Patient, "appointment_reminder")])
            }
        }
        AppointmentOfferedV1::TYPE => {
            let event: AppointmentOfferedV1 = envelope.data_as()?;
            Outgoing {
                action_path: Some(format!(
                    "/appointments/{}/claim",
                    event.appointment.appointment_id
                )),
                deadline: Some(event.offer_expires_at),
                ..appointment(&event.appointment, &[(Patient, "waitlist_offer")])
            }
        }
        AppointmentClaimedV1::TYPE => {
            let event: AppointmentClaimedV1 = envelope.data_as()?;
            Outgoing {
                action_path: Some(format!(
                    "/appointments/{}/pay",
                    event.appointment.appointment_id
                )),
                deadline: Some(event.hold_expires_at),
                ..appointment(&event.appointment, &[(Patient, "waitlist_claimed")])
            }
        }
        AppointmentOfferExpiredV1::TYPE => {
            let event: AppointmentOfferExpiredV1 = envelope.data_as()?;
            Outgoing {
                // Whether it lapsed, was declined or withdrawn: a code, not free text.
                reason: Some(event.outcome.clone()),
                action_path: Some("/waitlist".to_owned()),
                ..appointment(&event.appointment, &[(Patient, "waitlist_offer_closed")])
            }
        }
        AppointmentCompletedV1::TYPE => {
            let event: AppointmentCompletedV1 = envelope.data_as()?;
            appointment(&event.appointment, &[(Patient, "appointment_completed")])
        }
        PrescriptionIssuedV1::TYPE => {
            let event: PrescriptionIssuedV1 = envelope.data_as()?;
            Outgoing {
                recipients: vec![Recipient {
                    user_id: event.patient_id,
                    role: Patient,
                    template: "prescription_issued",
                }],
                patient_id: Some(event.patient_id),
                doctor_id: Some(event.doctor_id),
                ..Outgoing::default()
            }
        }
        PrescriptionCancelledV1::TYPE => {
            let event: PrescriptionCancelledV1 = envelope.data_as()?;
            Outgoing {
                recipients: vec![Recipient {
                    user_id: event.patient_id,
                    role: Patient,
                    template: "prescription_cancelled",
                }],
                patient_id: Some(event.patient_id),
                doctor_id: Some(event.doctor_id),
                ..Outgoing::default()
            }
        }
        RefillRequestedV1::TYPE => {
            let event: RefillRequestedV1 = envelope.data_as()?;
            refill(&event.refill, Doctor, "refill_requested")
        }
        RefillApprovedV1::TYPE => {
            let event: RefillApprovedV1 = envelope.data_as()?;
            refill(&event.refill, Patient, "refill_approved")
        }
        RefillDeclinedV1::TYPE => {
            let event: RefillDeclinedV1 = envelope.data_as()?;
            refill(&event.refill, Patient, "refill_declined")
        }
        _ => return Ok(None),
    };
    Ok(Some(outgoing))
}
