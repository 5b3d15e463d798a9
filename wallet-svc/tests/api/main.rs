//! wallet-svc's integration tests: the real service (and, for the end-to-end
//! ones, giftcode-svc beside it), a private nats-server, SQLite files and
//! PostgreSQL, driven over NATS; a crash test kills the real binary.

mod helpers;

mod events;
mod ledger;
mod platform;
