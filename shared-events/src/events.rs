//! Event payloads (the envelope's `data`) of DESIGN.md §6. Codes never appear
//! here: only `code_id` and the display `code_hint`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, subjects::events as s};

/// A gift-code group was created (`giftcode.events.group.created`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCreated {
    pub group_id: Uuid,
    pub name: String,
    pub kind: crate::giftcode::GroupKind,
    pub amount: i64,
    pub currency: String,
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
    pub group_id: Uuid,
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
    pub redemption_id: Uuid,
    pub group_id: Uuid,
    pub code_id: Uuid,
    pub code_hint: String,
    pub phone: String,
    pub amount: i64,
    pub currency: String,
    pub redeemed_at: DateTime<Utc>,
}

impl Event for CodeRedeemed {
    const TYPE: &'static str = "giftcode.code.redeemed";
    const SUBJECT: &'static str = s::CODE_REDEEMED;
}

/// What caused a wallet movement: `{type: "gift_code_redemption", id}` etc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// A wallet was created (`wallet.events.wallet.created`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletCreated {
    pub phone: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl Event for WalletCreated {
    const TYPE: &'static str = "wallet.wallet.created";
    const SUBJECT: &'static str = s::WALLET_CREATED;
}

/// Money was added to a wallet (`wallet.events.wallet.credited`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletCredited {
    pub transaction_id: Uuid,
    pub phone: String,
    pub amount: i64,
    pub currency: String,
    pub balance_after: i64,
    pub cause: Cause,
}

impl Event for WalletCredited {
    const TYPE: &'static str = "wallet.wallet.credited";
    const SUBJECT: &'static str = s::WALLET_CREDITED;
}

/// Money left a wallet (`wallet.events.wallet.debited`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletDebited {
    pub transaction_id: Uuid,
    pub phone: String,
    pub amount: i64,
    pub currency: String,
    pub balance_after: i64,
    pub cause: Cause,
}

impl Event for WalletDebited {
    const TYPE: &'static str = "wallet.wallet.debited";
    const SUBJECT: &'static str = s::WALLET_DEBITED;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    fn redeemed() -> CodeRedeemed {
        CodeRedeemed {
            redemption_id: Uuid::now_v7(),
            group_id: Uuid::now_v7(),
            code_id: Uuid::now_v7(),
            code_hint: "GIFT-****-****-7KQ2".into(),
            phone: "+15551234567".into(),
            amount: 500,
            currency: "USD".into(),
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
            transaction_id: Uuid::now_v7(),
            phone: "+15551234567".into(),
            amount: 10,
            currency: "USD".into(),
            balance_after: 10,
            cause: Cause {
                kind: "gift_code_redemption".into(),
                id: Uuid::now_v7().to_string(),
            },
        };
        let env = Envelope::new("wallet-svc", None, credited);
        let json = serde_json::to_string(&env).expect("serialize");
        assert!(json.contains(r#""cause":{"type":"gift_code_redemption""#));
        let back: Envelope<WalletCredited> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, env);
        let debited = WalletDebited {
            transaction_id: Uuid::now_v7(),
            phone: "+15551234567".into(),
            amount: 3,
            currency: "USD".into(),
            balance_after: 7,
            cause: Cause {
                kind: "admin_debit".into(),
                id: "k1".into(),
            },
        };
        let env = Envelope::new("wallet-svc", None, debited);
        let back: Envelope<WalletDebited> =
            serde_json::from_slice(&serde_json::to_vec(&env).expect("ser")).expect("parse");
        assert_eq!(back, env);
        let created = Envelope::new(
            "wallet-svc",
            None,
            WalletCreated {
                phone: "+15551234567".into(),
                currency: "USD".into(),
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
                group_id: Uuid::now_v7(),
                name: "Launch".into(),
                kind: crate::giftcode::GroupKind::Unique,
                amount: 100,
                currency: "USD".into(),
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
                group_id: Uuid::now_v7(),
                active: false,
                updated_at: Utc::now(),
            },
        );
        let back: Envelope<GroupUpdated> =
            serde_json::from_slice(&serde_json::to_vec(&updated).expect("ser")).expect("parse");
        assert_eq!(back, updated);
    }
}
