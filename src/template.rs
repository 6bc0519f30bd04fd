//! `{{name}}` templates (in ldflags and tags), filled from a table of values.
//! An unknown name is an error that lists the known ones.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// Expands every `{{ name }}` in `text`.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("`{text}`: `{{{{` without a closing `}}}}`");
        };
        let name = after[..end].trim();
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => bail!(
                "`{text}`: unknown template value `{name}`; known: {}",
                vars.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("version", "1.2.3"), ("git.short_sha", "abc1234")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_known_names() {
        assert_eq!(
            expand("-X main.version={{version}}-{{ git.short_sha }}", &vars()).unwrap(),
            "-X main.version=1.2.3-abc1234"
        );
        assert_eq!(expand("plain", &vars()).unwrap(), "plain");
    }

    #[test]
    fn unknown_and_unclosed_are_errors() {
        let e = expand("{{nope}}", &vars()).unwrap_err().to_string();
        assert!(
            e.contains("unknown template value `nope`") && e.contains("version"),
            "{e}"
        );
        assert!(expand("{{version", &vars()).is_err());
    }
}
