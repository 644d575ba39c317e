//! Terraform values as msgpack (`rmpv::Value`), the way cty encodes them.
//!
//! An object is a msgpack map keyed by attribute name, null is nil, and an
//! unknown value is a msgpack extension: type 0 for a plain unknown, type 12
//! for an unknown with refinements (cty's `unknownValWithRefinementsExt`).
//! Any extension value is treated as unknown here.

use rmpv::Value;

use crate::proto::tfplugin6::DynamicValue;

/// The msgpack extension type cty uses for an unknown value.
const UNKNOWN_EXT: i8 = 0;

/// An unknown value of any type.
pub fn unknown() -> Value {
    Value::Ext(UNKNOWN_EXT, vec![0])
}

/// Whether `v` is unknown (wholly, not just somewhere inside).
pub fn is_unknown(v: &Value) -> bool {
    matches!(v, Value::Ext(..))
}

/// Whether `v` contains an unknown value anywhere.
#[cfg(test)]
pub fn contains_unknown(v: &Value) -> bool {
    match v {
        Value::Ext(..) => true,
        Value::Array(items) => items.iter().any(contains_unknown),
        Value::Map(entries) => entries.iter().any(|(_, v)| contains_unknown(v)),
        _ => false,
    }
}

/// The attribute `name` of object `obj`, or None when `obj` is not an
/// object or has no such attribute.
pub fn get<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    match obj {
        Value::Map(entries) => {
            entries.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v)
        }
        _ => None,
    }
}

/// The attribute `name` of `obj` as a string, when it is a known string.
pub fn get_str<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    get(obj, name).and_then(Value::as_str)
}

/// Whether attribute `name` of `obj` is null (or absent).
pub fn is_null_attr(obj: &Value, name: &str) -> bool {
    get(obj, name).is_none_or(Value::is_nil)
}

/// Sets attribute `name` of object `obj`, adding it when absent. Does
/// nothing when `obj` is not an object.
pub fn set(obj: &mut Value, name: &str, value: Value) {
    if let Value::Map(entries) = obj {
        match entries.iter_mut().find(|(k, _)| k.as_str() == Some(name)) {
            Some((_, v)) => *v = value,
            None => entries.push((Value::from(name), value)),
        }
    }
}

/// A string value.
pub fn string(s: impl Into<String>) -> Value {
    Value::from(s.into())
}

/// Decodes a request's DynamicValue: msgpack when set, else JSON (which has
/// no unknowns), else null (an empty DynamicValue is how a missing value
/// arrives, e.g. the prior state of a resource being created).
pub fn decode(dv: Option<&DynamicValue>) -> Result<Value, String> {
    let Some(dv) = dv else { return Ok(Value::Nil) };
    if !dv.msgpack.is_empty() {
        let mut bytes = dv.msgpack.as_slice();
        return rmpv::decode::read_value(&mut bytes)
            .map_err(|e| format!("decoding msgpack value: {e}"));
    }
    if !dv.json.is_empty() {
        let json: serde_json::Value =
            serde_json::from_slice(&dv.json).map_err(|e| format!("decoding JSON value: {e}"))?;
        return Ok(from_json(&json));
    }
    Ok(Value::Nil)
}

/// Encodes a value for a response, always as msgpack so unknowns survive.
pub fn encode(v: &Value) -> Result<DynamicValue, String> {
    let mut msgpack = Vec::new();
    rmpv::encode::write_value(&mut msgpack, v).map_err(|e| format!("encoding msgpack: {e}"))?;
    Ok(DynamicValue { msgpack, json: Vec::new() })
}

/// Converts JSON (stored state) to the msgpack form. Integers stay
/// integers; other numbers become floats.
pub fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => {
            Value::Map(map.iter().map(|(k, v)| (Value::from(k.as_str()), from_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_fixext1_type_zero() {
        let dv = encode(&unknown()).expect("encode");
        assert_eq!(dv.msgpack, vec![0xd4, 0x00, 0x00]);
        let back = decode(Some(&dv)).expect("decode");
        assert!(is_unknown(&back));
    }

    #[test]
    fn set_and_get_attributes() {
        let mut obj = Value::Map(vec![(Value::from("a"), Value::Nil)]);
        assert!(is_null_attr(&obj, "a"));
        set(&mut obj, "a", string("x"));
        set(&mut obj, "b", unknown());
        assert_eq!(get_str(&obj, "a"), Some("x"));
        assert!(contains_unknown(&obj));
    }

    #[test]
    fn json_state_decodes() {
        let dv =
            DynamicValue { msgpack: Vec::new(), json: br#"{"n":120,"f":1.5,"l":["a"]}"#.to_vec() };
        let v = decode(Some(&dv)).expect("decode");
        assert_eq!(get(&v, "n").and_then(Value::as_i64), Some(120));
        assert_eq!(get(&v, "f").and_then(Value::as_f64), Some(1.5));
    }
}
