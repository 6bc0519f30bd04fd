//! Canonical JSON: object keys sorted at every level, no whitespace. Hash maps in
//! the spec types would otherwise serialize in random order and break
//! reproducible digests.

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(1024);
    write(&value, &mut out)?;
    Ok(out)
}

fn write(v: &Value, out: &mut Vec<u8>) -> Result<()> {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_sorted_at_every_level() {
        let mut m = std::collections::HashMap::new();
        for k in ["z", "a", "m", "b"] {
            m.insert(
                k.to_string(),
                serde_json::json!({"y": 1, "x": [ {"d": 1, "c": 2} ]}),
            );
        }
        let s = String::from_utf8(super::to_vec(&m).unwrap()).unwrap();
        assert!(
            s.starts_with(r#"{"a":{"x":[{"c":2,"d":1}],"y":1},"b""#),
            "{s}"
        );
    }
}
