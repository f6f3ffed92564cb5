//! Lengths of time as people write them: a whole number and a unit (`90s`, `15m`, `2h`, `1d`), or several
//! (`1h30m`). Silences (`reflex silence --for`) and maintenance windows (`duration`) are written this way.

use std::time::Duration;

/// Reads a length of at least a second; a message saying how to write one otherwise.
pub fn parse_length(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{:?} is not a length: write a number and a unit, s, m, h or d (90s, 15m, 2h, 1h30m)",
            crate::untrusted::bounded(text)
        )
    };
    let text = text.trim();
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(bad)?;
    }
    if text.is_empty() || !digits.is_empty() {
        return Err(bad());
    }
    if total == 0 {
        return Err(format!("a length is at least 1s, not {text:?}"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_as_people_write_them_and_nothing_else() {
        assert_eq!(parse_length("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_length("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_length(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_length("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_length("1d"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "",
            "2",
            "h",
            "2x",
            "1.5h",
            "-1h",
            "2 h",
            "99999999999999999999d",
        ] {
            assert!(
                parse_length(bad).unwrap_err().contains("not a length"),
                "{bad:?}"
            );
        }
        assert!(parse_length("0s").unwrap_err().contains("at least 1s"));
    }
}
