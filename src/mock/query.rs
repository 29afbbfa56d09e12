//! The query-filters / query-options engine of filterable methods (`docs/middleware.md` §6.3),
//! written once and used by `core.get_jobs`, `app.query` and `user.query`.
//!
//! Filters: `[field, op, value]` ANDed at the top level; ops `= != > >= < <= ~ in nin rin rnin
//! ^ !^ $ !$`, each also with a `C` prefix for case-insensitivity except `C~`; `["OR",
//! [branch, …]]` where a branch is a condition or a list of conditions (AND), nesting up to 3;
//! dot paths with `\.` escapes, list indexes and `*`; `field.$date` compares with an ISO-8601
//! string. Options: `select`, `order_by` (`-`, `nulls_first:`, `nulls_last:`), `offset`,
//! `limit` (≤ 10000, 0 = no limit), `count`, `get` (MatchNotFound when empty); `extra` is
//! read by the methods themselves.
//!
//! Guess: bad filters or options answer -32602 with the attribute `filters` / `options.<key>`
//! and messages of the mock's own wording (the real pydantic texts were not checked).

use std::cmp::Ordering;

use regex::Regex;
use serde_json::{Map, Value};

use super::error::MockError;
use crate::protocol::errno;

/// Run `[filters, options]` over `items`.
pub(crate) fn query(items: Vec<Value>, params: &[Value]) -> Result<Value, MockError> {
    let empty = Value::Array(Vec::new());
    let filters = match params.first() {
        None | Some(Value::Null) => &empty,
        Some(v) => v,
    };
    let options = match params.get(1) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("options", "Input should be a valid dictionary")),
    };
    filter_list(items, filters, &options)
}

fn bad(attr: &str, msg: impl Into<String>) -> MockError {
    MockError::invalid(Some(attr), msg, errno::EINVAL)
}

/// Filter, order, page and shape `items`.
pub(crate) fn filter_list(
    items: Vec<Value>,
    filters: &Value,
    options: &Map<String, Value>,
) -> Result<Value, MockError> {
    let Value::Array(filters) = filters else {
        return Err(bad("filters", "Input should be a valid list"));
    };
    let conds = filters
        .iter()
        .map(|f| parse_cond(f, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = Options::parse(options)?;
    let mut rows: Vec<Value> = items
        .into_iter()
        .filter(|item| conds.iter().all(|c| c.matches(item)))
        .collect();
    if opts.count {
        return Ok(Value::from(rows.len()));
    }
    for key in opts.order_by.iter().rev() {
        rows.sort_by(|a, b| key.compare(a, b));
    }
    let rows: Vec<Value> = rows
        .into_iter()
        .skip(opts.offset)
        .take(if opts.limit == 0 {
            usize::MAX
        } else {
            opts.limit
        })
        .map(|r| opts.select(r))
        .collect();
    if opts.get {
        return rows.into_iter().next().ok_or(MockError::MatchNotFound);
    }
    Ok(Value::Array(rows))
}

/// A compiled filter.
enum Cond {
    Leaf {
        path: Vec<String>,
        op: Op,
        case_insensitive: bool,
        value: Value,
        regex: Option<Regex>,
    },
    /// Any branch matches; each branch is an AND of conditions.
    Or(Vec<Vec<Cond>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Re,
    In,
    Nin,
    Rin,
    Rnin,
    Starts,
    NotStarts,
    Ends,
    NotEnds,
}

fn parse_op(s: &str) -> Option<(Op, bool)> {
    let (ci, s) = match s.strip_prefix('C') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let op = match s {
        "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        "<=" => Op::Le,
        "~" if !ci => Op::Re,
        "in" => Op::In,
        "nin" => Op::Nin,
        "rin" => Op::Rin,
        "rnin" => Op::Rnin,
        "^" => Op::Starts,
        "!^" => Op::NotStarts,
        "$" => Op::Ends,
        "!$" => Op::NotEnds,
        _ => return None,
    };
    Some((op, ci))
}

fn parse_cond(f: &Value, depth: usize) -> Result<Cond, MockError> {
    let Value::Array(parts) = f else {
        return Err(bad("filters", "Filter must be a list"));
    };
    if parts.len() == 2 && parts[0] == "OR" {
        if depth >= 3 {
            return Err(bad("filters", "Query filters nested too deeply"));
        }
        let Value::Array(branches) = &parts[1] else {
            return Err(bad("filters", "OR filter must be a list of filters"));
        };
        let mut out = Vec::new();
        for b in branches {
            // A branch is either one condition or a list of conditions.
            let is_list_of_conds =
                matches!(b, Value::Array(x) if x.first().is_some_and(Value::is_array));
            if is_list_of_conds {
                let Value::Array(list) = b else { continue };
                out.push(
                    list.iter()
                        .map(|c| parse_cond(c, depth + 1))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            } else {
                out.push(vec![parse_cond(b, depth + 1)?]);
            }
        }
        return Ok(Cond::Or(out));
    }
    if parts.len() != 3 {
        return Err(bad("filters", "Filter must have 3 elements"));
    }
    let Value::String(field) = &parts[0] else {
        return Err(bad("filters", "Filter field must be a string"));
    };
    let Some((op, ci)) = parts[1].as_str().and_then(parse_op) else {
        return Err(bad(
            "filters",
            format!("Invalid operation: {}", parts[1].as_str().unwrap_or("?")),
        ));
    };
    let value = parts[2].clone();
    if matches!(op, Op::In | Op::Nin) && !value.is_array() && !value.is_string() {
        return Err(bad("filters", "Value for 'in'/'nin' must be a list"));
    }
    let regex = if op == Op::Re {
        let pat = value
            .as_str()
            .ok_or_else(|| bad("filters", "Regular expression must be a string"))?;
        // Python `re.match`: anchored at the start.
        Some(
            Regex::new(&format!("^(?:{pat})"))
                .map_err(|e| bad("filters", format!("Invalid regex: {e}")))?,
        )
    } else {
        None
    };
    Ok(Cond::Leaf {
        path: split_path(field),
        op,
        case_insensitive: ci,
        value,
        regex,
    })
}

/// Split a dot path, honouring `\.` escapes.
pub(crate) fn split_path(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'.') {
            cur.push('.');
            chars.next();
        } else if c == '.' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Every value reached by `path` (several with `*`).
fn resolve<'a>(v: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    let Some((head, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(head) {
                resolve(x, rest, out);
            }
        }
        Value::Array(a) => {
            if head == "*" {
                for x in a {
                    resolve(x, rest, out);
                }
            } else if let Ok(i) = head.parse::<usize>()
                && let Some(x) = a.get(i)
            {
                resolve(x, rest, out);
            }
        }
        _ => {}
    }
}

impl Cond {
    fn matches(&self, item: &Value) -> bool {
        match self {
            Cond::Or(branches) => branches.iter().any(|b| b.iter().all(|c| c.matches(item))),
            Cond::Leaf {
                path,
                op,
                case_insensitive,
                value,
                regex,
            } => {
                let mut found = Vec::new();
                resolve(item, path, &mut found);
                let date_path = path.last().is_some_and(|l| l == "$date");
                if found.is_empty() {
                    // A missing key compares as null.
                    return leaf(
                        &Value::Null,
                        *op,
                        *case_insensitive,
                        value,
                        regex.as_ref(),
                        false,
                    );
                }
                found
                    .into_iter()
                    .any(|x| leaf(x, *op, *case_insensitive, value, regex.as_ref(), date_path))
            }
        }
    }
}

fn fold(v: &Value, ci: bool) -> Value {
    match v {
        Value::String(s) if ci => Value::String(s.to_lowercase()),
        Value::Array(a) if ci => Value::Array(a.iter().map(|x| fold(x, ci)).collect()),
        other => other.clone(),
    }
}

fn leaf(x: &Value, op: Op, ci: bool, want: &Value, re: Option<&Regex>, date: bool) -> bool {
    let mut want = fold(want, ci);
    let x = fold(x, ci);
    if date && let Some(ms) = want.as_str().and_then(parse_iso8601_ms) {
        want = Value::from(ms);
    }
    match op {
        Op::Eq => loose_eq(&x, &want),
        Op::Ne => !loose_eq(&x, &want),
        Op::Gt => compare(&x, &want) == Some(Ordering::Greater),
        Op::Ge => matches!(
            compare(&x, &want),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::Lt => compare(&x, &want) == Some(Ordering::Less),
        Op::Le => matches!(compare(&x, &want), Some(Ordering::Less | Ordering::Equal)),
        Op::Re => match (&x, re) {
            (Value::String(s), Some(re)) => re.is_match(s),
            _ => false,
        },
        Op::In => contains(&want, &x),
        Op::Nin => !contains(&want, &x),
        Op::Rin => !x.is_null() && contains(&x, &want),
        Op::Rnin => !x.is_null() && !contains(&x, &want),
        Op::Starts | Op::NotStarts | Op::Ends | Op::NotEnds => {
            let (Value::String(s), Value::String(w)) = (&x, &want) else {
                return false;
            };
            match op {
                Op::Starts => s.starts_with(w.as_str()),
                Op::NotStarts => !s.starts_with(w.as_str()),
                Op::Ends => s.ends_with(w.as_str()),
                _ => !s.ends_with(w.as_str()),
            }
        }
    }
}

/// Python `==` on JSON: numbers compare by value.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// `needle in haystack` for a list or a string.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Array(a), n) => a.iter().any(|x| loose_eq(x, n)),
        (Value::String(s), Value::String(n)) => s.contains(n.as_str()),
        _ => false,
    }
}

/// Ordering of comparable values (numbers with numbers, strings with strings…); None when a
/// Python comparison would raise (the real filter treats that as no match).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]` → ms since the epoch (UTC).
pub(crate) fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset_ms) = split_offset(time)?;
    let mut t = clock.split(':');
    let h: i64 = t
        .next()
        .filter(|x| !x.is_empty())
        .map_or(Some(0), |x| x.parse().ok())?;
    let mi: i64 = t.next().map_or(Some(0), |x| x.parse().ok())?;
    let (sec, frac) = match t.next() {
        Some(x) => match x.split_once('.') {
            Some((a, b)) => (
                a.parse::<i64>().ok()?,
                format!("{b:0<3}")[..3].parse::<i64>().ok()?,
            ),
            None => (x.parse().ok()?, 0),
        },
        None => (0, 0),
    };
    let days = days_from_civil(y, mo, day);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000 + frac) - offset_ms)
}

fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(t) = time.strip_suffix('Z') {
        return Some((t, 0));
    }
    if let Some(i) = time.rfind(['+', '-']) {
        let (t, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let mut parts = off[1..].split(':');
        let oh: i64 = parts.next()?.parse().ok()?;
        let om: i64 = parts.next().map_or(Some(0), |x| x.parse().ok())?;
        return Some((t, sign * (oh * 3600 + om * 60) * 1000));
    }
    Some((time, 0))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct OrderKey {
    path: Vec<String>,
    reverse: bool,
    nulls_first: Option<bool>,
}

impl OrderKey {
    fn parse(s: &str) -> OrderKey {
        let (nulls_first, s) = if let Some(r) = s.strip_prefix("nulls_first:") {
            (Some(true), r)
        } else if let Some(r) = s.strip_prefix("nulls_last:") {
            (Some(false), r)
        } else {
            (None, s)
        };
        let (reverse, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        OrderKey {
            path: split_path(s),
            reverse,
            nulls_first,
        }
    }

    fn compare(&self, a: &Value, b: &Value) -> Ordering {
        let get = |v: &Value| {
            let mut out = Vec::new();
            resolve(v, &self.path, &mut out);
            out.first().map_or(Value::Null, |x| (*x).clone())
        };
        let (x, y) = (get(a), get(b));
        match (x.is_null(), y.is_null(), self.nulls_first) {
            (true, true, _) => return Ordering::Equal,
            (true, false, Some(first)) => {
                return if first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            (false, true, Some(first)) => {
                return if first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            _ => {}
        }
        let ord = compare(&x, &y).unwrap_or_else(|| rank(&x).cmp(&rank(&y)));
        if self.reverse { ord.reverse() } else { ord }
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

struct Options {
    select: Vec<(Vec<String>, String)>,
    order_by: Vec<OrderKey>,
    offset: usize,
    limit: usize,
    count: bool,
    get: bool,
}

impl Options {
    fn parse(m: &Map<String, Value>) -> Result<Options, MockError> {
        let uint = |k: &str| -> Result<usize, MockError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    bad(
                        &format!("options.{k}"),
                        "Input should be greater than or equal to 0",
                    )
                }),
            }
        };
        let boolean = |k: &str| -> Result<bool, MockError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(bad(
                    &format!("options.{k}"),
                    "Input should be a valid boolean",
                )),
            }
        };
        let offset = uint("offset")?;
        let limit = uint("limit")?;
        if limit > 10_000 {
            return Err(bad(
                "options.limit",
                "Input should be less than or equal to 10000",
            ));
        }
        let get = boolean("get")?;
        if get && (limit > 1 || offset > 0) {
            return Err(bad("options.get", "Invalid options combination for `get`"));
        }
        let strings = |k: &str| -> Result<Vec<Value>, MockError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(_) => Err(bad(&format!("options.{k}"), "Input should be a valid list")),
            }
        };
        let order_by = strings("order_by")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(OrderKey::parse)
                    .ok_or_else(|| bad("options.order_by", "Input should be a valid string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let select = strings("select")?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok((split_path(s), s.clone())),
                Value::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                    (Value::String(p), Value::String(alias)) => Ok((split_path(p), alias.clone())),
                    _ => Err(bad("options.select", "Invalid select entry")),
                },
                _ => Err(bad("options.select", "Invalid select entry")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Options {
            select,
            order_by,
            offset,
            limit,
            count: boolean("count")?,
            get,
        })
    }

    fn select(&self, row: Value) -> Value {
        if self.select.is_empty() {
            return row;
        }
        let mut out = Map::new();
        for (path, alias) in &self.select {
            let mut found = Vec::new();
            resolve(&row, path, &mut found);
            let Some(v) = found.first() else { continue };
            if path.len() > 1 && alias.contains('.') && *alias == path.join(".") {
                // A plain nested path keeps its nesting.
                insert_nested(&mut out, path, (*v).clone());
            } else {
                out.insert(alias.clone(), (*v).clone());
            }
        }
        Value::Object(out)
    }
}

fn insert_nested(m: &mut Map<String, Value>, path: &[String], v: Value) {
    match path {
        [] => {}
        [last] => {
            m.insert(last.clone(), v);
        }
        [head, rest @ ..] => {
            let e = m
                .entry(head.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = e {
                insert_nested(inner, rest, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<Value> {
        vec![
            json!({"id": 1, "name": "alpha", "state": "RUNNING", "tags": ["a", "b"], "t": {"$date": 1_000}, "n": null}),
            json!({"id": 2, "name": "Beta", "state": "SUCCESS", "tags": ["b"], "t": {"$date": 2_000}, "n": 5}),
            json!({"id": 3, "name": "gamma", "state": "FAILED", "tags": [], "t": {"$date": 3_000}, "n": 1}),
        ]
    }

    fn ids(v: Value) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    }

    fn q(filters: Value, options: Value) -> Result<Value, MockError> {
        query(rows(), &[filters, options])
    }

    #[test]
    fn operators() {
        let cases = [
            (json!([["id", "=", 2]]), vec![2]),
            (json!([["id", "!=", 2]]), vec![1, 3]),
            (json!([["id", ">", 1], ["id", "<=", 3]]), vec![2, 3]),
            (json!([["name", "~", "[ab]"]]), vec![1]),
            (json!([["name", "~", "eta"]]), vec![]),
            (json!([["name", "C^", "b"]]), vec![2]),
            (json!([["name", "$", "ma"]]), vec![3]),
            (json!([["name", "!$", "ma"]]), vec![1, 2]),
            (json!([["state", "in", ["RUNNING", "FAILED"]]]), vec![1, 3]),
            (json!([["state", "nin", ["RUNNING"]]]), vec![2, 3]),
            (json!([["tags", "rin", "b"]]), vec![1, 2]),
            (json!([["tags", "rnin", "a"]]), vec![2, 3]),
            (json!([["name", "C=", "BETA"]]), vec![2]),
            (json!([["tags.*", "=", "a"]]), vec![1]),
            (json!([["tags.0", "=", "b"]]), vec![2]),
            (
                json!([["t.$date", ">", "1970-01-01T00:00:01.500Z"]]),
                vec![2, 3],
            ),
            (
                json!([["OR", [["id", "=", 1], [["id", ">", 1], ["n", "=", 1]]]]]),
                vec![1, 3],
            ),
            (json!([["n", "=", null]]), vec![1]),
            (json!([["missing", "=", null]]), vec![1, 2, 3]),
        ];
        for (f, want) in cases {
            assert_eq!(ids(q(f.clone(), json!({})).unwrap()), want, "{f}");
        }
    }

    #[test]
    fn options() {
        assert_eq!(
            ids(q(json!([]), json!({"order_by": ["-id"]})).unwrap()),
            vec![3, 2, 1]
        );
        assert_eq!(
            ids(q(json!([]), json!({"order_by": ["nulls_first:n"]})).unwrap()),
            vec![1, 3, 2]
        );
        assert_eq!(
            ids(q(json!([]), json!({"order_by": ["nulls_last:n"]})).unwrap()),
            vec![3, 2, 1]
        );
        assert_eq!(
            ids(q(json!([]), json!({"offset": 1, "limit": 1})).unwrap()),
            vec![2]
        );
        assert_eq!(q(json!([]), json!({"count": true})).unwrap(), json!(3));
        assert_eq!(
            q(
                json!([["id", "=", 3]]),
                json!({"get": true, "select": ["name", ["state", "s"]]})
            )
            .unwrap(),
            json!({"name": "gamma", "s": "FAILED"})
        );
        assert_eq!(
            q(json!([["id", "=", 9]]), json!({"get": true})),
            Err(MockError::MatchNotFound)
        );
        assert!(q(json!([]), json!({"get": true, "limit": 2})).is_err());
        assert!(q(json!([["id", "??", 1]]), json!({})).is_err());
        assert!(q(json!([["name", "C~", "x"]]), json!({})).is_err());
        assert!(q(json!("nope"), json!({})).is_err());
        assert!(q(json!([["id"]]), json!({})).is_err());
    }

    #[test]
    fn iso_dates() {
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_iso8601_ms("2025-01-01"), Some(1_735_689_600_000));
        assert_eq!(
            parse_iso8601_ms("2025-01-01T01:00:00+01:00"),
            Some(1_735_689_600_000)
        );
        assert_eq!(parse_iso8601_ms("garbage"), None);
    }

    #[test]
    fn escaped_dots() {
        assert_eq!(
            split_path(r"a\.b.c"),
            vec!["a.b".to_string(), "c".to_string()]
        );
    }
}
