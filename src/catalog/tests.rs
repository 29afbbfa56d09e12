//! Tests against the bundled 25.04 dump.

use serde_json::{Value, json};

use super::*;

fn method(name: &str) -> &'static MethodInfo {
    Catalog::bundled()
        .get(name)
        .unwrap_or_else(|| panic!("{name} is in the bundled catalog"))
}

/// `validate_params` as `(attribute, message, errno)` triples; empty when valid.
fn errors(name: &str, params: Value) -> Vec<(String, String, i64)> {
    let params = params.as_array().cloned().unwrap_or_default();
    match validate_params(method(name), &params) {
        Ok(()) => Vec::new(),
        Err(es) => es
            .into_iter()
            .map(|e| (e.attribute.unwrap_or_default(), e.message, e.errno))
            .collect(),
    }
}

fn one(attr: &str, msg: &str) -> Vec<(String, String, i64)> {
    vec![(attr.to_owned(), msg.to_owned(), 22)]
}

// ---- catalog -------------------------------------------------------------------------------

#[test]
fn bundled_has_771_methods_sorted() {
    let c = Catalog::bundled();
    assert_eq!(c.len(), 771);
    assert!(!c.is_empty());
    let names: Vec<&str> = c.iter().map(|m| m.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[test]
fn the_bundled_catalog_parses_only_what_is_looked_up() {
    let c = Catalog::prepared();
    assert_eq!((c.len(), c.parsed()), (771, 0));
    assert!(c.contains("app.create") && !c.contains("app.creat"));
    assert_eq!(c.names().filter(|n| n.starts_with("app.")).count(), 40);
    assert_eq!(suggestions(&c, "app.creat"), ["app.create"]);
    assert_eq!(c.matching_names("app.*").count(), 40);
    assert!(super::suggest::event_known(&c, "app.query:{\"x\": 1}"));
    assert_eq!(
        c.parsed(),
        0,
        "names, suggestions, completion and event names parse nothing"
    );
    let m = c.get("app.create").expect("app.create");
    assert!(m.job && !m.accepts.is_empty());
    assert_eq!(c.get("app.create"), Some(m));
    assert_eq!(c.parsed(), 1);
    assert_eq!(c.matching("core.pi*").count(), 2);
    assert_eq!(c.parsed(), 3, "matching parses the matches only");
    assert_eq!(c.iter().count(), 771);
    assert_eq!(c.parsed(), 771);
}

#[test]
fn matching_substring_and_glob() {
    let c = Catalog::bundled();
    let apps: Vec<&str> = c.matching("app.*").map(|m| m.name.as_str()).collect();
    assert!(apps.contains(&"app.create"));
    assert!(apps.contains(&"app.image.query"));
    assert!(apps.iter().all(|n| n.starts_with("app.")));
    let queries: Vec<&str> = c.matching("*.query").map(|m| m.name.as_str()).collect();
    assert!(queries.contains(&"user.query"));
    assert!(queries.iter().all(|n| n.ends_with(".query")));
    assert_eq!(
        c.matching("core.pi*")
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["core.ping", "core.ping_remote"]
    );
    assert!(c.matching("ping_rem").any(|m| m.name == "core.ping_remote"));
    assert_eq!(c.matching("no-such-thing").count(), 0);
    assert_eq!(c.matching("*").count(), 771);
    assert_eq!(c.matching("core.ping").count(), 2); // substring
    assert_eq!(c.matching("user.*.x*y").count(), 0);
}

#[test]
fn glob_edge_cases() {
    assert!(glob_match("a*b*c", "abc"));
    assert!(glob_match("a*b*c", "axxbyyc"));
    assert!(!glob_match("a*b*c", "axxbyy"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("a*a", "a")); // prefix and suffix must not overlap
    assert!(glob_match("**", "x"));
}

#[test]
fn round_trip_to_value_is_the_dump() {
    let gz = BUNDLED_GZ;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut json)
        .expect("gunzip");
    let original: Value = serde_json::from_slice(&json).expect("json");
    let again = Catalog::bundled().to_value();
    // Value equality ignores object key order; compare the text to check the order too, and
    // avoid printing megabytes on failure.
    assert!(again == original, "to_value differs from the dump");
    let (a, b) = (again.to_string(), original.to_string());
    assert!(a.len() == b.len(), "serialized sizes differ");
    let rebuilt = Catalog::from_value(again).expect("rebuild");
    assert!(&rebuilt == Catalog::bundled(), "rebuilt catalog differs");
}

#[test]
fn from_value_is_lenient() {
    let c = Catalog::from_value(json!({
        "x.bare": {},
        "x.odd": 5,
        "x.partial": {"job": true, "roles": ["A", 1], "accepts": [{"type": "integer"}]},
    }))
    .expect("object");
    assert_eq!(c.len(), 3);
    let p = c.get("x.partial").expect("present");
    assert!(p.job);
    assert_eq!(p.roles, ["A"]);
    assert_eq!(p.signature(), "x.partial(arg0?: integer) -> any  [job]");
    assert_eq!(validate_params(p, &[]), Ok(()));
    let bare = c.get("x.bare").expect("present");
    assert_eq!(bare.summary(), "");
    assert_eq!(bare.to_value(), json!({}));
    assert!(matches!(
        Catalog::from_value(json!([1])),
        Err(CatalogError::NotAnObject { found: "array" })
    ));
    assert!(Catalog::from_gzip(b"not gzip").is_err());
}

// ---- docs ----------------------------------------------------------------------------------

#[test]
fn core_ping_docs() {
    let m = method("core.ping");
    assert_eq!(m.summary(), "Utility method which just returns \"pong\"");
    assert_eq!(m.returns_type(), "\"pong\"");
    assert_eq!(m.signature(), "core.ping() -> \"pong\"");
    assert!(m.args().is_empty());
}

#[test]
fn app_create_args() {
    let m = method("app.create");
    assert!(m.job);
    assert_eq!(
        m.signature(),
        "app.create(app_create: object) -> object  [job]"
    );
    let args = m.args();
    assert_eq!(args.len(), 1);
    assert_eq!(args[0].name, "app_create");
    assert!(args[0].required);
    let app_name = args[0]
        .fields
        .iter()
        .find(|f| f.name == "app_name")
        .expect("app_name field");
    assert!(app_name.required);
    assert_eq!(app_name.type_name, "string");
    assert_eq!(
        app_name.constraints,
        [
            "pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'",
            "min length 1",
            "max length 40"
        ]
    );
    let train = args[0]
        .fields
        .iter()
        .find(|f| f.name == "train")
        .expect("train");
    assert!(!train.required);
    assert_eq!(train.default, Some(json!("stable")));
    let catalog_app = args[0]
        .fields
        .iter()
        .find(|f| f.name == "catalog_app")
        .expect("catalog_app");
    assert_eq!(catalog_app.type_name, "string | null");
}

#[test]
fn user_update_two_args() {
    let m = method("user.update");
    let args = m.args();
    assert_eq!(args.len(), 2);
    assert_eq!(args[0].name, "id");
    assert_eq!(args[0].type_name, "integer");
    assert!(args[0].required);
    assert_eq!(args[1].name, "user_update");
    assert!(args[1].fields.iter().any(|f| f.name == "username"));
    assert!(
        m.signature()
            .starts_with("user.update(id: integer, user_update")
    );
}

#[test]
fn query_signature_has_optional_args() {
    let m = method("user.query");
    assert!(m.filterable);
    assert!(
        m.signature()
            .starts_with("user.query(filters?: list, options?: object) -> "),
        "{}",
        m.signature()
    );
}

#[test]
fn every_method_renders_and_validates_empty_without_panic() {
    for m in Catalog::bundled().iter() {
        let doc = render_doc(m);
        assert!(doc.starts_with(&m.name), "{}", m.name);
        assert!(!doc.contains('\u{1b}'), "ANSI escape in {}", m.name);
        let _ = m.summary();
        let _ = m.returns_type();
        assert_eq!(m.args().len(), m.accepts.len());
        let _ = validate_params(m, &[]);
        // Garbage of every kind in every position must not panic either.
        for junk in [
            json!(null),
            json!(1.5),
            json!("x"),
            json!([{}]),
            json!({"a": [1]}),
        ] {
            let params = vec![junk; m.accepts.len()];
            let _ = validate_params(m, &params);
        }
    }
}

#[test]
fn every_summary_is_one_line() {
    for m in Catalog::bundled().iter() {
        assert!(!m.summary().contains('\n'), "{}", m.name);
    }
}

#[test]
fn doc_snapshot_core_ping() {
    insta::assert_snapshot!(render_doc(method("core.ping")));
}

#[test]
fn doc_snapshot_app_create() {
    insta::assert_snapshot!(render_doc(method("app.create")));
}

#[test]
fn doc_snapshot_user_update() {
    insta::assert_snapshot!(render_doc(method("user.update")));
}

// ---- validator -----------------------------------------------------------------------------

#[test]
fn valid_calls_pass() {
    assert_eq!(errors("core.ping", json!([])), []);
    assert_eq!(
        errors(
            "app.create",
            json!([{"app_name": "plex", "catalog_app": "plex"}])
        ),
        []
    );
    assert_eq!(
        errors(
            "app.create",
            json!([{"app_name": "a", "catalog_app": null}])
        ),
        []
    );
    assert_eq!(
        errors("user.update", json!([1, {"full_name": "X", "group": null}])),
        []
    );
    assert_eq!(
        errors("user.update", json!([1, {"userns_idmap": "DIRECT"}])),
        []
    );
    assert_eq!(
        errors("user.update", json!([1, {"userns_idmap": 1000}])),
        []
    );
    assert_eq!(errors("user.query", json!([])), []);
    assert_eq!(
        errors(
            "user.query",
            json!([[["username", "=", "root"]], {"get": true}])
        ),
        []
    );
}

#[test]
fn pattern_mismatch() {
    assert_eq!(
        errors("app.create", json!([{"app_name": "Bad_Name"}])),
        one(
            "app_create.app_name",
            "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'"
        )
    );
}

#[test]
fn string_lengths() {
    assert_eq!(
        errors("app.create", json!([{"app_name": ""}])),
        vec![
            (
                "app_create.app_name".to_owned(),
                "String should have at least 1 character".to_owned(),
                22
            ),
            (
                "app_create.app_name".to_owned(),
                "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'".to_owned(),
                22
            ),
        ]
    );
    assert_eq!(
        errors("app.create", json!([{"app_name": "a".repeat(41)}])),
        one(
            "app_create.app_name",
            "String should have at most 40 characters"
        )
    );
}

#[test]
fn extra_inputs() {
    assert_eq!(
        errors("user.update", json!([1, {"bogus": 1}])),
        one("user_update.bogus", "Extra inputs are not permitted")
    );
}

#[test]
fn missing_required() {
    assert_eq!(
        errors("user.update", json!([])),
        vec![
            ("id".to_owned(), "Field required".to_owned(), 22),
            ("user_update".to_owned(), "Field required".to_owned(), 22),
        ]
    );
    assert_eq!(
        errors("app.create", json!([{}])),
        one("app_create.app_name", "Field required")
    );
    // An optional argument may be left out.
    assert_eq!(errors("user.query", json!([[]])), []);
}

#[test]
fn wrong_types() {
    assert_eq!(
        errors("user.update", json!(["1", {}])),
        one("id", "Input should be a valid integer")
    );
    assert_eq!(
        errors("user.update", json!([1.0, {}])),
        one("id", "Input should be a valid integer")
    );
    assert_eq!(
        errors("user.update", json!([1, []])),
        one("user_update", "Input should be a valid dictionary")
    );
    assert_eq!(
        errors("user.update", json!([1, {"smb": 1}])),
        one("user_update.smb", "Input should be a valid boolean")
    );
    assert_eq!(
        errors("user.update", json!([1, {"home": 5}])),
        one("user_update.home", "Input should be a valid string")
    );
    assert_eq!(
        errors("user.update", json!([1, {"groups": 5}])),
        one("user_update.groups", "Input should be a valid list")
    );
    assert_eq!(
        errors("user.update", json!([1, {"groups": [1, "x", 3]}])),
        one("user_update.groups.1", "Input should be a valid integer")
    );
    assert_eq!(
        errors("user.update", json!([1, {"group": "wheel"}])),
        one("user_update.group", "Input should be a valid integer")
    );
    assert_eq!(
        errors("app.create", json!([{"app_name": "a", "catalog_app": 3}])),
        one("app_create.catalog_app", "Input should be a valid string")
    );
}

#[test]
fn number_types() {
    // failover.call_remote's `connect_timeout` is the dump's one legacy "float".
    let m = method("failover.call_remote");
    let i = m
        .args()
        .iter()
        .position(|a| a.fields.iter().any(|f| f.name == "connect_timeout"))
        .expect("options arg");
    let mut params = vec![json!("core.ping"), json!([])];
    params.truncate(i);
    params.push(json!({"connect_timeout": 2}));
    assert_eq!(validate_params(m, &params), Ok(()));
    params[i] = json!({"connect_timeout": 2.5});
    assert_eq!(validate_params(m, &params), Ok(()));
    params[i] = json!({"connect_timeout": "2"});
    let errs = validate_params(m, &params).expect_err("string is not a number");
    assert_eq!(errs[0].message, "Input should be a valid number");
}

#[test]
fn literals() {
    assert_eq!(
        errors(
            "core.ping_remote",
            json!([{"hostname": "h", "type": "TCP"}])
        ),
        one(
            "options.type",
            "Input should be 'ICMP', 'ICMPV4' or 'ICMPV6'"
        )
    );
    let two = errors(
        "app.image.pull",
        json!([{"remote_image": "x", "auth": {"username": "u", "password": "p"}, "bogus": 1}]),
    );
    assert!(two.iter().any(|e| e.1 == "Extra inputs are not permitted"));
}

#[test]
fn numeric_bounds() {
    assert_eq!(
        errors("user.update", json!([1, {"userns_idmap": 0}])),
        one(
            "user_update.userns_idmap",
            "Input should be greater than or equal to 1"
        )
    );
    assert_eq!(
        errors("user.update", json!([1, {"userns_idmap": 4294967295u64}])),
        one(
            "user_update.userns_idmap",
            "Input should be less than or equal to 4294967294"
        )
    );
    let keep_last = errors("cloud_backup.update", json!([1, {"keep_last": 0}]));
    assert_eq!(
        keep_last,
        one("data.keep_last", "Input should be greater than 0")
    );
}

#[test]
fn union_without_a_fitting_branch() {
    assert_eq!(
        errors("user.update", json!([1, {"userns_idmap": true}])),
        one(
            "user_update.userns_idmap",
            "Input should be 'DIRECT' or Input should be a valid integer"
        )
    );
    assert_eq!(
        errors("user.update", json!([1, {"userns_idmap": "OTHER"}])),
        one("user_update.userns_idmap", "Input should be 'DIRECT'")
    );
}

#[test]
fn list_lengths() {
    let m = method("sharing.nfs.update");
    let hosts: Vec<String> = (0..43).map(|i| format!("h{i}")).collect();
    let errs = validate_params(m, &[json!(1), json!({"hosts": hosts})]).expect_err("too many");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].attribute.as_deref(), Some("data.hosts"));
    assert_eq!(
        errs[0].message,
        "List should have at most 42 items after validation, not 43"
    );
}

#[test]
fn discriminated_union() {
    let m = method("acme.dns.authenticator.create");
    let base = |attributes: Value| vec![json!({"name": "a", "attributes": attributes})];
    let arg = schema::arg_name(&m.accepts[0], 0);
    let errs = |attributes| {
        validate_params(m, &base(attributes))
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.attribute.unwrap_or_default(), e.message))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errs(json!({})),
        [(
            format!("{arg}.attributes.authenticator"),
            "Field required".to_owned()
        )]
    );
    let bad = errs(json!({"authenticator": "nope"}));
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].1.starts_with(
            "Input tag 'nope' found using 'authenticator' does not match any of the expected tags: "
        ),
        "{bad:?}"
    );
    let inner = errs(json!({"authenticator": "cloudflare", "bogus": 1}));
    assert!(
        inner.contains(&(
            format!("{arg}.attributes.cloudflare.bogus"),
            "Extra inputs are not permitted".to_owned()
        )),
        "{inner:?}"
    );
}

#[test]
fn too_many() {
    let m = method("core.ping");
    assert_eq!(
        too_many_arguments(m, &[json!(1)]).as_deref(),
        Some("Too many arguments (expected 0, found 1)")
    );
    assert_eq!(too_many_arguments(m, &[]), None);
    assert_eq!(
        errors("user.update", json!([1, {}, 3])),
        one("", "Too many arguments (expected 2, found 3)")
    );
}

#[test]
fn additional_properties_schema() {
    assert_eq!(
        errors(
            "virt.instance.create",
            json!([{"name": "vm1", "image": "debian", "environment": {"A": "1", "B": 2}}])
        ),
        one(
            "virt_instance_create.environment.B",
            "Input should be a valid string"
        )
    );
}

#[test]
fn list_min_items_and_item_paths() {
    assert_eq!(
        errors("reporting.get_data", json!([[]])),
        one(
            "graphs",
            "List should have at least 1 item after validation, not 0"
        )
    );
    assert_eq!(
        errors(
            "reporting.get_data",
            json!([[{"name": "cpu"}, {"name": "gpu"}]])
        ),
        one(
            "graphs.1.name",
            "Input should be 'cpu', 'cputemp', 'disk', 'interface', 'load', 'processes', \
             'memory', 'uptime', 'arcactualrate', 'arcrate', 'arcsize', 'arcresult', 'disktemp', \
             'upscharge', 'upsruntime', 'upsvoltage', 'upscurrent', 'upsfrequency', 'upsload' or \
             'upstemperature'"
        )
    );
}

#[test]
fn type_lists() {
    // Legacy query options use `"type": ["string", "null"]`.
    assert_eq!(
        errors("zfs.snapshot.query", json!([[], {"extend": null}])),
        []
    );
    assert_eq!(
        errors("zfs.snapshot.query", json!([[], {"extend": "x"}])),
        []
    );
    assert_eq!(
        errors("zfs.snapshot.query", json!([[], {"extend": 5}])),
        one("query-options.extend", "Input should be a valid string")
    );
}

/// The server's own defaults must pass: a cheap guard against false errors across the dump.
#[test]
fn every_methods_defaults_are_accepted() {
    let mut checked = 0;
    for m in Catalog::bundled().iter() {
        let args = m.args();
        // The longest prefix of arguments that all have defaults.
        let params: Vec<Value> = args.iter().map_while(|a| a.default.clone()).collect();
        if args[params.len()..].iter().any(|a| a.required) {
            continue;
        }
        checked += 1;
        assert_eq!(validate_params(m, &params), Ok(()), "{}", m.name);
    }
    assert!(checked > 300, "only {checked} methods checked");
}

#[test]
fn legacy_update_schemas_do_not_require_fields() {
    // ssh.update's legacy schema marks every field `_required_` but has no `required` list;
    // the server (a legacy `update=True` dict) accepts a partial update.
    assert_eq!(errors("ssh.update", json!([{"tcpport": 22}])), []);
    let tcpport = method("ssh.update").args()[0]
        .fields
        .iter()
        .find(|f| f.name == "tcpport")
        .cloned()
        .expect("tcpport");
    assert!(tcpport.required, "the docs still show what the schema says");
    assert_eq!(
        errors("ssh.update", json!([{"tcpport": "22"}])),
        one("ssh_update.tcpport", "Input should be a valid integer")
    );
}
