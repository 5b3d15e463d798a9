//! giftcode-svc's integration tests: the real service, a real nats-server, real
//! SQLite files and a real PostgreSQL, driven only over NATS (and, where a test
//! says so, through the database or a killed process).

mod helpers;

mod groups;
mod outbox;
mod races;
mod redeem;
mod secrecy;
mod validation;
