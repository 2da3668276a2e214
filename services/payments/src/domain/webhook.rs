//! Verifying Stripe's `Stripe-Signature` header on a webhook's raw body.
//!
//! The header is `t=<unix seconds>,v1=<hex>,v1=<hex>,...`; each `v1` is HMAC-SHA256 of
//! `"<t>.<raw body>"` with an endpoint secret. A body is genuine when one `v1` matches one of
//! our secrets (several during a rotation) and `t` is within the tolerance of now.

use chrono::{DateTime, Utc};
use ring::hmac;

/// Stripe's default tolerance for the signature's timestamp.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `header` against `body` with any of `secrets` at `now`.
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                signatures.push(hex_decode(value).ok_or(SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now.timestamp() - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let genuine = secrets.iter().any(|secret| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        // ring compares in constant time.
        signatures
            .iter()
            .any(|signature| hmac::verify(&key, &signed, signature).is_ok())
    });
    if genuine {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header Stripe would send for `body` signed with `secret` at `timestamp` (tests, and
/// the simulated provider's own webhooks).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        &signed,
    );
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.amount_capturable_updated"}"#;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn secrets() -> Vec<String> {
        vec!["whsec_old".into(), "whsec_new".into()]
    }

    #[test]
    fn a_body_signed_with_a_current_secret_passes() {
        let header = sign(BODY, "whsec_new", now().timestamp() - 10);
        assert_eq!(verify(&header, BODY, &secrets(), now()), Ok(()));
        let old = sign(BODY, "whsec_old", now().timestamp());
        assert_eq!(
            verify(&old, BODY, &secrets(), now()),
            Ok(()),
            "both secrets work during a rotation"
        );
    }

    #[test]
    fn a_wrong_secret_an_altered_body_or_a_stale_timestamp_fail() {
        let wrong = sign(BODY, "whsec_guess", now().timestamp());
        assert_eq!(
            verify(&wrong, BODY, &secrets(), now()),
            Err(SignatureError::Mismatch)
        );
        let header = sign(BODY, "whsec_new", now().timestamp());
        assert_eq!(
            verify(&header, b"{\"id\":\"evt_2\"}", &secrets(), now()),
            Err(SignatureError::Mismatch)
        );
        let stale = sign(BODY, "whsec_new", now().timestamp() - TOLERANCE_SECS - 1);
        assert_eq!(
            verify(&stale, BODY, &secrets(), now()),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_garbage_is_malformed() {
        let good = sign(BODY, "whsec_new", now().timestamp());
        let with_extra = format!("{},v1={},v0=ignored", good, "00".repeat(32));
        assert_eq!(verify(&with_extra, BODY, &secrets(), now()), Ok(()));
        for header in ["", "t=abc,v1=00", "v1=00", "t=1", "t=1,v1=zz"] {
            assert_eq!(
                verify(header, BODY, &secrets(), now()),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }
}
