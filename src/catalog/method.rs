//! One method of the catalog and its positional arguments.

use serde_json::{Map, Value};

use super::schema;

/// How deep [`ArgInfo::fields`] goes into nested objects.
const MAX_FIELD_DEPTH: usize = 8;

/// One method as `core.get_methods` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodInfo {
    /// Full name, e.g. `app.create`.
    pub name: String,
    /// The docstring, if any.
    pub description: Option<String>,
    /// The short description midcli shows (usually the docstring's first sentence).
    pub cli_description: Option<String>,
    /// A job method: the call returns a job id (`docs/middleware.md` §4).
    pub job: bool,
    /// A query method: accepts `(filters, options)`.
    pub filterable: bool,
    /// Callable before login.
    pub no_auth_required: bool,
    /// Roles that authorize the call, e.g. `APPS_WRITE`.
    pub roles: Vec<String>,
    /// One JSON schema per positional argument.
    pub accepts: Vec<Value>,
    /// The schema of the result (a one-element list).
    pub returns: Vec<Value>,
    /// The entry as received, except that the keys lifted into the fields above
    /// (`description`, `cli_description`, `roles`, `accepts`, `returns`) hold `null` when their
    /// value moved into the field (so the big schemas are not kept twice); empty or odd values
    /// stay here. Use [`MethodInfo::to_value`] for the full entry.
    pub raw: Value,
}

/// One positional argument, or one field of an object argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgInfo {
    /// `_name_` of the argument or property name of the field.
    pub name: String,
    /// Short type, e.g. `string`, `integer | null`, `list[object]`.
    pub type_name: String,
    /// Must be given.
    pub required: bool,
    /// The schema's default, if it states one.
    pub default: Option<Value>,
    /// The schema's description, if any.
    pub description: Option<String>,
    /// Human notes on constraints: `pattern '^…$'`, `min length 1`, `>= 0`, `one of …`.
    pub constraints: Vec<String>,
    /// The properties of an object (or `Optional[object]`), recursively, in `_attrs_order_`.
    pub fields: Vec<ArgInfo>,
}

impl ArgInfo {
    /// Describe `schema` under `name`.
    fn from_schema(name: String, schema: &Value, required: bool, depth: usize) -> ArgInfo {
        let fields = match schema::object_with_properties(schema) {
            Some(obj) if depth < MAX_FIELD_DEPTH => schema::properties(obj)
                .into_iter()
                .map(|(k, prop)| {
                    let req = schema::property_required(obj, k, prop) != Some(false);
                    ArgInfo::from_schema(k.to_owned(), prop, req, depth + 1)
                })
                .collect(),
            _ => Vec::new(),
        };
        ArgInfo {
            name,
            type_name: schema::type_name(schema),
            required,
            default: schema.get("default").cloned(),
            description: schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            constraints: schema::constraints(schema),
            fields,
        }
    }
}

/// Move `map[key]` out (leaving `null`) if `lift` accepts it, so that a value is kept only once
/// and never copied. Values that are empty or of an unexpected type stay in the map, which is what
/// lets [`MethodInfo::to_value`] restore the original exactly (`null` stays `null`, `[]` stays
/// `[]`).
fn take_if(map: &mut Map<String, Value>, key: &str, lift: fn(&Value) -> bool) -> Option<Value> {
    let slot = map.get_mut(key).filter(|v| lift(v))?;
    Some(slot.take())
}

fn is_text(v: &Value) -> bool {
    v.is_string()
}

fn is_list(v: &Value) -> bool {
    v.as_array().is_some_and(|a| !a.is_empty())
}

fn is_names(v: &Value) -> bool {
    is_list(v) && v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
}

/// The strings in `v` (a string, or the strings of an array).
fn strings(v: Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .filter_map(|r| match r {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn list(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

impl MethodInfo {
    /// Build from one `core.get_methods` entry. Missing or mistyped keys read as empty/false;
    /// an entry that is not an object gives a method with no metadata.
    pub fn from_entry(name: impl Into<String>, entry: Value) -> MethodInfo {
        let mut map = match entry {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let text = |v: Option<Value>| v.and_then(|v| strings(v).pop());
        let description = text(take_if(&mut map, "description", is_text));
        let cli_description = text(take_if(&mut map, "cli_description", is_text));
        // Roles that are not all strings stay in `raw`; the field keeps the strings among them.
        let roles = match take_if(&mut map, "roles", is_names) {
            Some(v) => strings(v),
            None => map.get("roles").cloned().map(strings).unwrap_or_default(),
        };
        let accepts = list(take_if(&mut map, "accepts", is_list));
        let returns = list(take_if(&mut map, "returns", is_list));
        let flag = |k: &str| map.get(k).and_then(Value::as_bool).unwrap_or(false);
        MethodInfo {
            name: name.into(),
            description,
            cli_description,
            job: flag("job"),
            filterable: flag("filterable"),
            no_auth_required: flag("no_auth_required"),
            roles,
            accepts,
            returns,
            raw: Value::Object(map),
        }
    }

    /// The full entry, as `core.get_methods` returns it: [`MethodInfo::raw`] with the lifted
    /// values put back in place (a field set by hand on an entry that lacked the key is added).
    pub fn to_value(&self) -> Value {
        let mut map = match &self.raw {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let text = |t: &Option<String>| t.clone().map(Value::String);
        let list = |l: &[Value]| (!l.is_empty()).then(|| Value::Array(l.to_vec()));
        for (key, value) in [
            ("description", text(&self.description)),
            ("cli_description", text(&self.cli_description)),
            (
                "roles",
                list(
                    &self
                        .roles
                        .iter()
                        .cloned()
                        .map(Value::String)
                        .collect::<Vec<_>>(),
                ),
            ),
            ("accepts", list(&self.accepts)),
            ("returns", list(&self.returns)),
        ] {
            // Fill only placeholders (and keys the entry lacked): odd originals stay as they were.
            if let Some(v) = value
                && map.get(key).is_none_or(Value::is_null)
            {
                map.insert(key.to_owned(), v);
            }
        }
        Value::Object(map)
    }

    /// One line: `cli_description`, else the description's first line (up to its first sentence).
    pub fn summary(&self) -> String {
        if let Some(c) = self.cli_description.as_deref().map(str::trim)
            && !c.is_empty()
        {
            return first_line(c);
        }
        let Some(d) = self.description.as_deref().map(str::trim) else {
            return String::new();
        };
        let line = first_line(d);
        match sentence_end(&line) {
            Some(i) => line[..=i].to_owned(),
            None => line,
        }
    }

    /// One [`ArgInfo`] per positional argument, with object fields.
    pub fn args(&self) -> Vec<ArgInfo> {
        self.accepts
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ArgInfo::from_schema(schema::arg_name(s, i), s, schema::is_required_arg(s), 0)
            })
            .collect()
    }

    /// The result's type, e.g. `object`, `list[object]`, `string | null`, `"pong"`; `any` when
    /// the method has no `returns` schema.
    pub fn returns_type(&self) -> String {
        self.returns
            .first()
            .map_or_else(|| "any".to_owned(), schema::type_name)
    }

    /// `name(arg: type, optional?: type) -> result`, with `  [job]` for job methods.
    pub fn signature(&self) -> String {
        let args: Vec<String> = self
            .accepts
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let opt = if schema::is_required_arg(s) { "" } else { "?" };
                format!("{}{opt}: {}", schema::arg_name(s, i), schema::type_name(s))
            })
            .collect();
        let job = if self.job { "  [job]" } else { "" };
        format!(
            "{}({}) -> {}{job}",
            self.name,
            args.join(", "),
            self.returns_type()
        )
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// The byte index of the `.` that ends the first sentence of `line` (a `. ` outside
/// backticks: `` `a.b. c` `` is code, not a sentence end).
fn sentence_end(line: &str) -> Option<usize> {
    let mut in_code = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'`' => in_code = !in_code,
            b'.' if !in_code && bytes.get(i + 1) == Some(&b' ') => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod sentence_tests {
    use super::sentence_end;

    #[test]
    fn a_sentence_ends_at_a_dot_outside_backticks() {
        assert_eq!(sentence_end("Start it. Then more."), Some(8));
        let s = "Set `options. extra` to true. Then more.";
        assert_eq!(
            &s[..=sentence_end(s).unwrap()],
            "Set `options. extra` to true."
        );
        assert_eq!(sentence_end("No end `a. b`"), None);
        assert_eq!(sentence_end(""), None);
    }
}
