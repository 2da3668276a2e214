//! A payment's lifecycle, modelled on Stripe's PaymentIntent with manual capture.
//!
//! ```text
//! requires_payment_method --confirm(card ok)--> requires_capture --capture--> succeeded --refund--> (partly) refunded
//!          |                 \--confirm(declined)--> requires_payment_method (attempt recorded)
//!          \--cancel--> canceled            requires_capture --cancel / 7 days--> canceled
//! ```
//!
//! A visit booked further ahead than an authorisation lives is paid in two steps: the card
//! is saved at booking (`card_saved`, a SetupIntent for off-session use) and authorised
//! off-session shortly before the visit (`requires_capture`, then as above). A refused
//! off-session authorisation takes the payment back to `requires_payment_method`: the
//! patient gives another card before a deadline, or the payment is canceled.
//!
//! Transitions only move forward: an event that arrives late (a webhook for an earlier state)
//! cannot move a payment backwards; it is recognised as already applied.

use chrono::{DateTime, Duration, Utc};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Created; waiting for the patient's card.
    RequiresPaymentMethod,
    /// The card is saved for the visit (booked beyond the authorisation's lifetime); it is
    /// authorised off-session shortly before the visit.
    CardSaved,
    /// The card is authorised for the amount; nothing is charged yet.
    RequiresCapture,
    /// Captured: the money is taken (perhaps less than authorised).
    Succeeded,
    /// Voided before capture, or the authorisation expired.
    Canceled,
}

impl PaymentStatus {
    /// Stripe's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::RequiresPaymentMethod => "requires_payment_method",
            PaymentStatus::CardSaved => "card_saved",
            PaymentStatus::RequiresCapture => "requires_capture",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            PaymentStatus::RequiresPaymentMethod,
            PaymentStatus::CardSaved,
            PaymentStatus::RequiresCapture,
            PaymentStatus::Succeeded,
            PaymentStatus::Canceled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    fn rank(self) -> u8 {
        match self {
            PaymentStatus::RequiresPaymentMethod => 0,
            PaymentStatus::CardSaved => 1,
            PaymentStatus::RequiresCapture => 2,
            PaymentStatus::Succeeded | PaymentStatus::Canceled => 3,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 3
    }
}

/// A status equals its stored name.
impl PartialEq<&str> for PaymentStatus {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// How long an uncaptured authorisation lives (Stripe cancels it after seven days).
pub fn authorization_lifetime() -> Duration {
    Duration::days(7)
}

/// Stripe's test cards that the simulated provider knows, and what each does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCard {
    /// Authorised and saved, on-session and off.
    Succeeds,
    /// Declined on every attempt, so it cannot be saved either.
    Declined,
    /// Authorised with the cardholder present (they authenticate), but every off-session
    /// authorisation asks for authentication again (`authentication_required`).
    AuthenticationRequired,
    /// Saved without trouble, declined whenever it is charged (an off-session decline).
    ChargeCustomerFail,
}

/// What a test card does in one situation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardOutcome {
    Approved,
    Declined,
    AuthenticationRequired,
}

impl TestCard {
    /// A test payment method or card number: `pm_card_visa` / `4242 4242 4242 4242`
    /// succeed, `pm_card_chargeDeclined` / `4000 0000 0000 0002` are declined,
    /// `pm_card_authenticationRequired` / `4000 0027 6000 3184` ask for authentication
    /// off-session, `pm_card_chargeCustomerFail` / `4000 0000 0000 0341` save but are
    /// declined when charged.
    pub fn parse(method: &str) -> Option<Self> {
        let compact: String = method
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        match compact.as_str() {
            "pm_card_visa" | "pm_card_mastercard" | "4242424242424242" | "5555555555554444" => {
                Some(TestCard::Succeeds)
            }
            "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" | "4000000000000002" => {
                Some(TestCard::Declined)
            }
            "pm_card_authenticationRequired" | "4000002760003184" => {
                Some(TestCard::AuthenticationRequired)
            }
            "pm_card_chargeCustomerFail" | "4000000000000341" => Some(TestCard::ChargeCustomerFail),
            _ => None,
        }
    }

    /// Confirming a payment with the cardholder present.
    pub fn on_session(self) -> CardOutcome {
        match self {
            TestCard::Succeeds | TestCard::AuthenticationRequired => CardOutcome::Approved,
            TestCard::Declined | TestCard::ChargeCustomerFail => CardOutcome::Declined,
        }
    }

    /// Saving the card for later (a SetupIntent).
    pub fn setup(self) -> CardOutcome {
        match self {
            TestCard::Declined => CardOutcome::Declined,
            _ => CardOutcome::Approved,
        }
    }

    /// Authorising the saved card without the cardholder.
    pub fn off_session(self) -> CardOutcome {
        match self {
            TestCard::Succeeds => CardOutcome::Approved,
            TestCard::AuthenticationRequired => CardOutcome::AuthenticationRequired,
            TestCard::Declined | TestCard::ChargeCustomerFail => CardOutcome::Declined,
        }
    }
}

/// Why a payment operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment is {0} and cannot do that")]
    WrongState(&'static str),
    #[error("the amount must be between 1 and {max} minor units")]
    BadAmount { max: i64 },
    #[error("the card was declined")]
    Declined,
    #[error("that is not a test card this provider knows")]
    UnknownCard,
}

/// A payment's money and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub status: PaymentStatus,
    /// Authorised (then the most that can be captured).
    pub amount: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub authorized_at: Option<DateTime<Utc>>,
}

impl Intent {
    pub fn new(amount: i64) -> Self {
        Self {
            status: PaymentStatus::RequiresPaymentMethod,
            amount,
            amount_captured: 0,
            amount_refunded: 0,
            authorized_at: None,
        }
    }

    /// The card is tried: authorised for the whole amount, or declined (the intent stays
    /// open for another card).
    pub fn confirm(&mut self, card: TestCard, now: DateTime<Utc>) -> Result<(), PaymentError> {
        if self.status != PaymentStatus::RequiresPaymentMethod {
            return Err(PaymentError::WrongState(self.status.as_str()));
        }
        match card.on_session() {
            CardOutcome::Approved => {
                self.status = PaymentStatus::RequiresCapture;
                self.authorized_at = Some(now);
                Ok(())
            }
            CardOutcome::Declined | CardOutcome::AuthenticationRequired => {
                Err(PaymentError::Declined)
            }
        }
    }

    /// Takes `amount` (default: all of it) of the authorisation.
    pub fn capture(&mut self, amount: Option<i64>) -> Result<i64, PaymentError> {
        if self.status != PaymentStatus::RequiresCapture {
            return Err(PaymentError::WrongState(self.status.as_str()));
        }
        let amount = amount.unwrap_or(self.amount);
        if !(1..=self.amount).contains(&amount) {
            return Err(PaymentError::BadAmount { max: self.amount });
        }
        self.amount_captured = amount;
        self.status = PaymentStatus::Succeeded;
        Ok(amount)
    }

    /// Voids the payment before capture.
    pub fn cancel(&mut self) -> Result<(), PaymentError> {
        match self.status {
            PaymentStatus::RequiresPaymentMethod
            | PaymentStatus::CardSaved
            | PaymentStatus::RequiresCapture => {
                self.status = PaymentStatus::Canceled;
                Ok(())
            }
            other => Err(PaymentError::WrongState(other.as_str())),
        }
    }

    /// Gives back `amount` (default: all that is left) of a captured payment.
    pub fn refund(&mut self, amount: Option<i64>) -> Result<i64, PaymentError> {
        if self.status != PaymentStatus::Succeeded {
            return Err(PaymentError::WrongState(self.status.as_str()));
        }
        let left = self.amount_captured - self.amount_refunded;
        let amount = amount.unwrap_or(left);
        if !(1..=left).contains(&amount) {
            return Err(PaymentError::BadAmount { max: left });
        }
        self.amount_refunded += amount;
        Ok(amount)
    }

    /// Whether the authorisation has lapsed at `now`: the provider would have canceled it.
    pub fn authorization_expired(&self, now: DateTime<Utc>) -> bool {
        self.status == PaymentStatus::RequiresCapture
            && self
                .authorized_at
                .is_some_and(|at| now >= at + authorization_lifetime())
    }

    /// Applies a status reported by the provider (a webhook or a reconciliation read) if it
    /// is ahead of ours; returns whether anything changed. A late report of an earlier
    /// state changes nothing.
    pub fn observe(&mut self, reported: PaymentStatus) -> bool {
        if reported.rank() > self.status.rank() {
            self.status = reported;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_good_card_authorises_and_a_capture_takes_the_money() {
        let mut intent = Intent::new(6000);
        intent
            .confirm(TestCard::parse("pm_card_visa").unwrap(), now())
            .unwrap();
        assert_eq!(intent.status, PaymentStatus::RequiresCapture);
        assert_eq!(intent.capture(Some(4000)).unwrap(), 4000, "partial capture");
        assert_eq!(intent.status, PaymentStatus::Succeeded);
        assert_eq!(
            intent.refund(None).unwrap(),
            4000,
            "a refund gives back what was taken"
        );
        assert_eq!(
            intent.refund(Some(1)),
            Err(PaymentError::BadAmount { max: 0 })
        );
    }

    #[test]
    fn a_declined_card_leaves_the_payment_open_for_another() {
        let mut intent = Intent::new(6000);
        let declined = TestCard::parse("4000 0000 0000 0002").unwrap();
        assert_eq!(intent.confirm(declined, now()), Err(PaymentError::Declined));
        assert_eq!(intent.status, PaymentStatus::RequiresPaymentMethod);
        intent
            .confirm(TestCard::parse("4242-4242-4242-4242").unwrap(), now())
            .unwrap();
        assert!(TestCard::parse("1234").is_none());
    }

    #[test]
    fn only_uncaptured_payments_are_voided_and_only_captured_ones_refunded() {
        let mut open = Intent::new(100);
        assert!(matches!(
            open.capture(None),
            Err(PaymentError::WrongState(_))
        ));
        assert!(matches!(
            open.refund(None),
            Err(PaymentError::WrongState(_))
        ));
        open.confirm(TestCard::Succeeds, now()).unwrap();
        assert_eq!(
            open.capture(Some(101)),
            Err(PaymentError::BadAmount { max: 100 })
        );
        open.cancel().unwrap();
        assert_eq!(open.status, PaymentStatus::Canceled);
        assert!(matches!(
            open.cancel(),
            Err(PaymentError::WrongState("canceled"))
        ));
    }

    #[test]
    fn each_test_card_behaves_as_stripes_does_on_session_in_setup_and_off_session() {
        use CardOutcome::*;
        let behaviour = |name: &str| {
            let card = TestCard::parse(name).unwrap();
            (card.on_session(), card.setup(), card.off_session())
        };
        assert_eq!(behaviour("pm_card_visa"), (Approved, Approved, Approved));
        assert_eq!(
            behaviour("pm_card_chargeDeclined"),
            (Declined, Declined, Declined)
        );
        assert_eq!(
            behaviour("pm_card_authenticationRequired"),
            (Approved, Approved, AuthenticationRequired)
        );
        assert_eq!(
            behaviour("4000 0000 0000 0341"),
            (Declined, Approved, Declined),
            "saved, then declined when charged"
        );
    }

    #[test]
    fn an_authorisation_lapses_after_seven_days() {
        let mut intent = Intent::new(100);
        intent.confirm(TestCard::Succeeds, now()).unwrap();
        assert!(!intent.authorization_expired(now() + Duration::days(7) - Duration::seconds(1)));
        assert!(intent.authorization_expired(now() + Duration::days(7)));
    }

    #[test]
    fn a_late_report_of_an_earlier_state_does_not_move_the_payment_backwards() {
        let mut intent = Intent::new(100);
        assert!(intent.observe(PaymentStatus::RequiresCapture));
        assert!(intent.observe(PaymentStatus::Succeeded));
        assert!(
            !intent.observe(PaymentStatus::RequiresCapture),
            "late authorisation webhook"
        );
        assert!(
            !intent.observe(PaymentStatus::Canceled),
            "a final state stays final"
        );
        assert_eq!(intent.status, PaymentStatus::Succeeded);
        for status in [
            "requires_payment_method",
            "card_saved",
            "requires_capture",
            "succeeded",
            "canceled",
        ] {
            assert_eq!(PaymentStatus::parse(status).unwrap().as_str(), status);
        }
    }
}
