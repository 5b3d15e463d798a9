//! Every NATS endpoint of the platform tied to its subject, its request type
//! and its reply type (DESIGN.md §6), in one declarative table per service.
//! The service registers its handlers by these types (svc-kit builds the
//! dispatch from them) and the gateway calls through the same types, so the
//! two sides cannot disagree about what a subject carries.

use serde::{Serialize, de::DeserializeOwned};

/// One endpoint: `<service>.<resource>.<verb>`, what it takes and what it answers.
pub trait Endpoint: Send + Sync + 'static {
    const SUBJECT: &'static str;
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Reply: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Declares one marker type per endpoint and `SUBJECTS`, the list of them all.
macro_rules! endpoints {
    ($( $(#[$doc:meta])* $name:ident = $subject:path : $req:ty => $reply:ty; )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl $crate::Endpoint for $name {
                const SUBJECT: &'static str = $subject;
                type Request = $req;
                type Reply = $reply;
            }
        )*
        /// Every endpoint's subject, in the order of the table.
        pub const SUBJECTS: &[&str] = &[$($subject),*];
    };
}

/// The `giftcode` service.
pub mod giftcode {
    use crate::{
        Page,
        giftcode::*,
        reconciliation::{ItemPage, PageRequest},
        subjects::giftcode as s,
    };

    endpoints! {
        /// A redeem: the reply inbox also gets the credit notice (one enum).
        Redeem = s::REDEEM: RedeemRequest => RedeemInbox;
        /// Replies in frames: group, codes…, end.
        GroupsCreate = s::GROUPS_CREATE: CreateGroupRequest => CreateGroupFrame;
        GroupsList = s::GROUPS_LIST: ListGroupsRequest => Page<Group>;
        GroupsGet = s::GROUPS_GET: GetGroupRequest => Group;
        GroupsUpdate = s::GROUPS_UPDATE: UpdateGroupRequest => Group;
        CodesList = s::CODES_LIST: ListCodesRequest => Page<CodeSummary>;
        CodesLookup = s::CODES_LOOKUP: LookupCodeRequest => CodeDetails;
        RedemptionsList = s::REDEMPTIONS_LIST: ListRedemptionsRequest => Page<Redemption>;
        RedemptionsGet = s::REDEMPTIONS_GET: GetRedemptionRequest => Redemption;
        ReconciliationPage = s::RECONCILIATION_PAGE: PageRequest => ItemPage;
        GroupsTimeline = s::GROUPS_TIMELINE: TimelineRequest => Timeline;
        /// A reversal: the reply inbox also gets wallet-svc's outcome (one enum).
        RedemptionsReverse = s::REDEMPTIONS_REVERSE: ReverseRequest => ReverseInbox;
        CodesUpdate = s::CODES_UPDATE: UpdateCodeRequest => CodeSummary;
    }
}

/// The `wallet` service.
pub mod wallet {
    use crate::{
        Page,
        reconciliation::{ItemPage, PageRequest},
        subjects::wallet as s,
        wallet::*,
    };

    endpoints! {
        WalletsCreate = s::WALLETS_CREATE: PhoneRequest => Wallet;
        WalletsGet = s::WALLETS_GET: PhoneRequest => Wallet;
        WalletsList = s::WALLETS_LIST: ListWalletsRequest => Page<Wallet>;
        TransactionsList = s::TRANSACTIONS_LIST: ListTransactionsRequest => Page<Transaction>;
        CreditsCreate = s::CREDITS_CREATE: MoveRequest => MoveReply;
        DebitsCreate = s::DEBITS_CREATE: MoveRequest => MoveReply;
        FundingGet = s::FUNDING_GET: FundingRequest => Funding;
        LedgerCheckRun = s::LEDGER_CHECK: LedgerCheckRequest => LedgerCheck;
        RedemptionsGet = s::REDEMPTIONS_GET: RedemptionCreditRequest => CreditNotice;
        RedemptionsCredited = s::REDEMPTIONS_CREDITED: CreditsQuery => Credits;
        ReconciliationPage = s::RECONCILIATION_PAGE: PageRequest => ItemPage;
    }
}

#[cfg(test)]
mod tests {
    use crate::subjects;

    #[test]
    fn the_tables_list_every_subject_of_each_service() {
        assert_eq!(super::giftcode::SUBJECTS, subjects::giftcode::ALL);
        assert_eq!(super::wallet::SUBJECTS, subjects::wallet::ALL);
    }
}
