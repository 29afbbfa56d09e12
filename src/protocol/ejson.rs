//! TrueNAS extended JSON (`docs/middleware.md` §3.5): `{"$date": ms}` and friends.
//!
//! Values travel through midscript untouched, so anything a user got back can be sent back as
//! it came. These helpers decode the markers only where a person reads them ([`humanize`]).

use serde_json::{Map, Value};

/// A recognised extended-JSON marker.
#[derive(Debug, Clone, PartialEq)]
pub enum Ejson {
    /// `{"$date": <ms since epoch, UTC>}`: a datetime.
    DateTime(i64),
    /// `{"$type":"date","$value":"YYYY-MM-DD"}`: a date.
    Date(String),
    /// `{"$time":"HH:MM:SS[.ffffff]"}`: a time of day.
    Time(String),
    /// `{"$set":[…]}`: a set.
    Set(Vec<Value>),
    /// `{"$ipv4_interface":"10.0.0.1/24"}`.
    Ipv4Interface(String),
    /// `{"$ipv6_interface":"…"}`.
    Ipv6Interface(String),
}

impl Ejson {
    /// Recognise a marker. As the server's decoder, only objects with exactly one `$` key (or
    /// exactly `$type`/`$value` with `$type == "date"`) count.
    pub fn decode(value: &Value) -> Option<Ejson> {
        let m = value.as_object()?;
        if m.len() == 1 {
            let (k, v) = m.iter().next()?;
            return match k.as_str() {
                "$date" => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Ejson::DateTime),
                "$time" => v.as_str().map(|s| Ejson::Time(s.into())),
                "$set" => v.as_array().map(|a| Ejson::Set(a.clone())),
                "$ipv4_interface" => v.as_str().map(|s| Ejson::Ipv4Interface(s.into())),
                "$ipv6_interface" => v.as_str().map(|s| Ejson::Ipv6Interface(s.into())),
                _ => None,
            };
        }
        if m.len() == 2 && m.get("$type").and_then(Value::as_str) == Some("date") {
            return m
                .get("$value")
                .and_then(Value::as_str)
                .map(|s| Ejson::Date(s.into()));
        }
        None
    }

    /// The marker as the server encodes it.
    pub fn encode(&self) -> Value {
        let mut m = Map::new();
        match self {
            Ejson::DateTime(ms) => m.insert("$date".into(), (*ms).into()),
            Ejson::Date(d) => {
                m.insert("$type".into(), "date".into());
                m.insert("$value".into(), d.clone().into())
            }
            Ejson::Time(t) => m.insert("$time".into(), t.clone().into()),
            Ejson::Set(items) => m.insert("$set".into(), Value::Array(items.clone())),
            Ejson::Ipv4Interface(s) => m.insert("$ipv4_interface".into(), s.clone().into()),
            Ejson::Ipv6Interface(s) => m.insert("$ipv6_interface".into(), s.clone().into()),
        };
        Value::Object(m)
    }

    /// A readable rendering: ISO-8601 for datetimes, the plain string or list otherwise.
    pub fn humanized(&self) -> Value {
        match self {
            Ejson::DateTime(ms) => iso8601_utc(*ms).into(),
            Ejson::Date(s) | Ejson::Time(s) | Ejson::Ipv4Interface(s) | Ejson::Ipv6Interface(s) => {
                s.clone().into()
            }
            Ejson::Set(items) => Value::Array(items.iter().map(humanize).collect()),
        }
    }
}

/// A copy of `value` with every extended-JSON marker replaced by its readable form, for output
/// meant for people. Never send the result back to the server.
pub fn humanize(value: &Value) -> Value {
    if let Some(e) = Ejson::decode(value) {
        return e.humanized();
    }
    match value {
        Value::Array(a) => Value::Array(a.iter().map(humanize).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), humanize(v))).collect())
        }
        other => other.clone(),
    }
}

/// `2019-10-17T08:23:16.053Z` for a count of milliseconds since the Unix epoch.
pub fn iso8601_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_render_as_iso8601() {
        assert_eq!(iso8601_utc(1_571_300_596_053), "2019-10-17T08:23:16.053Z");
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn only_exact_markers_are_decoded() {
        assert_eq!(
            Ejson::decode(&json!({"$date": 5})),
            Some(Ejson::DateTime(5))
        );
        assert_eq!(Ejson::decode(&json!({"$date": 5, "x": 1})), None);
        assert_eq!(
            Ejson::decode(&json!({"$type": "date", "$value": "2024-01-02"})),
            Some(Ejson::Date("2024-01-02".into()))
        );
        assert_eq!(
            Ejson::decode(&json!({"$type": "other", "$value": "x"})),
            None
        );
    }

    #[test]
    fn markers_round_trip_and_humanize() {
        for v in [
            json!({"$date": 1_700_000_000_000_i64}),
            json!({"$type": "date", "$value": "2024-01-02"}),
            json!({"$time": "12:00:00"}),
            json!({"$set": [1, 2]}),
            json!({"$ipv4_interface": "10.0.0.1/24"}),
            json!({"$ipv6_interface": "fe80::1/64"}),
        ] {
            assert_eq!(Ejson::decode(&v).unwrap().encode(), v);
        }
        let job = json!({"id": 1, "time_started": {"$date": 0}, "tags": {"$set": ["a"]}});
        assert_eq!(
            humanize(&job),
            json!({"id": 1, "time_started": "1970-01-01T00:00:00.000Z", "tags": ["a"]})
        );
    }
}
