//! The JSON request/reply convention of the services (DESIGN.md §6): reading a
//! request into its type, with a refusal that says which §9 word applies and
//! which field was at fault; error replies (`Nats-Service-Error` headers plus
//! a `{code, message}` body); and reading a reply back, on the caller's side.

use async_nats::{
    HeaderMap, Message, StatusCode,
    service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use shared_events::{ErrorCode, FieldError, ServiceError};

/// Reads a JSON request. A syntax error is `malformed_json`; JSON of the wrong
/// shape is `validation_failed` naming the field, unless the value that was
/// refused has a word of its own (a phone that is not one is `invalid_phone`).
pub fn parse_request<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ServiceError> {
    let payload = if payload.is_empty() {
        b"{}".as_slice()
    } else {
        payload
    };
    // Syntax first, shape second: a struct that denies unknown fields would
    // otherwise report a truncated document as a bad field.
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| ServiceError::new(ErrorCode::MalformedJson, e.to_string()))?;
    decode_value(value)
}

/// Reads a JSON value into `T`, refusing as [`parse_request`] does.
pub fn decode_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ServiceError> {
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value)
        .map_err(|e| refusal(&e.path().to_string(), &e.inner().to_string()))
}

/// JSON has one number type: `500.0` is the integer 500 to JSON Schema (and
/// to the OpenAPI document), so it is read as one. A fraction stays a
/// fraction and is refused where an integer is wanted.
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// The refusal of a value serde rejected at `path` with `message`.
pub fn refusal(path: &str, message: &str) -> ServiceError {
    if let Some((code, rest)) = ErrorCode::in_message(message) {
        return ServiceError::new(code, rest);
    }
    ServiceError {
        message: message.to_owned(),
        ..ServiceError::fields(vec![FieldError::new(&field_name(path, message), message)])
    }
}

/// The field a serde error is about: its path, or for a missing or unknown
/// field (reported at the enclosing object) the name in the message.
fn field_name(path: &str, message: &str) -> String {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((name, _)) = rest.split_once('`')
        {
            return match path {
                "." | "" => name.to_owned(),
                p if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
                p => format!("{p}.{name}"),
            };
        }
    }
    match path {
        // The root, or an array where an object belongs.
        p if p == "." || p.is_empty() || p.starts_with('[') => "body".to_owned(),
        p => p.to_owned(),
    }
}

/// Encodes an error reply: the service API headers plus the JSON body.
pub fn error_reply(err: &ServiceError) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(NATS_SERVICE_ERROR, err.code.as_str());
    headers.insert(
        NATS_SERVICE_ERROR_CODE,
        err.code.status().to_string().as_str(),
    );
    let body = serde_json::to_vec(err).unwrap_or_default();
    (headers, body.into())
}

/// Why a call to a service failed, as seen by the caller.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service answered with an error reply.
    #[error("{0}")]
    Service(ServiceError),
    /// Nobody is listening on the subject (the service is down): the request
    /// reached no one, so nothing was done.
    #[error("no responders on {0}")]
    NoResponders(String),
    #[error("request to {0} timed out")]
    Timeout(String),
    #[error("NATS request failed: {0}")]
    Transport(String),
    #[error("unreadable reply: {0}")]
    BadReply(String),
}

impl CallError {
    /// The error word a caller should surface: the service's own, or
    /// `service_unavailable` when it could not be reached.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Service(e) => e.code,
            Self::NoResponders(_) | Self::Timeout(_) | Self::Transport(_) => {
                ErrorCode::ServiceUnavailable
            }
            Self::BadReply(_) => ErrorCode::Internal,
        }
    }
}

/// Reads one reply message of a request on `subject`: NATS's own "no
/// responders" status is [`CallError::NoResponders`] (the one place that
/// tells it apart), an error reply is [`CallError::Service`].
pub fn decode_reply<T: DeserializeOwned>(subject: &str, msg: &Message) -> Result<T, CallError> {
    if msg.status == Some(StatusCode::NO_RESPONDERS) {
        return Err(CallError::NoResponders(subject.to_owned()));
    }
    let is_error = msg
        .headers
        .as_ref()
        .is_some_and(|h| h.get(NATS_SERVICE_ERROR).is_some());
    if is_error {
        let err: ServiceError = serde_json::from_slice(&msg.payload)
            .map_err(|e| CallError::BadReply(format!("error reply: {e}")))?;
        return Err(CallError::Service(err));
    }
    serde_json::from_slice(&msg.payload).map_err(|e| CallError::BadReply(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use shared_events::{Amount, Phone};

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        phone: Phone,
        amount: Amount,
        kind: Option<String>,
    }

    fn refused(json: &str) -> ServiceError {
        parse_request::<Req>(json.as_bytes()).expect_err("refused")
    }

    #[test]
    fn refusals_name_their_word_and_field() {
        assert_eq!(refused("{\"phone\":").code, ErrorCode::MalformedJson);
        let bad_phone = refused(r#"{"phone": "(415) 555-2671", "amount": 5}"#);
        assert_eq!(bad_phone.code, ErrorCode::InvalidPhone);
        for (json, field) in [
            (r#"{"phone": "+14155552671", "amount": 0}"#, "amount"),
            (r#"{"phone": "+14155552671"}"#, "amount"),
            (
                r#"{"phone": "+14155552671", "amount": 5, "bogus": 1}"#,
                "bogus",
            ),
            (
                r#"{"phone": "+14155552671", "amount": 5, "kind": 7}"#,
                "kind",
            ),
            ("[1, 2]", "body"),
        ] {
            let e = refused(json);
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{json}");
            assert_eq!(e.errors[0].field, field, "{json}");
        }
        let ok: Req = parse_request(br#"{"phone": "+14155552671", "amount": 5}"#).expect("ok");
        assert_eq!(ok.amount.get(), 5);
        // 500.0 is a whole number to JSON Schema; 2.5 is not.
        let ok: Req = parse_request(br#"{"phone": "+14155552671", "amount": 500.0}"#).expect("ok");
        assert_eq!(ok.amount.get(), 500);
        let e = refused(r#"{"phone": "+14155552671", "amount": 2.5}"#);
        assert_eq!(e.errors[0].field, "amount");
    }
}
