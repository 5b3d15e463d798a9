//! The wire contract of the platform (DESIGN.md §6, §9): subject and stream names,
//! the event envelope and event payloads, the request/reply messages of the NATS
//! services tied to their subjects ([`endpoint`]), error codes, and the value
//! types every service agrees on.
//!
//! This crate does no I/O. Everything here is plain data with serde, so that a
//! service and its clients (and tests) cannot disagree about a name or a shape.

pub mod endpoint;
pub mod envelope;
pub mod error;
pub mod events;
pub mod giftcode;
pub mod ids;
pub mod reconciliation;
pub mod subjects;
pub mod values;
pub mod wallet;

pub use endpoint::Endpoint;
pub use envelope::{Envelope, Event};
pub use error::{ErrorCode, FieldError, ServiceError};
pub use ids::{CodeId, GroupId, RedemptionId, TransactionId};
pub use values::{Amount, Currency, IdempotencyKey, Limit, Page, Phone, PhoneError, Region};
