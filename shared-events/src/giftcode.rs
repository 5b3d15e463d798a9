//! Requests and replies of the `giftcode` NATS service (DESIGN.md §4, §7, §8).
//! Every endpoint takes one JSON request; the reply is JSON, or an error reply
//! carrying a [`crate::ServiceError`]. `giftcode.groups.create` is the one
//! endpoint that replies with several messages ([`CreateGroupFrame`]), because a
//! million codes do not fit in one NATS message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Amount, Currency, Limit, Phone,
    ids::{CodeId, GroupId, RedemptionId, TransactionId},
    wallet::CreditNotice,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// `count` codes, each redeemable once by anyone.
    Unique,
    /// One code, redeemable once per phone by at most `max_redemptions` phones.
    Shared,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unique => "unique",
            Self::Shared => "shared",
        }
    }

    /// The kind of a stored word; `None` for a word this build does not know.
    pub fn parse(word: &str) -> Option<Self> {
        [Self::Unique, Self::Shared]
            .into_iter()
            .find(|k| k.as_str() == word)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    Scheduled,
    Active,
    Expired,
    Inactive,
    Exhausted,
}

/// `giftcode.groups.create`. Which fields apply depends on `kind`: `count`,
/// `prefix` and `per_phone_limit` for unique groups; `max_redemptions` and
/// `code` (custom) or `prefix` (generated) for shared ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// 1–100 characters (surrounding spaces are dropped).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub name: String,
    /// Required (an `Option` here so that a missing kind is reported with
    /// the request's other faults).
    #[cfg_attr(feature = "openapi", schema(value_type = GroupKind, required = true))]
    pub kind: Option<GroupKind>,
    pub amount: Amount,
    /// Unique groups: how many codes, 1–1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub count: Option<i64>,
    /// Shared groups: how many phones may redeem the code, 1–100,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000))]
    pub max_redemptions: Option<i64>,
    /// Shared groups: a custom code, 4–32 of A–Z, 0–9 and `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 32, pattern = "^-*(?:[A-Za-z0-9]-*){4,32}$")
    )]
    pub code: Option<String>,
    /// 1–10 of A–Z and 0–9, put before generated codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9]{1,10}$"))]
    pub prefix: Option<String>,
    /// Unique groups: redemptions a phone may make in the group, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub per_phone_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The statistics of a group (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupStats {
    pub total_codes: i64,
    pub redeemed_codes: i64,
    pub unredeemed_codes: i64,
    pub redemptions: i64,
    pub redeemed_amount: i64,
    pub remaining_amount: i64,
    /// Redemptions reversed (DESIGN.md §12): counted out of `redemptions`
    /// and `redeemed_amount`.
    #[serde(default)]
    pub reversed: i64,
    pub status: GroupStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub amount: Amount,
    pub currency: Currency,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Unique groups: redemptions a phone may make in the group (null: no limit).
    pub per_phone_limit: Option<i64>,
    /// Shared groups: how many phones may redeem the code.
    pub max_redemptions: Option<i64>,
    pub prefix: Option<String>,
    pub stats: GroupStats,
}

/// One message of the multi-message reply to `giftcode.groups.create`: first a
/// `group`, then zero or more `codes` chunks in creation order, then `end` with
/// the number of codes sent. The codes are shown this once and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CreateGroupFrame {
    Group { group: Box<Group> },
    Codes { codes: Vec<String> },
    End { count: u64 },
}

/// `giftcode.groups.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListGroupsRequest {
    #[serde(default)]
    pub limit: Option<Limit>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `giftcode.groups.get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetGroupRequest {
    pub id: GroupId,
}

/// `giftcode.groups.update`: activate or deactivate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    pub id: GroupId,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CodeStatus {
    Unredeemed,
    /// A unique code that was redeemed, or a shared code whose cap is reached.
    Redeemed,
}

/// `giftcode.codes.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCodesRequest {
    pub group_id: GroupId,
    #[serde(default)]
    pub status: Option<CodeStatus>,
    #[serde(default)]
    pub limit: Option<Limit>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A code as listed: never the code itself, only its hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeSummary {
    pub id: CodeId,
    pub hint: String,
    pub status: CodeStatus,
    /// Unique codes: who redeemed it.
    pub redeemed_by: Option<Phone>,
    pub redeemed_at: Option<DateTime<Utc>>,
    /// How many phones redeemed it (0 or 1 for unique codes).
    pub redemptions: i64,
    /// False when this one code is disabled (redeeming it is `code_inactive`).
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// `giftcode.codes.update`: disable or re-enable one code of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCodeRequest {
    pub group_id: GroupId,
    pub code_id: CodeId,
    pub active: bool,
}

/// `giftcode.codes.lookup`: one code's details by the full code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupCodeRequest {
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeDetails {
    #[serde(flatten)]
    pub code: CodeSummary,
    pub group: Group,
}

/// `giftcode.redemptions.list`: who redeemed in a group, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRedemptionsRequest {
    pub group_id: GroupId,
    #[serde(default)]
    pub limit: Option<Limit>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `giftcode.redemptions.get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetRedemptionRequest {
    pub id: RedemptionId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RedemptionStatus {
    /// Recorded; the wallet credit is not confirmed yet.
    Pending,
    /// wallet-svc confirmed the credit.
    Credited,
    /// Credited, then undone (DESIGN.md §12).
    Reversed,
}

impl RedemptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Credited => "credited",
            Self::Reversed => "reversed",
        }
    }

    /// The status of a stored word; `None` for a word this build does not know.
    pub fn parse(word: &str) -> Option<Self> {
        [Self::Pending, Self::Credited, Self::Reversed]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redemption {
    pub id: RedemptionId,
    pub group_id: GroupId,
    pub group_name: String,
    pub code_id: CodeId,
    pub code_hint: String,
    pub phone: Phone,
    pub amount: Amount,
    pub currency: Currency,
    pub status: RedemptionStatus,
    pub redeemed_at: DateTime<Utc>,
    pub credited_at: Option<DateTime<Utc>>,
    pub transaction_id: Option<TransactionId>,
    /// Its reversal, once one was asked for (DESIGN.md §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal: Option<Reversal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReversalStatus {
    /// Asked; wallet-svc has not answered yet.
    Pending,
    /// The money went back to the group.
    Done,
    /// The wallet held less than the amount; nothing moved. May be asked again.
    Refused,
}

impl ReversalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Refused => "refused",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Refused]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

/// A redemption's reversal: the latest attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reversal {
    pub status: ReversalStatus,
    pub reason: String,
    pub release_code: bool,
    pub requested_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub transaction_id: Option<TransactionId>,
}

/// `giftcode.redemptions.reverse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseRequest {
    pub redemption_id: RedemptionId,
    /// 1–500 characters.
    pub reason: String,
    #[serde(default)]
    pub release_code: bool,
    pub idempotency_key: crate::IdempotencyKey,
}

impl ReverseRequest {
    pub const MAX_REASON: usize = 500;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReverseReply {
    /// With its `reversal`.
    pub redemption: Redemption,
    /// True when no new attempt was made: the reversal asked for is already
    /// done or under way, and this is it.
    pub replayed: bool,
}

/// What arrives on a reversal's reply inbox: giftcode-svc's reply, then,
/// once wallet-svc has committed or refused, its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReverseInbox {
    Recorded(Box<ReverseReply>),
    Outcome(crate::wallet::ReversalNotice),
}

/// `giftcode.redeem`: the code as typed (the service reads it in its
/// canonical form) and the phone, already E.164.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    pub code: String,
    pub phone: Phone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemReply {
    pub redemption: Redemption,
    /// True when this phone had already redeemed this code: the original
    /// redemption is returned and nothing new was recorded.
    pub replayed: bool,
}

/// What arrives on a redeem's reply inbox (DESIGN.md §7 step 4): first
/// giftcode-svc's reply (or its error reply), then, once the credit is
/// committed, wallet-svc's credit notice. One tagged enum, so the caller reads
/// each message for what it says it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RedeemInbox {
    Redeemed(RedeemReply),
    Credited(CreditNotice),
}

/// `giftcode.groups.timeline`: a group's redemptions per minute over the last
/// `minutes` minutes (1–1,440, default 60), ending with the current minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineRequest {
    pub group_id: GroupId,
    #[serde(default)]
    pub minutes: Option<u32>,
}

impl TimelineRequest {
    pub const MAX_MINUTES: u32 = 1440;
    pub const DEFAULT_MINUTES: u32 = 60;
}

/// A group's redemptions per minute: one entry for every minute of
/// `[from, to)`, oldest first, the empty ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeline {
    pub group_id: GroupId,
    /// The start of the first minute.
    pub from: DateTime<Utc>,
    /// The end of the last minute (the next whole minute after now).
    pub to: DateTime<Utc>,
    pub minutes: Vec<MinuteCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinuteCount {
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    pub redemptions: i64,
    /// Sum of the redeemed amounts, minor units.
    pub amount: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        "USD".parse().expect("USD")
    }

    fn amount(n: i64) -> Amount {
        Amount::new(n).expect("amount")
    }

    fn group() -> Group {
        Group {
            id: GroupId::generate(),
            name: "Launch".into(),
            kind: GroupKind::Shared,
            amount: amount(250),
            currency: usd(),
            starts_at: None,
            expires_at: Some(Utc::now()),
            active: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            per_phone_limit: None,
            max_redemptions: Some(100),
            prefix: None,
            stats: GroupStats {
                total_codes: 1,
                redeemed_codes: 0,
                unredeemed_codes: 1,
                redemptions: 3,
                redeemed_amount: 750,
                remaining_amount: 24_250,
                reversed: 0,
                status: GroupStatus::Active,
            },
        }
    }

    #[test]
    fn create_frames_are_type_tagged() {
        let frames = vec![
            CreateGroupFrame::Group {
                group: Box::new(group()),
            },
            CreateGroupFrame::Codes {
                codes: vec!["ABCD-EFGH-JKMN".into()],
            },
            CreateGroupFrame::End { count: 1 },
        ];
        for frame in frames {
            let json = serde_json::to_value(&frame).expect("ser");
            assert!(json["type"].is_string(), "{json}");
            let back: CreateGroupFrame = serde_json::from_value(json).expect("parse");
            assert_eq!(back, frame);
        }
        let end: CreateGroupFrame =
            serde_json::from_str(r#"{"type":"end","count":7}"#).expect("parse");
        assert_eq!(end, CreateGroupFrame::End { count: 7 });
    }

    #[test]
    fn create_request_reads_the_http_body_shape() {
        let req: CreateGroupRequest = serde_json::from_str(
            r#"{"name":"Spring","kind":"unique","amount":500,"count":10,"prefix":"GIFT",
                "per_phone_limit":2,"expires_at":"2027-01-01T00:00:00Z"}"#,
        )
        .expect("parse");
        assert_eq!(req.kind, Some(GroupKind::Unique));
        assert_eq!(req.amount.get(), 500);
        assert_eq!(req.count, Some(10));
        assert_eq!(
            req.expires_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2027-01-01T00:00:00+00:00")
        );
        let back: CreateGroupRequest =
            serde_json::from_value(serde_json::to_value(&req).expect("ser")).expect("parse");
        assert_eq!(back, req);
        assert!(
            serde_json::from_str::<CreateGroupRequest>(r#"{"name":"x","amount":1,"bogus":1}"#)
                .is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn redemption_and_code_messages_round_trip() {
        let redemption = Redemption {
            id: RedemptionId::generate(),
            group_id: GroupId::generate(),
            group_name: "Launch".into(),
            code_id: CodeId::generate(),
            code_hint: "****-****-7KQ2".into(),
            phone: Phone::from_e164("+14155552671").expect("phone"),
            amount: amount(250),
            currency: usd(),
            status: RedemptionStatus::Pending,
            redeemed_at: Utc::now(),
            credited_at: None,
            transaction_id: None,
            reversal: None,
        };
        let reply = RedeemReply {
            redemption: redemption.clone(),
            replayed: false,
        };
        let json = serde_json::to_value(&reply).expect("ser");
        assert_eq!(json["redemption"]["status"], "pending");
        assert_eq!(
            serde_json::from_value::<RedeemReply>(json).expect("parse"),
            reply
        );
        // The redeem inbox: each message says what it is.
        let notice = CreditNotice {
            redemption_id: redemption.id,
            transaction_id: TransactionId::generate(),
            credited_at: Utc::now(),
            phone: redemption.phone.clone(),
            balance: 250,
            currency: usd(),
        };
        for msg in [
            RedeemInbox::Redeemed(reply.clone()),
            RedeemInbox::Credited(notice),
        ] {
            let json = serde_json::to_value(&msg).expect("ser");
            assert!(
                json["type"] == "redeemed" || json["type"] == "credited",
                "{json}"
            );
            assert_eq!(
                serde_json::from_value::<RedeemInbox>(json).expect("parse"),
                msg
            );
        }

        let details = CodeDetails {
            code: CodeSummary {
                id: CodeId::generate(),
                hint: "GIFT-****-****-7KQ2".into(),
                status: CodeStatus::Redeemed,
                redeemed_by: Phone::from_e164("+14155552671").ok(),
                redeemed_at: Some(Utc::now()),
                redemptions: 1,
                active: true,
            },
            group: group(),
        };
        let json = serde_json::to_value(&details).expect("ser");
        assert_eq!(
            json["status"], "redeemed",
            "code fields are flattened: {json}"
        );
        assert_eq!(
            serde_json::from_value::<CodeDetails>(json).expect("parse"),
            details
        );

        let page = crate::Page {
            items: vec![details.code.clone()],
            next_cursor: Some("abc".into()),
        };
        let back: crate::Page<CodeSummary> =
            serde_json::from_slice(&serde_json::to_vec(&page).expect("ser")).expect("parse");
        assert_eq!(back, page);
        for req in [
            serde_json::to_value(ListCodesRequest {
                group_id: GroupId::generate(),
                status: Some(CodeStatus::Unredeemed),
                limit: Limit::new(10),
                cursor: None,
            }),
            serde_json::to_value(UpdateGroupRequest {
                id: GroupId::generate(),
                active: false,
            }),
        ] {
            assert!(req.expect("ser").is_object());
        }
    }

    #[test]
    fn timeline_round_trips_and_minutes_is_optional() {
        let req: TimelineRequest =
            serde_json::from_str(&format!(r#"{{"group_id":"{}"}}"#, GroupId::generate()))
                .expect("parse");
        assert_eq!(req.minutes, None);
        let t = Timeline {
            group_id: req.group_id,
            from: Utc::now(),
            to: Utc::now(),
            minutes: vec![MinuteCount {
                minute: Utc::now(),
                redemptions: 3,
                amount: 1500,
            }],
        };
        let back: Timeline =
            serde_json::from_value(serde_json::to_value(&t).expect("ser")).expect("parse");
        assert_eq!(back, t);
    }
}
