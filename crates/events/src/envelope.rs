//! The CloudEvents 1.0 envelope every event travels in.

use chrono::{DateTime, Utc};
use polyclinic_config::Service;
use polyclinic_contracts::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use polyclinic_telemetry::{TraceContext, TraceHeaders};

/// Where an event came from, beyond its data: the request that caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// Ties an HTTP request to everything it caused (the request id).
    pub correlation_id: Option<String>,
    /// The W3C trace context (and baggage) of the request.
    pub trace: TraceContext,
}

/// A CloudEvents 1.0 event in its JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub specversion: String,
    /// UUIDv7: unique, and sortable by time.
    pub id: Uuid,
    /// `/polyclinic/<service>`.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The aggregate the event is about; also the bus key.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub data: Value,
    /// The CloudEvents distributed-tracing extension: the W3C trace context of the span
    /// that wrote the event...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// ...and the W3C baggage of its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baggage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
}

/// The trace context an envelope (as stored JSON) carries.
pub(crate) fn trace_headers_of(envelope: &Value) -> TraceHeaders<'_> {
    TraceHeaders {
        traceparent: envelope["traceparent"].as_str(),
        tracestate: envelope["tracestate"].as_str(),
        baggage: envelope["baggage"].as_str(),
    }
}

impl Envelope {
    /// Wraps `event`, produced by `source`, in a new envelope.
    pub fn new<E: Event>(
        source: Service,
        event: &E,
        context: &EventContext,
    ) -> serde_json::Result<Self> {
        // A child of the span that writes it when spans are exported (the request, or the
        // consumer of the event that caused it); otherwise the caller's trace, passed on.
        let trace = TraceContext::current().unwrap_or_else(|| context.trace.clone());
        Ok(Self {
            specversion: "1.0".to_owned(),
            id: Uuid::now_v7(),
            source: format!("/polyclinic/{source}"),
            event_type: E::TYPE.to_owned(),
            subject: event.subject(),
            time: Utc::now(),
            datacontenttype: "application/json".to_owned(),
            data: serde_json::to_value(event)?,
            traceparent: trace.traceparent,
            tracestate: trace.tracestate,
            baggage: trace.baggage,
            correlationid: context.correlation_id.clone(),
        })
    }

    /// The trace context this envelope carries, for the events its handler causes.
    pub fn trace(&self) -> TraceContext {
        TraceContext {
            traceparent: self.traceparent.clone(),
            tracestate: self.tracestate.clone(),
            baggage: self.baggage.clone(),
        }
    }

    /// The payload as `E`, checking that the envelope carries that type.
    pub fn data_as<E: Event>(&self) -> anyhow::Result<E> {
        anyhow::ensure!(
            self.event_type == E::TYPE,
            "expected a {} event, got {}",
            E::TYPE,
            self.event_type
        );
        Ok(serde_json::from_value(self.data.clone())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyclinic_contracts::identity::UserRegisteredV1;

    #[test]
    fn an_envelope_is_cloudevents_json_with_our_extensions() {
        let event = UserRegisteredV1 {
            user_id: Uuid::now_v7(),
            role: "PATIENT".into(),
            registered_at: Utc::now(),
        };
        let context = EventContext {
            correlation_id: Some("req-1".into()),
            trace: TraceContext {
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                tracestate: None,
                baggage: Some("clinic=north".into()),
            },
        };
        let envelope = Envelope::new(Service::Identity, &event, &context).unwrap();
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "polyclinic.identity.user.registered.v1");
        assert_eq!(json["source"], "/polyclinic/identity");
        assert_eq!(json["subject"], event.user_id.to_string());
        assert_eq!(json["correlationid"], "req-1");
        assert_eq!(
            json["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracing is off in this test: the caller's context is passed on"
        );
        assert_eq!(json["baggage"], "clinic=north");
        assert_eq!(json.get("tracestate"), None);
        assert_eq!(
            json["data"]["role"], "PATIENT",
            "data is an object, not a string encoded twice"
        );
        assert_eq!(envelope.id.get_version_num(), 7);
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back.data_as::<UserRegisteredV1>().unwrap(), event);
        assert_eq!(back.trace(), context.trace);
    }
}
