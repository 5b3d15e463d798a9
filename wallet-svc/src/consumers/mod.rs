//! The events wallet-svc consumes, one module per event (each a durable pull
//! consumer that svc-kit runs; see `crate::service`).

pub mod code_redeemed;
pub mod reversal_requested;
