//! The `appointments-payments` consumer: what the payments service's events mean for
//! appointments. An authorised card (or a card saved for a visit booked far ahead) makes a
//! pending appointment PAID; a payment that can no longer be taken (a lapsed authorisation,
//! no other card after a refusal) cancels it.

use polyclinic_config::Config;
use polyclinic_contracts::Event;
use polyclinic_contracts::Topic;
use polyclinic_contracts::payments::{PaymentAuthorizedV1, PaymentCardSavedV1, PaymentExpiredV1};
use polyclinic_events::{Backbone, Consumer, ConsumerSettings, Envelope, EventContext, Handlers};
use sqlx::PgPool;

use crate::booking::{cancel_lapsed, mark_paid};

/// The consumer's name in inboxes, positions and dead letters.
pub const CONSUMER: &str = "appointments-payments";

fn context(envelope: &Envelope) -> EventContext {
    EventContext {
        correlation_id: envelope.correlationid.clone(),
        trace: envelope.trace(),
    }
}

pub fn payment_events(config: &Config, pool: &PgPool, backbone: &Backbone) -> Consumer<()> {
    let settings = ConsumerSettings::from_config(config, CONSUMER, &[Topic::Payments.as_str()]);
    let handlers = Handlers::new()
        .on(PaymentAuthorizedV1::TYPE, |conn, envelope, _: &()| {
            Box::pin(async move {
                let event: PaymentAuthorizedV1 = envelope.data_as()?;
                let ids = (
                    event.payment.appointment_id.into(),
                    event.payment.payment_id.into(),
                );
                mark_paid(conn, ids, None, &context(envelope)).await
            })
        })
        .on(PaymentCardSavedV1::TYPE, |conn, envelope, _: &()| {
            Box::pin(async move {
                let event: PaymentCardSavedV1 = envelope.data_as()?;
                let ids = (
                    event.payment.appointment_id.into(),
                    event.payment.payment_id.into(),
                );
                mark_paid(conn, ids, Some(event.authorize_at), &context(envelope)).await
            })
        })
        .on(PaymentExpiredV1::TYPE, |conn, envelope, _: &()| {
            Box::pin(async move {
                let event: PaymentExpiredV1 = envelope.data_as()?;
                cancel_lapsed(
                    conn,
                    event.payment.appointment_id.into(),
                    &context(envelope),
                )
                .await
            })
        });
    Consumer::new(
        backbone.bus(),
        pool.clone(),
        settings,
        handlers,
        (),
        backbone.metrics().clone(),
    )
}
