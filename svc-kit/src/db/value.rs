//! The values a query binds and the rows it returns, the same for both
//! engines. A row decodes its columns into the platform's types and fails
//! loudly on anything this build does not understand: a word it does not
//! know, a malformed id, an amount out of range. Nothing becomes a default.

use std::{str::FromStr, sync::Arc};

use crate::Error;

/// What a column holds: the four storage classes the schema uses. A NULL
/// keeps the type it stands for, because PostgreSQL types every parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// The type of a [`Value`], NULL included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

impl Value {
    fn kind_name(&self) -> &'static str {
        match self {
            Value::Null(_) => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }
}

/// A type a [`Value`] can be made from, and what its NULL is.
pub trait Bind {
    const KIND: Kind;
    fn into_value(self) -> Value;
}

macro_rules! bind_int {
    ($($t:ty),*) => {$(
        impl Bind for $t {
            const KIND: Kind = Kind::Int;
            fn into_value(self) -> Value {
                Value::Int(i64::from(self))
            }
        }
    )*};
}
bind_int!(i64, i32, u32, i16, u8);

impl Bind for bool {
    const KIND: Kind = Kind::Int;
    fn into_value(self) -> Value {
        Value::Int(i64::from(self))
    }
}
impl Bind for f64 {
    const KIND: Kind = Kind::Real;
    fn into_value(self) -> Value {
        Value::Real(self)
    }
}
impl Bind for String {
    const KIND: Kind = Kind::Text;
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}
impl Bind for &str {
    const KIND: Kind = Kind::Text;
    fn into_value(self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Bind for &String {
    const KIND: Kind = Kind::Text;
    fn into_value(self) -> Value {
        Value::Text(self.clone())
    }
}
impl Bind for Vec<u8> {
    const KIND: Kind = Kind::Blob;
    fn into_value(self) -> Value {
        Value::Blob(self)
    }
}
impl Bind for &[u8] {
    const KIND: Kind = Kind::Blob;
    fn into_value(self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl<T: Bind> Bind for Option<T> {
    const KIND: Kind = T::KIND;
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Null(T::KIND),
        }
    }
}

/// A type a column can be read as.
pub trait FromValue: Sized {
    /// `None` when the value is not of this type.
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(n) => Some(*n),
            Value::Int(n) => Some(*n as f64),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(n) => Some(*n != 0),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null(_) => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// Stored data this build cannot read: a row decoder met a word or a value it
/// does not know. Never turned into a default.
#[derive(Debug, thiserror::Error)]
#[error("column {column} holds {value:?}: {reason}")]
pub struct DecodeError {
    pub column: String,
    pub value: String,
    pub reason: String,
}

fn decode_err(column: &str, value: impl ToString, reason: impl ToString) -> Error {
    Error::Decode(DecodeError {
        column: column.to_owned(),
        value: value.to_string(),
        reason: reason.to_string(),
    })
}

/// One row of a result: its columns by name.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(names: Arc<[String]>, values: Vec<Value>) -> Self {
        Self { names, values }
    }

    fn value(&self, column: &str) -> Result<&Value, Error> {
        self.names
            .iter()
            .position(|n| n == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| decode_err(column, "", "no such column in the result"))
    }

    /// The column as `T` (an integer, text, a blob, or an `Option` of one).
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, Error> {
        let v = self.value(column)?;
        T::from_value(v).ok_or_else(|| {
            decode_err(
                column,
                v.kind_name(),
                format!("not {}", std::any::type_name::<T>()),
            )
        })
    }

    /// A text column read with `FromStr` (ids, phones, currencies).
    pub fn parsed<T>(&self, column: &str) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text: String = self.get(column)?;
        text.parse().map_err(|e| decode_err(column, &text, e))
    }

    /// A nullable text column read with `FromStr`.
    pub fn parsed_opt<T>(&self, column: &str) -> Result<Option<T>, Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text: Option<String> = self.get(column)?;
        text.map(|t| t.parse().map_err(|e| decode_err(column, &t, e)))
            .transpose()
    }

    /// A column holding one of an enum's words.
    pub fn word<T>(&self, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, Error> {
        let text: String = self.get(column)?;
        parse(&text).ok_or_else(|| decode_err(column, &text, "not a word this build knows"))
    }

    /// A money column: 1 ..= 10^12 minor units.
    pub fn amount(&self, column: &str) -> Result<shared_events::Amount, Error> {
        let n: i64 = self.get(column)?;
        shared_events::Amount::new(n)
            .ok_or_else(|| decode_err(column, n, shared_events::Amount::RULE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row::new(
            vec!["n".to_owned(), "t".to_owned(), "z".to_owned()].into(),
            vec![
                Value::Int(7),
                Value::Text("credited".into()),
                Value::Null(Kind::Text),
            ],
        )
    }

    #[test]
    fn columns_decode_as_their_type_or_fail_loudly() {
        let r = row();
        assert_eq!(r.get::<i64>("n").ok(), Some(7));
        assert_eq!(r.get::<Option<String>>("z").ok(), Some(None));
        assert!(r.get::<String>("n").is_err(), "an integer is not text");
        assert!(r.get::<i64>("z").is_err(), "NULL is not a number");
        assert!(r.get::<i64>("missing").is_err());
        assert!(r.amount("n").is_ok());
        let word = r.word("t", |w| (w == "pending").then_some(()));
        assert!(word.is_err(), "an unknown word is an error, not a default");
    }

    #[test]
    fn a_null_keeps_its_type() {
        assert_eq!(None::<i64>.into_value(), Value::Null(Kind::Int));
        assert_eq!(None::<String>.into_value(), Value::Null(Kind::Text));
        assert_eq!(Some("x").into_value(), Value::Text("x".into()));
    }
}
