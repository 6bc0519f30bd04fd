//! The build's single timestamp: `SOURCE_DATE_EPOCH`, else the commit time, else
//! the Unix epoch, so equal sources give equal digests.

use anyhow::{Context, Result};

pub fn rfc3339(epoch: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formatting a valid time cannot fail")
}

/// `SOURCE_DATE_EPOCH` when set (and valid), else `fallback`.
pub fn source_date_epoch(fallback: Option<u64>) -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH=`{s}` is not a number of seconds")),
        _ => Ok(fallback.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
