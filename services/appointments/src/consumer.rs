//! The `appointments-payments` consumer: what the payments service's events mean for
//! appointments. An authorised card makes a pending appointment PAID; an authorisation that
//! lapsed before approval cancels it.

use std::time::Duration;

use polyclinic_config::Config;
use polyclinic_contracts::Event;
use polyclinic_contracts::Topic;
use polyclinic_contracts::payments::{PaymentAuthorizedV1, PaymentExpiredV1};
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
    let mut settings = ConsumerSettings::new(CONSUMER, &[Topic::Payments.as_str()]);
    settings.max_attempts = i32::try_from(config.events.max_attempts).unwrap_or(5);
    settings.retry_base = Duration::from_millis(config.events.retry_base_ms.into());
    let handlers = Handlers::new()
        .on(PaymentAuthorizedV1::TYPE, |conn, envelope, _: &()| {
            Box::pin(async move {
                let event: PaymentAuthorizedV1 = envelope.data_as()?;
                mark_paid(
                    conn,
                    event.payment.appointment_id.into(),
                    event.payment.payment_id.into(),
                    &context(envelope),
                )
                .await
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
