//! The `notifications-mail` consumer: for each event of the catalogue, the people to tell are
//! looked up, their messages rendered and written as PENDING notifications in the consumer's
//! transaction (one per event, recipient and template), and the sender is woken at commit.
//! People who do not exist or are deactivated are skipped, not retried.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use polyclinic_config::Config;
use polyclinic_contracts::Topic;
use polyclinic_events::{Backbone, Consumer, ConsumerSettings, Envelope, Handled, Handlers};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::calendar::{self, Party, Visit};
use crate::directory::{Directory, Person};
use crate::messages::{Context, Outgoing, Role, Templates, plan};
use crate::repo::notifications::{self, NewNotification};

/// The consumer's name in inboxes, positions and dead letters.
pub const CONSUMER: &str = "notifications-mail";

/// What writing messages needs.
#[derive(Debug)]
pub struct Mail {
    pub directory: Directory,
    pub templates: Templates,
    pub zone: Tz,
    pub clinic: String,
    pub sign_in_url: String,
    /// Who organises the visits, as calendar parts name it: the clinic and its address.
    pub organizer: Party,
    /// The domain calendar events' `UID`s end in.
    pub uid_domain: String,
}

/// `6000, "EUR"` as `60.00 EUR`.
pub fn format_money(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let amount = amount.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", amount / 100, amount % 100)
}

impl Mail {
    fn local(&self, instant: Option<DateTime<Utc>>) -> (String, String) {
        instant
            .map(|at| {
                let local = at.with_timezone(&self.zone);
                (
                    local.format("%A %-d %B %Y").to_string(),
                    local.format("%H:%M").to_string(),
                )
            })
            .unwrap_or_default()
    }

    /// `deadline` in local time: the time alone when it is today, with its date otherwise.
    fn deadline(&self, deadline: Option<DateTime<Utc>>) -> String {
        let Some(deadline) = deadline else {
            return String::new();
        };
        let local = deadline.with_timezone(&self.zone);
        if local.date_naive() == Utc::now().with_timezone(&self.zone).date_naive() {
            local.format("%H:%M today").to_string()
        } else {
            local.format("%H:%M on %A %-d %B").to_string()
        }
    }

    /// Writes the messages `envelope` calls for.
    pub async fn handle(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> anyhow::Result<Handled> {
        let Some(outgoing) = plan(envelope)? else {
            return Ok(Handled::Skipped(
                "nobody is told about this event".to_owned(),
            ));
        };
        let request_id = envelope.correlationid.as_deref();
        let mut people: HashMap<Uuid, Option<Person>> = HashMap::new();
        let mut ids: Vec<Uuid> = outgoing.recipients.iter().map(|r| r.user_id).collect();
        ids.extend(
            [outgoing.patient_id, outgoing.doctor_id, outgoing.nurse_id]
                .into_iter()
                .flatten(),
        );
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let person = self.directory.person(id, request_id).await?;
            people.insert(id, person);
        }
        let room_name = match outgoing.room_id {
            Some(room) => self.directory.room_name(room, request_id).await?,
            None => None,
        };
        let location = match &outgoing.invitation {
            Some(_) => {
                let doctor = outgoing
                    .doctor_id
                    .and_then(|id| people.get(&id).cloned().flatten());
                self.directory
                    .location(doctor.as_ref(), outgoing.room_id, request_id)
                    .await?
            }
            None => String::new(),
        };
        let name_of = |id: Option<Uuid>, fallback: &str| {
            id.and_then(|id| people.get(&id).cloned().flatten())
                .map(|person| person.display_name())
                .unwrap_or_else(|| fallback.to_owned())
        };
        let (date, time) = self.local(outgoing.starts_at);
        let (previous_date, previous_time) = self.local(outgoing.previous_starts_at);
        let base = Context {
            clinic: self.clinic.clone(),
            sign_in_url: self.sign_in_url.clone(),
            timezone: self.zone.name().to_owned(),
            patient_name: name_of(outgoing.patient_id, "the patient"),
            doctor_name: name_of(outgoing.doctor_id, "your doctor"),
            nurse_name: name_of(outgoing.nurse_id, "the nurse"),
            room_name: room_name.unwrap_or_else(|| "to be announced".to_owned()),
            date,
            time,
            previous_date,
            previous_time,
            reason: outgoing.reason.clone().unwrap_or_default(),
            amount: outgoing
                .amount
                .as_ref()
                .map(|(amount, currency)| format_money(*amount, currency))
                .unwrap_or_default(),
            money: outgoing.money.unwrap_or("none").to_owned(),
            action_url: outgoing
                .action_path
                .as_deref()
                .map(|path| format!("{}{path}", self.sign_in_url.trim_end_matches('/')))
                .unwrap_or_else(|| self.sign_in_url.clone()),
            deadline: self.deadline(outgoing.deadline),
            ..Context::default()
        };
        self.write(conn, envelope, &outgoing, &people, base, &location)
            .await
    }

    /// The calendar part of `recipient`'s message about the appointment, if it has one.
    fn invite(
        &self,
        envelope: &Envelope,
        outgoing: &Outgoing,
        recipient: (&Person, Role),
        base: &Context,
        location: &str,
    ) -> Option<(calendar::Method, String)> {
        let invitation = outgoing.invitation.as_ref()?;
        let starts_at = outgoing.starts_at?;
        let (person, role) = recipient;
        let summary = match role {
            Role::Patient => format!("Appointment with {}", base.doctor_name),
            _ => format!("Appointment with {}", base.patient_name),
        };
        let visit = Visit {
            appointment_id: invitation.appointment_id,
            revision: invitation.revision,
            stamp: envelope.time,
            starts_at,
            ends_at: invitation.ends_at,
            location: location.to_owned(),
            standing: invitation.standing,
            summary,
            url: format!(
                "{}/appointments/{}",
                self.sign_in_url.trim_end_matches('/'),
                invitation.appointment_id
            ),
        };
        let attendee = Party {
            name: format!("{} {}", person.first_name, person.last_name),
            email: person.email.clone(),
        };
        let text = calendar::invite(
            &visit,
            invitation.method,
            &self.uid_domain,
            &self.organizer,
            &attendee,
        );
        Some((invitation.method, text))
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
        outgoing: &Outgoing,
        people: &HashMap<Uuid, Option<Person>>,
        base: Context,
        location: &str,
    ) -> anyhow::Result<Handled> {
        let mut written = 0;
        let mut skipped = Vec::new();
        for recipient in &outgoing.recipients {
            let person = match people.get(&recipient.user_id).cloned().flatten() {
                Some(person) if person.is_active() => person,
                Some(_) => {
                    skipped.push(format!("{} is deactivated", recipient.user_id));
                    continue;
                }
                None => {
                    skipped.push(format!("{} does not exist", recipient.user_id));
                    continue;
                }
            };
            let context = Context {
                recipient_name: format!("{} {}", person.first_name, person.last_name),
                role: person.role.clone(),
                ..base.clone()
            };
            let rendered = self.templates.render(recipient.template, &context)?;
            let invite = self.invite(
                envelope,
                outgoing,
                (&person, recipient.role),
                &base,
                location,
            );
            notifications::insert(
                conn,
                &NewNotification {
                    event_id: envelope.id,
                    event_type: &envelope.event_type,
                    recipient_id: person.id,
                    recipient_email: &person.email,
                    template: recipient.template,
                    rendered: &rendered,
                    calendar: invite
                        .as_ref()
                        .map(|(method, text)| (*method, text.as_str())),
                },
            )
            .await?;
            written += 1;
        }
        if written == 0 {
            return Ok(Handled::Skipped(format!(
                "no one to tell: {}",
                skipped.join(", ")
            )));
        }
        notifications::wake_sender(conn).await?;
        Ok(Handled::Done)
    }
}

pub fn consumer(
    config: &Config,
    pool: &PgPool,
    backbone: &Backbone,
    mail: Arc<Mail>,
) -> Consumer<Arc<Mail>> {
    let topics: Vec<&str> = Topic::ALL.iter().map(|topic| topic.as_str()).collect();
    let settings = ConsumerSettings::from_config(config, CONSUMER, &topics);
    let handlers = Handlers::new()
        .otherwise(|conn, envelope, mail: &Arc<Mail>| Box::pin(mail.handle(conn, envelope)));
    Consumer::new(
        backbone.bus(),
        pool.clone(),
        settings,
        handlers,
        mail,
        backbone.metrics().clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::format_money;

    #[test]
    fn money_is_shown_in_major_units_with_its_currency() {
        assert_eq!(format_money(6000, "EUR"), "60.00 EUR");
        assert_eq!(format_money(5, "USD"), "0.05 USD");
        assert_eq!(format_money(-1250, "EUR"), "-12.50 EUR");
    }
}
