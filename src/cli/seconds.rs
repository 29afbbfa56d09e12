//! Durations given in seconds (`-t`, `--call-timeout`, `subscribe -t`, `compose --timeout`, a
//! profile's `timeout`): checked once, so turning them into a [`Duration`] cannot fail.

use std::time::Duration;

/// The longest duration accepted: a year. Beyond it timers overflow, and no wait is that long.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// A number of seconds, for clap: more than 0 and at most a year.
pub fn parse(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    // Say the value as it was written: `1e300` printed as a float is 301 digits.
    check(value).map_err(|_| out_of_range(text.trim()))
}

fn out_of_range(shown: &str) -> String {
    format!("{shown} is not a number of seconds between 0 and {MAX_SECONDS} (a year)")
}

/// `value` when it is more than 0 and at most [`MAX_SECONDS`].
pub fn check(value: f64) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 && value <= MAX_SECONDS {
        Ok(value)
    } else {
        // Scientific notation beyond a year keeps a huge value readable.
        let shown = if value.abs() > MAX_SECONDS {
            format!("{value:e}")
        } else {
            value.to_string()
        };
        Err(out_of_range(&shown))
    }
}

/// A checked number of seconds as a [`Duration`] (clamped to the accepted range should an
/// unchecked one come in).
pub fn duration(value: f64) -> Duration {
    let clamped = if value.is_finite() {
        value.clamp(0.0, MAX_SECONDS)
    } else {
        MAX_SECONDS
    };
    Duration::from_secs_f64(clamped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_finite_and_at_most_a_year() {
        assert_eq!(parse("1.5"), Ok(1.5));
        assert_eq!(parse(" 30 "), Ok(30.0));
        for bad in ["1e300", "-1", "0", "NaN", "inf", "x", ""] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("seconds"), "{bad}: {e}");
        }
        assert_eq!(
            parse("1e300").unwrap_err(),
            "1e300 is not a number of seconds between 0 and 31536000 (a year)"
        );
        assert_eq!(
            check(1e300).unwrap_err(),
            "1e300 is not a number of seconds between 0 and 31536000 (a year)"
        );
        assert_eq!(duration(f64::NAN), Duration::from_secs_f64(MAX_SECONDS));
        assert_eq!(duration(1e300), Duration::from_secs_f64(MAX_SECONDS));
        assert_eq!(duration(-3.0), Duration::ZERO);
    }
}
