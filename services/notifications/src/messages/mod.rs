//! What each event tells whom: the message catalogue, and rendering it from the templates in
//! `templates/` (a subject and a plain-text part in `<name>.txt`, an HTML part in
//! `<name>.html`, which is escaped). Templates are compiled into the binary; an unknown
//! variable is an error, so the tests that render every template catch a broken one.

mod catalogue;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

pub use catalogue::{Invitation, Outgoing, Recipient, Role, plan};

/// The templates: each name's `.txt` and `.html` file, compiled in, and the list of names,
/// from one list so that neither can miss one.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        /// Every template, by name.
        pub const TEMPLATES: &[&str] = &[$($name),*];

        const SOURCES: &[(&str, &str)] = &[$(
            (concat!($name, ".txt"), include_str!(concat!("../../templates/", $name, ".txt"))),
            (concat!($name, ".html"), include_str!(concat!("../../templates/", $name, ".html"))),
        )*];
    };
}

templates!(
    "welcome",
    "appointment_paid",
    "appointment_card_saved",
    "payment_action_required",
    "appointment_scheduled_patient",
    "appointment_scheduled_doctor",
    "appointment_scheduled_nurse",
    "appointment_rejected",
    "appointment_cancelled_patient",
    "appointment_cancelled_doctor",
    "appointment_cancelled_nurse",
    "appointment_rescheduled_patient",
    "appointment_rescheduled_doctor",
    "appointment_rescheduled_nurse",
    "appointment_reminder",
    "appointment_completed",
    "waitlist_offer",
    "waitlist_claimed",
    "waitlist_offer_closed",
    "prescription_issued",
    "prescription_cancelled",
    "refill_requested",
    "refill_approved",
    "refill_declined",
);

const LAYOUT: &str = include_str!("../../templates/_layout.html");

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The variables templates read. Every template gets all of them; those an event does not
/// know are empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    pub clinic: String,
    pub sign_in_url: String,
    pub timezone: String,
    pub recipient_name: String,
    /// `PATIENT`, `DOCTOR`, `NURSE` or `ADMIN`.
    pub role: String,
    pub patient_name: String,
    pub doctor_name: String,
    pub nurse_name: String,
    pub room_name: String,
    /// Local date and time in the clinic's timezone: `Monday 4 January 2027`, `09:00`.
    pub date: String,
    pub time: String,
    pub previous_date: String,
    pub previous_time: String,
    pub reason: String,
    /// `60.00 EUR`.
    pub amount: String,
    /// What happened to the money of a cancelled appointment: `refund`, `void` or `none`.
    pub money: String,
    /// Where the message asks the recipient to go (a page of the web app).
    pub action_url: String,
    /// The local time by which to act: `14:35`, or with the date when it is another day.
    pub deadline: String,
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// Why a message could not be rendered (a bug in a template, caught by the tests).
#[derive(Debug, thiserror::Error)]
#[error("rendering template {template}: {source}")]
pub struct RenderError {
    template: String,
    source: minijinja::Error,
}

impl Templates {
    pub fn load() -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let add = |env: &mut Environment<'static>, name: &'static str, source: &'static str| {
            env.add_template(name, source)
                .map_err(|source| RenderError {
                    template: name.to_owned(),
                    source,
                })
        };
        add(&mut env, "_layout.html", LAYOUT)?;
        for (name, source) in SOURCES {
            add(&mut env, name, source)?;
        }
        Ok(Self { env })
    }

    /// Renders `template` with `context`.
    pub fn render(&self, template: &str, context: &Context) -> Result<Rendered, RenderError> {
        let failed = |name: &str| {
            let name = name.to_owned();
            move |source| RenderError {
                template: name,
                source,
            }
        };
        let text_name = format!("{template}.txt");
        let html_name = format!("{template}.html");
        let text_template = self
            .env
            .get_template(&text_name)
            .map_err(failed(&text_name))?;
        let mut captured = text_template
            .render_captured(context)
            .map_err(failed(&text_name))?;
        let (subject, text) = captured
            .with_state_mut(|state| {
                Ok((state.render_block("subject")?, state.render_block("text")?))
            })
            .map_err(failed(&text_name))?;
        let html = self
            .env
            .get_template(&html_name)
            .and_then(|html| html.render(context))
            .map_err(failed(&html_name))?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: text.trim().to_owned() + "\n",
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_context() -> Context {
        Context {
            clinic: "Polyclinic".into(),
            sign_in_url: "https://clinic.example".into(),
            timezone: "Europe/Berlin".into(),
            recipient_name: "Ada Lovelace".into(),
            role: "PATIENT".into(),
            patient_name: "Ada Lovelace".into(),
            doctor_name: "Dr Grace Hopper".into(),
            nurse_name: "Florence Nightingale".into(),
            room_name: "Room 1 <east>".into(),
            date: "Monday 4 January 2027".into(),
            time: "09:00".into(),
            previous_date: "Friday 1 January 2027".into(),
            previous_time: "10:00".into(),
            reason: "the doctor is ill".into(),
            amount: "60.00 EUR".into(),
            money: "refund".into(),
            action_url: "https://clinic.example/appointments/1/claim".into(),
            deadline: "14:35".into(),
        }
    }

    #[test]
    fn every_template_renders_a_subject_a_text_and_an_html_part() {
        let templates = Templates::load().unwrap();
        for name in TEMPLATES {
            let rendered = templates.render(name, &full_context()).unwrap();
            assert!(!rendered.subject.is_empty(), "{name}: subject");
            assert!(!rendered.subject.contains('\n'), "{name}: one-line subject");
            assert!(
                rendered.text.contains("Ada Lovelace"),
                "{name}: text greets the recipient"
            );
            assert!(
                rendered.html.contains("<p>Dear Ada Lovelace,</p>"),
                "{name}: html"
            );
            assert!(
                !rendered.text.contains("{{") && !rendered.html.contains("{%"),
                "{name}"
            );
        }
    }

    #[test]
    fn every_template_file_is_in_the_list() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.strip_suffix(".txt").map(str::to_owned))
            .collect();
        files.sort();
        let mut listed: Vec<String> = TEMPLATES.iter().map(|name| (*name).to_owned()).collect();
        listed.sort();
        assert_eq!(files, listed);
    }

    #[test]
    fn a_template_naming_an_unknown_variable_fails_to_render() {
        let mut templates = Templates::load().unwrap();
        templates
            .env
            .add_template(
                "broken.txt",
                "{% block subject %}{{ nope }}{% endblock %}{% block text %}{% endblock %}",
            )
            .unwrap();
        templates.env.add_template("broken.html", "").unwrap();
        assert!(templates.render("broken", &full_context()).is_err());
    }

    #[test]
    fn the_html_part_escapes_what_people_typed_and_the_text_part_keeps_it() {
        let templates = Templates::load().unwrap();
        let rendered = templates
            .render("appointment_scheduled_patient", &full_context())
            .unwrap();
        assert!(rendered.html.contains("Room 1 &lt;east&gt;"));
        assert!(rendered.text.contains("Room 1 <east>"));
    }

    #[test]
    fn the_prescription_email_names_no_clinical_detail() {
        let templates = Templates::load().unwrap();
        let rendered = templates
            .render("prescription_issued", &full_context())
            .unwrap();
        for part in [&rendered.subject, &rendered.text, &rendered.html] {
            assert!(part.contains("Dr Grace Hopper") || part == &rendered.subject);
            assert!(
                !part.contains("the doctor is ill"),
                "no reason, no diagnosis"
            );
        }
        assert!(rendered.text.contains("sign in to read it"));
    }

    #[test]
    fn an_approval_says_whether_the_card_was_charged_or_will_be() {
        let templates = Templates::load().unwrap();
        let mut context = full_context();
        context.deadline = String::new();
        let now = templates
            .render("appointment_scheduled_patient", &context)
            .unwrap();
        assert!(now.text.contains("60.00 EUR has been charged to your card"));
        context.deadline = "09:00 on Monday 4 January".into();
        let later = templates
            .render("appointment_scheduled_patient", &context)
            .unwrap();
        assert!(
            later
                .text
                .contains("will be charged to your saved card on 09:00 on Monday 4 January"),
            "{}",
            later.text
        );
    }

    #[test]
    fn a_cancellation_says_what_happens_to_the_money() {
        let templates = Templates::load().unwrap();
        let mut context = full_context();
        for (money, says) in [
            ("refund", "is being refunded"),
            ("void", "authorisation on your card has been released"),
            ("none", "You have not been charged."),
        ] {
            context.money = money.into();
            let rendered = templates
                .render("appointment_cancelled_patient", &context)
                .unwrap();
            assert!(rendered.text.contains(says), "{money}: {}", rendered.text);
        }
    }
}
