//! Names on the bus: streams, event subjects, service names, endpoint subjects and
//! the headers the services agree on (DESIGN.md §6).

/// A JetStream stream: its name and the subjects it captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDef {
    pub name: &'static str,
    pub subjects: &'static str,
}

/// Every gift-code event.
pub const GIFTCODE_EVENTS: StreamDef = StreamDef {
    name: GIFTCODE_EVENTS_STREAM,
    subjects: GIFTCODE_EVENTS_SUBJECTS,
};
/// Every wallet event.
pub const WALLET_EVENTS: StreamDef = StreamDef {
    name: WALLET_EVENTS_STREAM,
    subjects: WALLET_EVENTS_SUBJECTS,
};

/// Stream holding every gift-code event (`giftcode.events.>`).
pub const GIFTCODE_EVENTS_STREAM: &str = "GIFTCODE_EVENTS";
/// Subjects captured by [`GIFTCODE_EVENTS_STREAM`].
pub const GIFTCODE_EVENTS_SUBJECTS: &str = "giftcode.events.>";
/// Stream holding every wallet event (`wallet.events.>`).
pub const WALLET_EVENTS_STREAM: &str = "WALLET_EVENTS";
/// Subjects captured by [`WALLET_EVENTS_STREAM`].
pub const WALLET_EVENTS_SUBJECTS: &str = "wallet.events.>";

/// NATS service name of giftcode-svc (`nats micro info giftcode`).
pub const GIFTCODE_SERVICE: &str = "giftcode";
/// NATS service name of wallet-svc (`nats micro info wallet`).
pub const WALLET_SERVICE: &str = "wallet";

/// Header carrying the originating HTTP request id across NATS hops; it becomes
/// the events' `correlation_id`.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// Header on a `code.redeemed` event naming the inbox of the request that
/// caused it (DESIGN.md §7 step 4). wallet-svc publishes a
/// [`crate::wallet::CreditNotice`] there once the credit is committed, so the
/// caller gets its merged answer without polling.
pub const REPLY_INBOX_HEADER: &str = "Platform-Reply-Inbox";

/// The gateway's key-value bucket of console sessions signed out before they
/// expired, shared by its replicas (stream `KV_CONSOLE_SIGNED_OUT`).
pub const CONSOLE_SIGNED_OUT_BUCKET: &str = "CONSOLE_SIGNED_OUT";

/// Endpoint subjects of the `giftcode` service: `<service>.<resource>.<verb>`.
pub mod giftcode {
    pub const REDEEM: &str = "giftcode.redeem";
    pub const GROUPS_CREATE: &str = "giftcode.groups.create";
    pub const GROUPS_LIST: &str = "giftcode.groups.list";
    pub const GROUPS_GET: &str = "giftcode.groups.get";
    pub const GROUPS_UPDATE: &str = "giftcode.groups.update";
    pub const CODES_LIST: &str = "giftcode.codes.list";
    pub const CODES_LOOKUP: &str = "giftcode.codes.lookup";
    pub const REDEMPTIONS_LIST: &str = "giftcode.redemptions.list";
    pub const REDEMPTIONS_GET: &str = "giftcode.redemptions.get";
    /// Recorded redemptions in id order, for reconciliation.
    pub const RECONCILIATION_PAGE: &str = "giftcode.reconciliation.page";
    /// A group's redemptions per minute (the console's chart).
    pub const GROUPS_TIMELINE: &str = "giftcode.groups.timeline";
    /// Reverse a credited redemption (DESIGN.md §12).
    pub const REDEMPTIONS_REVERSE: &str = "giftcode.redemptions.reverse";
    /// Disable or re-enable one code.
    pub const CODES_UPDATE: &str = "giftcode.codes.update";

    /// Every endpoint, for registration and for tests that walk them all.
    pub const ALL: [&str; 13] = [
        REDEEM,
        GROUPS_CREATE,
        GROUPS_LIST,
        GROUPS_GET,
        GROUPS_UPDATE,
        CODES_LIST,
        CODES_LOOKUP,
        REDEMPTIONS_LIST,
        REDEMPTIONS_GET,
        RECONCILIATION_PAGE,
        GROUPS_TIMELINE,
        REDEMPTIONS_REVERSE,
        CODES_UPDATE,
    ];
}

/// Event subjects. Each event type's subject is also on its [`crate::Event`] impl.
pub mod events {
    pub const GROUP_CREATED: &str = "giftcode.events.group.created";
    pub const GROUP_UPDATED: &str = "giftcode.events.group.updated";
    pub const CODE_REDEEMED: &str = "giftcode.events.code.redeemed";
    pub const REVERSAL_REQUESTED: &str = "giftcode.events.redemption.reversal_requested";
    pub const WALLET_CREATED: &str = "wallet.events.wallet.created";
    pub const WALLET_CREDITED: &str = "wallet.events.wallet.credited";
    pub const WALLET_DEBITED: &str = "wallet.events.wallet.debited";
    pub const WALLET_REVERSED: &str = "wallet.events.wallet.reversed";
    pub const WALLET_REVERSAL_REFUSED: &str = "wallet.events.wallet.reversal_refused";
}

/// Endpoint subjects of the `wallet` service: `<service>.<resource>.<verb>`.
pub mod wallet {
    pub const WALLETS_CREATE: &str = "wallet.wallets.create";
    pub const WALLETS_GET: &str = "wallet.wallets.get";
    pub const WALLETS_LIST: &str = "wallet.wallets.list";
    pub const TRANSACTIONS_LIST: &str = "wallet.transactions.list";
    pub const CREDITS_CREATE: &str = "wallet.credits.create";
    pub const DEBITS_CREATE: &str = "wallet.debits.create";
    pub const FUNDING_GET: &str = "wallet.funding.get";
    pub const LEDGER_CHECK: &str = "wallet.ledger.check";
    /// The credit of one gift-code redemption, if it has been made.
    pub const REDEMPTIONS_GET: &str = "wallet.redemptions.get";
    /// Which of some redemptions the ledger has credited.
    pub const REDEMPTIONS_CREDITED: &str = "wallet.redemptions.credited";
    /// Redemption credits in redemption-id order, for reconciliation.
    pub const RECONCILIATION_PAGE: &str = "wallet.reconciliation.page";

    pub const ALL: [&str; 11] = [
        WALLETS_CREATE,
        WALLETS_GET,
        WALLETS_LIST,
        TRANSACTIONS_LIST,
        CREDITS_CREATE,
        DEBITS_CREATE,
        FUNDING_GET,
        LEDGER_CHECK,
        REDEMPTIONS_GET,
        REDEMPTIONS_CREDITED,
        RECONCILIATION_PAGE,
    ];
}
