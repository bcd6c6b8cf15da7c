//! Durations as the configuration writes them (`30s`, `15m`, `1h30m`) and their bounds.

use std::time::Duration;

/// Parses `30s`, `15m`, `8h`, `1d`, or sums of them (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration (use e.g. 30s, 15m, 8h, 1d)");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for ch in t.chars() {
        if let Some(d) = ch.to_digit(10) {
            let n = num.unwrap_or(0);
            num = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n = num.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if num.is_some() {
        return Err(format!(
            "'{s}' needs a unit: s, m, h or d (e.g. {}s)",
            num.unwrap_or(0)
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `Duration` in the largest unit that divides it, the way it would be written in the config.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.checked_rem(86400) == Some(0) => format!("{}d", s / 86400),
        _ if s.checked_rem(3600) == Some(0) => format!("{}h", s / 3600),
        _ if s.checked_rem(60) == Some(0) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Shortest IKE or IPsec SA lifetime accepted.
pub(super) const MIN_LIFETIME: Duration = Duration::from_secs(10);

pub(super) fn above_max(key: &str, d: Duration, max: Duration) -> String {
    format!(
        "{key}: {} is above the maximum of {}",
        format_duration(d),
        format_duration(max)
    )
}

pub(super) fn duration_key(key: &str, v: Option<&str>, default: &str) -> Result<Duration, String> {
    parse_duration(v.unwrap_or(default)).map_err(|e| format!("{key}: {e}"))
}
