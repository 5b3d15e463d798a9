//! Typed ids (DESIGN.md §3: UUID v7). A group's id cannot be passed where a
//! redemption's is wanted, and an id that does not parse is refused where it
//! is read, with the §9 word that fits: no group has id `not-a-uuid`, so it
//! is `group_not_found`, as a well-formed unknown id would be.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $word:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id (UUID v7: ordered by creation time).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn get(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<str>::deserialize(d)?;
                s.parse().map_err(|_| {
                    serde::de::Error::custom(concat!($word, ": no ", $what, " has this id"))
                })
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

id!(
    /// A gift-code group.
    GroupId,
    "group_not_found",
    "group"
);
id!(
    /// One code of a group (never the code itself).
    CodeId,
    "code_not_found",
    "code"
);
id!(
    /// A redemption: also the permanent key of its credit in the ledger.
    RedemptionId,
    "not_found",
    "redemption"
);
id!(
    /// A transfer of the ledger, as its wallet sees it.
    TransactionId,
    "not_found",
    "transaction"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn ids_round_trip_and_refuse_with_their_word() {
        let id = GroupId::generate();
        let json = serde_json::to_string(&id).expect("ser");
        assert_eq!(json, format!("\"{}\"", id.get()));
        assert_eq!(serde_json::from_str::<GroupId>(&json).expect("parse"), id);
        for (bad, word) in [
            (
                serde_json::from_str::<GroupId>("\"nope\"").err(),
                ErrorCode::GroupNotFound,
            ),
            (
                serde_json::from_str::<RedemptionId>("\"1; DROP\"").err(),
                ErrorCode::NotFound,
            ),
            (
                serde_json::from_str::<CodeId>("\"\"").err(),
                ErrorCode::CodeNotFound,
            ),
        ] {
            let msg = bad.expect("refused").to_string();
            assert_eq!(
                ErrorCode::in_message(&msg).map(|(c, _)| c),
                Some(word),
                "{msg}"
            );
        }
    }
}
