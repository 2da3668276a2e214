//! The `payments-settlement` consumer: an appointment that ended without a visit (expired,
//! rejected, cancelled, an offer that closed) gets its payment voided, or refunded once
//! captured. The
//! appointments service only announces; this consumer makes sure the money follows, however
//! late the event arrives and however often it is delivered. A moved appointment moves when
//! its saved card is authorised.

use std::sync::Arc;

use polyclinic_config::Config;
use polyclinic_contracts::appointments::{
    AppointmentCancelledV1, AppointmentExpiredV1, AppointmentOfferExpiredV1, AppointmentRejectedV1,
    AppointmentRescheduledV1,
};
use polyclinic_contracts::{Event, Topic};
use polyclinic_events::{
    Backbone, Consumer, ConsumerSettings, Envelope, EventContext, Handled, HandlerFuture, Handlers,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::ledger::Ledger;

/// The consumer's name in inboxes, positions and dead letters.
pub const CONSUMER: &str = "payments-settlement";

async fn settle(
    envelope: &Envelope,
    appointment_id: Uuid,
    ledger: &Ledger,
) -> anyhow::Result<Handled> {
    let context = EventContext {
        correlation_id: envelope.correlationid.clone(),
        trace: envelope.trace(),
    };
    let actor = format!("event:{}", envelope.event_type);
    match ledger
        .settle(appointment_id.into(), &actor, &context)
        .await?
    {
        Some(_) => Ok(Handled::Done),
        None => Ok(Handled::Skipped(
            "the appointment has no payment".to_owned(),
        )),
    }
}

fn handler<E: Event + 'static>(
    appointment_id: fn(&E) -> Uuid,
) -> impl for<'a> Fn(&'a mut PgConnection, &'a Envelope, &'a Arc<Ledger>) -> HandlerFuture<'a>
+ Send
+ Sync
+ 'static {
    move |_conn, envelope, ledger| {
        Box::pin(async move {
            let appointment = appointment_id(&envelope.data_as::<E>()?);
            settle(envelope, appointment, ledger).await
        })
    }
}

pub fn consumer(
    config: &Config,
    pool: &PgPool,
    backbone: &Backbone,
    ledger: Arc<Ledger>,
) -> Consumer<Arc<Ledger>> {
    let settings = ConsumerSettings::from_config(config, CONSUMER, &[Topic::Appointments.as_str()]);
    let handlers = Handlers::new()
        .on(
            AppointmentExpiredV1::TYPE,
            handler(|event: &AppointmentExpiredV1| event.appointment.appointment_id),
        )
        .on(
            AppointmentRejectedV1::TYPE,
            handler(|event: &AppointmentRejectedV1| event.appointment.appointment_id),
        )
        .on(
            AppointmentCancelledV1::TYPE,
            handler(|event: &AppointmentCancelledV1| event.appointment.appointment_id),
        )
        // A claim makes its payment before it commits: an offer that closed meanwhile leaves
        // one to void.
        .on(
            AppointmentOfferExpiredV1::TYPE,
            handler(|event: &AppointmentOfferExpiredV1| event.appointment.appointment_id),
        )
        .on(
            AppointmentRescheduledV1::TYPE,
            |_conn, envelope, ledger: &Arc<Ledger>| {
                Box::pin(async move {
                    let event: AppointmentRescheduledV1 = envelope.data_as()?;
                    let moved = ledger
                        .move_visit(
                            event.appointment.appointment_id.into(),
                            event.appointment.starts_at,
                        )
                        .await?;
                    Ok(match moved {
                        Some(_) => Handled::Done,
                        None => Handled::Skipped("the appointment has no payment".to_owned()),
                    })
                })
            },
        );
    Consumer::new(
        backbone.bus(),
        pool.clone(),
        settings,
        handlers,
        ledger,
        backbone.metrics().clone(),
    )
}
