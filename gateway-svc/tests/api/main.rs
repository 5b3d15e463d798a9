//! End-to-end tests: nats-server and the three service binaries as real
//! processes, driven only over HTTP (and NATS to watch the events).

mod helpers;

mod admin;
mod amnesia;
mod browser;
mod console;
mod docs;
mod permissions;
mod race;
mod reconcile;
mod redeem;
mod reversal;
mod upgrade;
