//! Finding and parsing compose files: YAML 1.2 (as docker compose reads it) into
//! order-preserving JSON, with the position of every value kept for error messages.
//!
//! Parsing rules, chosen to match what compose itself sees:
//! - YAML 1.2 booleans only: plain `on`, `yes`, `off`, `no` stay strings (compose reads YAML
//!   with go-yaml v3, which does the same for untyped values); quoted scalars are always strings.
//! - A plain number with a leading zero (`0022`, `0440`) is octal, as go-yaml (and so compose)
//!   reads it: `mode: 0440` is 288; quote it (`"0022"`) to keep the text.
//! - Anchors, aliases and merge keys (`<<:`) are expanded; duplicate keys are an error.
//! - The merge tags: a value tagged `!reset` is dropped from the file and its path recorded,
//!   a value tagged `!override` is kept and its path recorded ([`SourceFile::tagged`]); the
//!   merge of override files clears those paths in the files before ([`super::merge`]).
//! - Aliases may be used as often as real files need (compose-go has no alias/anchor ratio);
//!   the parser's other limits stay (250 000 values after expanding aliases, …), so a YAML
//!   bomb is refused, with an error that says so.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Spanned, Tagged};

use super::error::{ComposeError, Place, snippet};

/// The file names docker compose looks for, in its order.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// A merge tag of compose (compose-spec "Merge": reset and override).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeTag {
    /// `!reset`: the value is removed, here and in the files merged before.
    Reset,
    /// `!override`: the value replaces the one of the files merged before, unmerged.
    Override,
}

/// The override file names docker compose merges after the default file, in its order of
/// preference (the first one found is used).
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// Positions of one value: where it is used, and where its text is (differs for aliases and
/// merge keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// (line, column) where the value is referenced.
    pub referenced: (u64, u64),
    /// (line, column) where the value's text is defined.
    pub defined: (u64, u64),
}

/// One parsed compose (or override) file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as given or found.
    pub path: PathBuf,
    /// The raw text.
    pub text: String,
    /// The document.
    pub value: Value,
    /// The JSON pointers of values tagged `!reset` (dropped from `value`) or `!override`.
    pub tagged: Vec<(String, MergeTag)>,
    spans: HashMap<String, Span>,
}

/// Append a key to a JSON pointer (RFC 6901 escaping).
pub fn pointer_key(base: &str, key: &str) -> String {
    format!("{base}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Append an index to a JSON pointer.
pub fn pointer_index(base: &str, index: usize) -> String {
    format!("{base}/{index}")
}

/// A JSON pointer as a dotted compose path: `/services/db/ports/0` → `services.db.ports[0]`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

impl SourceFile {
    /// Where the value at `pointer` is: its definition (`defined`) or its use; falls back to
    /// the nearest ancestor with a known position, then to the bare file.
    pub fn place(&self, pointer: &str, defined: bool) -> Place {
        let mut p = pointer;
        loop {
            if let Some(s) = self.spans.get(p) {
                let (l, c) = if defined { s.defined } else { s.referenced };
                return Place::at(&self.path, l, c);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Place::file(&self.path),
            }
        }
    }

    /// Is there a value at `pointer`?
    pub fn has(&self, pointer: &str) -> bool {
        self.spans.contains_key(pointer)
    }

    /// The source line of `place` with a caret, for messages.
    pub fn snippet(&self, place: &Place) -> String {
        match place.position {
            Some((l, c)) => snippet(&self.text, l, c),
            None => String::new(),
        }
    }
}

/// The compose file of `dir`, by docker compose's default names.
pub fn find_default(dir: &Path) -> Result<PathBuf, ComposeError> {
    DEFAULT_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| ComposeError::NoComposeFile {
            dir: dir.to_path_buf(),
        })
}

/// The override file of `dir` that docker compose merges by default, if there is one.
pub fn find_override(dir: &Path) -> Option<PathBuf> {
    OVERRIDE_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Read a file as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, ComposeError> {
    std::fs::read_to_string(path).map_err(|source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Read and parse one compose file.
pub fn load_file(path: &Path) -> Result<SourceFile, ComposeError> {
    let text = read_text(path)?;
    parse(path, text)
}

/// Parse compose text; `path` names it in errors.
pub fn parse(path: &Path, text: String) -> Result<SourceFile, ComposeError> {
    let mut options = serde_saphyr::options::Options::default();
    options.strict_booleans = true;
    options.legacy_octal_numbers = true;
    options.with_snippet = false;
    let mut budget = serde_saphyr::Budget::default();
    // Files that share one anchor among many services (`<<: *defaults`) are normal.
    budget.enforce_alias_anchor_ratio = false;
    options.budget = Some(budget);
    let root: Spanned<Tagged<Node>> = match serde_saphyr::from_str_with_options(&text, options) {
        Ok(n) => n,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let place = Place::at(path, line, column);
            let mut message = strip_location_prefix(&e.to_string());
            if let Some(limit) = message.strip_prefix("budget breached: ") {
                message = format!(
                    "the document goes past the parser's safety limits ({limit}): aliases that expand to a huge document look like a YAML bomb; real compose files stay far below"
                );
            }
            return Err(ComposeError::Yaml {
                snippet: snippet(&text, line, column),
                place,
                message,
            });
        }
    };
    let mut spans = HashMap::new();
    let mut build = Build {
        spans: &mut spans,
        tagged: Vec::new(),
    };
    let value = into_value(root, String::new(), &mut build);
    let tagged = std::mem::take(&mut build.tagged);
    let value = value
        .map(|v| v.unwrap_or(Value::Null))
        .map_err(|(pointer, message)| {
            let place = spans
                .get(&pointer)
                .map(|s: &Span| Place::at(path, s.defined.0, s.defined.1))
                .unwrap_or_else(|| Place::file(path));
            ComposeError::Invalid { place, message }
        })?;
    match &value {
        Value::Object(_) => {}
        Value::Null => {
            return Err(ComposeError::Invalid {
                place: Place::file(path),
                message: "the file is empty: a compose file needs at least `services:`".into(),
            });
        }
        _ => {
            return Err(ComposeError::Invalid {
                place: Place::at(path, 1, 1),
                message: "a compose file must be a mapping (services:, volumes:, …)".into(),
            });
        }
    }
    Ok(SourceFile {
        path: path.to_path_buf(),
        text,
        value,
        tagged,
        spans,
    })
}

/// serde-saphyr prefixes messages with `error: line L column C: `; the place is shown apart.
fn strip_location_prefix(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg);
    let mut rest = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(after) = rest.strip_prefix("line ")
        && let Some(i) = after.find(": ")
        && after[..i].contains("column")
    {
        rest = &after[i + 2..];
    }
    if let Some(i) = rest.rfind(" at line ")
        && rest[i..].contains(", column ")
    {
        rest = &rest[..i];
    }
    rest.to_owned()
}

/// An untyped YAML node whose children carry their positions.
enum Node {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Seq(Vec<Spanned<Tagged<Node>>>),
    Map(Vec<(String, Spanned<Tagged<Node>>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::U64(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::I64)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        u64::try_from(v)
            .map(Node::U64)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        String::from_utf8(v.to_vec())
            .map(Node::Str)
            .map_err(|_| E::custom("binary values are not supported"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(x) = a.next_element::<Spanned<Tagged<Node>>>()? {
            items.push(x);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(k) = a.next_key::<String>()? {
            let v = a.next_value::<Spanned<Tagged<Node>>>()?;
            items.push((k, v));
        }
        Ok(Node::Map(items))
    }
}

/// What [`into_value`] collects besides the value.
struct Build<'a> {
    spans: &'a mut HashMap<String, Span>,
    tagged: Vec<(String, MergeTag)>,
}

/// The node as JSON; `None` for a value tagged `!reset` (dropped).
fn into_value(
    node: Spanned<Tagged<Node>>,
    pointer: String,
    b: &mut Build<'_>,
) -> Result<Option<Value>, (String, String)> {
    b.spans.insert(
        pointer.clone(),
        Span {
            referenced: (node.referenced.line(), node.referenced.column()),
            defined: (node.defined.line(), node.defined.column()),
        },
    );
    let Tagged(node, tag) = node.value;
    match tag.as_deref() {
        Some("!reset") => {
            b.tagged.push((pointer, MergeTag::Reset));
            return Ok(None);
        }
        Some("!override") => b.tagged.push((pointer.clone(), MergeTag::Override)),
        _ => {}
    }
    Ok(Some(match node {
        Node::Null => Value::Null,
        Node::Bool(v) => Value::Bool(v),
        Node::I64(i) => Value::from(i),
        Node::U64(u) => Value::from(u),
        Node::F64(f) => match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => {
                return Err((
                    pointer,
                    format!(
                        "{f} cannot be sent to TrueNAS (JSON has no NaN or infinity); quote it"
                    ),
                ));
            }
        },
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let p = pointer_index(&pointer, out.len());
                if let Some(v) = into_value(item, p, b)? {
                    out.push(v);
                }
            }
            Value::Array(out)
        }
        Node::Map(items) => {
            let mut out = Map::new();
            for (k, v) in items {
                let p = pointer_key(&pointer, &k);
                if let Some(v) = into_value(v, p, b)? {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<SourceFile, ComposeError> {
        parse(Path::new("compose.yaml"), text.to_owned())
    }

    #[test]
    fn strings_stay_strings() {
        let f = parse_str(
            "a: on\nb: \"on\"\nc: 0022\nd: \"0022\"\ne: 12345\nf: \"12345\"\ng: yes\nh: 1.5\ni: true\nj: ~\n",
        )
        .unwrap();
        assert_eq!(
            f.value,
            serde_json::json!({"a": "on", "b": "on", "c": 18, "d": "0022", "e": 12345,
                "f": "12345", "g": "yes", "h": 1.5, "i": true, "j": null})
        );
    }

    #[test]
    fn merge_keys_and_positions() {
        let f = parse_str("x: &d\n  r: 1\nservices:\n  a:\n    <<: *d\n    image: i\n").unwrap();
        assert_eq!(f.value["services"]["a"]["r"], 1);
        assert_eq!(
            f.place("/services/a/image", true).to_string(),
            "compose.yaml:6:12"
        );
        assert_eq!(
            f.place("/services/a/r", true).to_string(),
            "compose.yaml:2:6"
        );
        assert_eq!(
            f.place("/services/a/nope/deeper", false).to_string(),
            "compose.yaml:5:5"
        );
    }

    #[test]
    fn broken_yaml_names_the_place() {
        let e = parse_str("services:\n  web:\n    image: x\n     ports: [1]\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("compose.yaml:4:"), "{s}");
        assert!(s.contains("invalid YAML"), "{s}");
        assert!(s.contains("4 |      ports: [1]"), "{s}");
    }

    #[test]
    fn not_a_mapping_or_empty() {
        assert!(parse_str("").unwrap_err().to_string().contains("empty"));
        assert!(
            parse_str("- a\n")
                .unwrap_err()
                .to_string()
                .contains("mapping")
        );
        assert!(parse_str("a: 1\na: 2\n").is_err());
    }

    #[test]
    fn merge_tags_are_recorded_and_reset_values_dropped() {
        let f = parse_str(
            "services:\n  a:\n    ports: !reset []\n    volumes: !override [\"/x:/y\"]\n    environment:\n      KEY: !reset null\n      OTHER: v\n",
        )
        .unwrap();
        assert_eq!(
            f.value,
            serde_json::json!({"services": {"a": {"volumes": ["/x:/y"], "environment": {"OTHER": "v"}}}})
        );
        assert_eq!(
            f.tagged,
            vec![
                ("/services/a/ports".to_owned(), MergeTag::Reset),
                ("/services/a/volumes".to_owned(), MergeTag::Override),
                ("/services/a/environment/KEY".to_owned(), MergeTag::Reset),
            ]
        );
    }

    #[test]
    fn many_aliases_of_few_anchors_are_fine() {
        let mut text = String::from("x-common: &common\n  restart: always\nservices:\n");
        for i in 0..300 {
            text.push_str(&format!("  s{i}:\n    <<: *common\n    image: i\n"));
        }
        let f = parse_str(&text).unwrap();
        assert_eq!(f.value["services"]["s299"]["restart"], "always");
    }

    #[test]
    fn a_yaml_bomb_is_refused_with_a_reason() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let names = ["b", "c", "d", "e", "f", "g", "h"];
        let mut prev = "a";
        for n in names {
            text.push_str(&format!("{n}: &{n} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = n;
        }
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(e.contains("YAML bomb"), "{e}");
        assert!(e.starts_with("compose.yaml:"), "{e}");
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("/services/db/ports/0"), "services.db.ports[0]");
        assert_eq!(dotted(&pointer_key("/x", "a/b")), "x.a/b");
    }
}
