//! Event payloads (the envelope's `data`) of DESIGN.md §6. Codes never appear
//! here: only `code_id` and the display `code_hint`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Amount, Currency, Event, Phone,
    ids::{CodeId, GroupId, RedemptionId, TransactionId},
    subjects::events as s,
};

/// A gift-code group was created (`giftcode.events.group.created`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCreated {
    pub group_id: GroupId,
    pub name: String,
    pub kind: crate::giftcode::GroupKind,
    pub amount: Amount,
    pub currency: Currency,
    pub total_codes: i64,
    pub max_redemptions: Option<i64>,
    pub per_phone_limit: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Event for GroupCreated {
    const TYPE: &'static str = "giftcode.group.created";
    const SUBJECT: &'static str = s::GROUP_CREATED;
}

/// A group was activated or deactivated (`giftcode.events.group.updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupUpdated {
    pub group_id: GroupId,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

impl Event for GroupUpdated {
    const TYPE: &'static str = "giftcode.group.updated";
    const SUBJECT: &'static str = s::GROUP_UPDATED;
}

/// A code was redeemed (`giftcode.events.code.redeemed`). wallet-svc credits
/// `phone` with `amount` from the group's funding account, keyed by
/// `redemption_id` so that the credit happens exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRedeemed {
    pub redemption_id: RedemptionId,
    pub group_id: GroupId,
    pub code_id: CodeId,
    pub code_hint: String,
    pub phone: Phone,
    pub amount: Amount,
    pub currency: Currency,
    pub redeemed_at: DateTime<Utc>,
}

impl Event for CodeRedeemed {
    const TYPE: &'static str = "giftcode.code.redeemed";
    const SUBJECT: &'static str = s::CODE_REDEEMED;
}

/// What caused a wallet movement: `{type, id}`, e.g.
/// `{"type": "gift_code_redemption", "id": "<redemption id>"}`. A cause this
/// build does not know reads as [`Cause::Other`], so a consumer that cares
/// about some causes passes over new ones instead of refusing the event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Cause {
    GiftCodeRedemption(RedemptionId),
    GiftCodeReversal(RedemptionId),
    /// The admin's `Idempotency-Key`.
    AdminCredit(String),
    AdminDebit(String),
    /// Never sent: what an unknown cause reads as.
    #[serde(skip_serializing)]
    Other,
}

impl<'de> Deserialize<'de> for Cause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            kind: String,
            id: String,
        }
        let raw = Raw::deserialize(d)?;
        Ok(match raw.kind.as_str() {
            "gift_code_redemption" => {
                Cause::GiftCodeRedemption(raw.id.parse().map_err(serde::de::Error::custom)?)
            }
            "gift_code_reversal" => {
                Cause::GiftCodeReversal(raw.id.parse().map_err(serde::de::Error::custom)?)
            }
            "admin_credit" => Cause::AdminCredit(raw.id),
            "admin_debit" => Cause::AdminDebit(raw.id),
            _ => Cause::Other,
        })
    }
}

/// A wallet was created on its own (`POST /wallets`,
/// `wallet.events.wallet.created`); one opened by a credit is announced by
/// that credit's `wallet.credited` (`created: true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletCreated {
    pub phone: Phone,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
}

impl Event for WalletCreated {
    const TYPE: &'static str = "wallet.wallet.created";
    const SUBJECT: &'static str = s::WALLET_CREATED;
}

/// Money was added to a wallet (`wallet.events.wallet.credited`). A credit
/// that opened the wallet says so (`created`) instead of a `wallet.created`
/// of its own: one event per credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletCredited {
    pub transaction_id: TransactionId,
    pub phone: Phone,
    pub amount: Amount,
    pub currency: Currency,
    pub balance_after: i64,
    pub cause: Cause,
    /// This credit opened the wallet (events of older builds lack it: false).
    #[serde(default)]
    pub created: bool,
}

impl Event for WalletCredited {
    const TYPE: &'static str = "wallet.wallet.credited";
    const SUBJECT: &'static str = s::WALLET_CREDITED;
}

/// Money left a wallet (`wallet.events.wallet.debited`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletDebited {
    pub transaction_id: TransactionId,
    pub phone: Phone,
    pub amount: Amount,
    pub currency: Currency,
    pub balance_after: i64,
    pub cause: Cause,
}

impl Event for WalletDebited {
    const TYPE: &'static str = "wallet.wallet.debited";
    const SUBJECT: &'static str = s::WALLET_DEBITED;
}

/// An admin asked to undo a redemption (DESIGN.md §12,
/// `giftcode.events.redemption.reversal_requested`). `attempt_id` names this
/// request: a refused attempt may be followed by another. wallet-svc moves
/// `amount` back from `phone`'s wallet to the group's funding account under
/// the permanent key `reversal:<redemption_id>`, or refuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReversalRequested {
    pub attempt_id: uuid::Uuid,
    pub redemption_id: RedemptionId,
    pub group_id: GroupId,
    pub phone: Phone,
    pub amount: Amount,
    pub currency: Currency,
    pub reason: String,
    pub release_code: bool,
    pub requested_at: DateTime<Utc>,
}

impl Event for ReversalRequested {
    const TYPE: &'static str = "giftcode.redemption.reversal_requested";
    const SUBJECT: &'static str = s::REVERSAL_REQUESTED;
}

/// The reversal's money moved (`wallet.events.wallet.reversed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletReversed {
    pub attempt_id: uuid::Uuid,
    pub redemption_id: RedemptionId,
    pub group_id: GroupId,
    pub transaction_id: TransactionId,
    pub phone: Phone,
    pub amount: Amount,
    pub currency: Currency,
    pub balance_after: i64,
    /// The attempt's `release_code`, echoed so that giftcode-svc applies the
    /// attempt that moved the money.
    pub release_code: bool,
    pub reversed_at: DateTime<Utc>,
}

impl Event for WalletReversed {
    const TYPE: &'static str = "wallet.wallet.reversed";
    const SUBJECT: &'static str = s::WALLET_REVERSED;
}

/// The wallet held less than the amount (`wallet.events.wallet.reversal_refused`):
/// nothing moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletReversalRefused {
    pub attempt_id: uuid::Uuid,
    pub redemption_id: RedemptionId,
    pub phone: Phone,
    pub amount: Amount,
    pub balance: i64,
    pub refused_at: DateTime<Utc>,
}

impl Event for WalletReversalRefused {
    const TYPE: &'static str = "wallet.wallet.reversal_refused";
    const SUBJECT: &'static str = s::WALLET_REVERSAL_REFUSED;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    fn phone() -> Phone {
        Phone::from_e164("+14155552671").expect("phone")
    }

    fn usd() -> Currency {
        "USD".parse().expect("USD")
    }

    fn amount(n: i64) -> Amount {
        Amount::new(n).expect("amount")
    }

    fn redeemed() -> CodeRedeemed {
        CodeRedeemed {
            redemption_id: RedemptionId::generate(),
            group_id: GroupId::generate(),
            code_id: CodeId::generate(),
            code_hint: "GIFT-****-****-7KQ2".into(),
            phone: phone(),
            amount: amount(500),
            currency: usd(),
            redeemed_at: Utc::now(),
        }
    }

    #[test]
    fn envelope_round_trips_with_the_contract_field_names() {
        let env = Envelope::new("giftcode-svc", Some("req-1".into()), redeemed());
        let json = serde_json::to_value(&env).expect("serialize");
        for field in [
            "id",
            "type",
            "version",
            "occurred_at",
            "source",
            "correlation_id",
            "data",
        ] {
            assert!(json.get(field).is_some(), "envelope lacks {field}: {json}");
        }
        assert_eq!(json["type"], "giftcode.code.redeemed");
        assert_eq!(json["data"]["code_hint"], "GIFT-****-****-7KQ2");
        let bytes = serde_json::to_vec(&env).expect("serialize");
        let back = Envelope::<CodeRedeemed>::from_slice(&bytes).expect("parse");
        assert_eq!(back, env);
        assert_eq!(env.subject(), "giftcode.events.code.redeemed");
    }

    #[test]
    fn envelope_of_another_type_is_refused() {
        let env = Envelope::new("giftcode-svc", None, redeemed());
        let bytes = serde_json::to_vec(&env).expect("serialize");
        assert!(Envelope::<WalletCredited>::from_slice(&bytes).is_err());
    }

    #[test]
    fn wallet_events_round_trip() {
        let credited = WalletCredited {
            transaction_id: TransactionId::generate(),
            phone: phone(),
            amount: amount(10),
            currency: usd(),
            balance_after: 10,
            cause: Cause::GiftCodeRedemption(RedemptionId::generate()),
            created: true,
        };
        let env = Envelope::new("wallet-svc", None, credited);
        let json = serde_json::to_string(&env).expect("serialize");
        assert!(json.contains(r#""cause":{"type":"gift_code_redemption""#));
        assert!(json.contains(r#""created":true"#));
        let older = json.replace(r#","created":true"#, "");
        let back: Envelope<WalletCredited> = serde_json::from_str(&older).expect("parse");
        assert!(
            !back.data.created,
            "an older build's event reads as not created"
        );
        let back: Envelope<WalletCredited> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, env);
        let debited = WalletDebited {
            transaction_id: TransactionId::generate(),
            phone: phone(),
            amount: amount(3),
            currency: usd(),
            balance_after: 7,
            cause: Cause::AdminDebit("k1".into()),
        };
        let json = serde_json::to_value(&debited).expect("ser");
        assert_eq!(
            json["cause"],
            serde_json::json!({"type": "admin_debit", "id": "k1"})
        );
        let env = Envelope::new("wallet-svc", None, debited);
        let back: Envelope<WalletDebited> =
            serde_json::from_slice(&serde_json::to_vec(&env).expect("ser")).expect("parse");
        assert_eq!(back, env);
        let created = Envelope::new(
            "wallet-svc",
            None,
            WalletCreated {
                phone: phone(),
                currency: usd(),
                created_at: Utc::now(),
            },
        );
        let back: Envelope<WalletCreated> =
            serde_json::from_slice(&serde_json::to_vec(&created).expect("ser")).expect("parse");
        assert_eq!(back, created);
    }

    #[test]
    fn group_events_round_trip() {
        let created = Envelope::new(
            "giftcode-svc",
            None,
            GroupCreated {
                group_id: GroupId::generate(),
                name: "Launch".into(),
                kind: crate::giftcode::GroupKind::Unique,
                amount: amount(100),
                currency: usd(),
                total_codes: 10,
                max_redemptions: None,
                per_phone_limit: Some(1),
                starts_at: None,
                expires_at: Some(Utc::now()),
                created_at: Utc::now(),
            },
        );
        let json = serde_json::to_value(&created).expect("ser");
        assert_eq!(json["data"]["kind"], "unique");
        let back: Envelope<GroupCreated> = serde_json::from_value(json).expect("parse");
        assert_eq!(back, created);
        let updated = Envelope::new(
            "giftcode-svc",
            None,
            GroupUpdated {
                group_id: GroupId::generate(),
                active: false,
                updated_at: Utc::now(),
            },
        );
        let back: Envelope<GroupUpdated> =
            serde_json::from_slice(&serde_json::to_vec(&updated).expect("ser")).expect("parse");
        assert_eq!(back, updated);
    }

    #[test]
    fn a_cause_this_build_does_not_know_is_other() {
        let cause: Cause =
            serde_json::from_str(r#"{"type": "gift_card_refund", "id": "x"}"#).expect("parse");
        assert_eq!(cause, Cause::Other);
        let known: Cause = serde_json::from_str(
            r#"{"type": "gift_code_redemption", "id": "01a22bcd-aad1-7587-97c8-207ae173a833"}"#,
        )
        .expect("parse");
        assert!(matches!(known, Cause::GiftCodeRedemption(_)));
    }

    #[test]
    fn an_event_with_a_bad_value_does_not_decode() {
        let env = Envelope::new("giftcode-svc", None, redeemed());
        let mut json = serde_json::to_value(&env).expect("ser");
        json["data"]["phone"] = "not a phone".into();
        let bytes = serde_json::to_vec(&json).expect("ser");
        assert!(Envelope::<CodeRedeemed>::from_slice(&bytes).is_err());
    }
}
