//! HAProxy's time format (`1500`, `250ms`, `2s`, `1m`, ...), for every
//! option that takes a time.

use std::time::Duration;

/// Parses a time in HAProxy's format: a number with an optional unit,
/// `us`, `ms`, `s`, `m`, `h` or `d`; a bare number is milliseconds.
pub fn parse_time(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "invalid time '{text}': expected a number with an optional unit (us, ms, s, m, h, d)"
        ));
    }
    // Ten digits are more than any sensible time and keep the arithmetic in range.
    let value: u64 = match number.parse() {
        Ok(v) if number.trim_start_matches('0').len() <= 10 => v,
        _ => return Err(format!("invalid time '{text}': number too large")),
    };
    let duration = match unit {
        "us" => Duration::from_micros(value),
        "" | "ms" => Duration::from_millis(value),
        "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value * 60),
        "h" => Duration::from_secs(value * 3600),
        "d" => Duration::from_secs(value * 86400),
        other => {
            return Err(format!(
                "invalid time '{text}': unknown unit '{other}' (use us, ms, s, m, h or d)"
            ))
        }
    };
    Ok(duration)
}

/// A duration in the same format, in the largest unit that is exact among
/// s, ms and us; in m, h or d only when that count has more digits than
/// [`parse_time`] reads back (`9999999999d` is 863999999913600 s).
pub fn format_time(d: Duration) -> String {
    const UNITS: [(u128, &str); 6] = [
        (1_000_000, "s"),
        (1000, "ms"),
        (1, "us"),
        (60_000_000, "m"),
        (3_600_000_000, "h"),
        (86_400_000_000, "d"),
    ];
    let us = d.as_micros();
    UNITS
        .iter()
        .find(|&&(size, _)| us % size == 0 && us / size <= 9_999_999_999)
        .map_or_else(
            || format!("{us}us"),
            |&(size, unit)| format!("{}{unit}", us / size),
        )
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn haproxy_time_format() {
        assert_eq!(parse_time("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_time("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_time("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_time("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_time("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_time("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_time("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_time(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn format_round_trips() {
        for t in ["1500ms", "2s", "250us", "60s"] {
            assert_eq!(format_time(parse_time(t).unwrap()), t);
        }
        // Found by the `time` fuzz target: seconds would need 15 digits.
        for t in ["9999999999d", "9999999999h", "9999999999m", "9999999999s"] {
            let d = parse_time(t).unwrap();
            assert_eq!(parse_time(&format_time(d)), Ok(d), "{t}");
        }
    }

    #[test]
    fn leading_zeros_do_not_count_as_digits() {
        assert_eq!(parse_time("00000000001s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn bad_times_are_rejected_with_a_reason() {
        for bad in ["", "s", "-1", "1.5s", "10x", "1 s", "99999999999999999999"] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains("invalid time"), "{bad}: {err}");
        }
    }
}
