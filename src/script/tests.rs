//! Tests that need no server: the embedded stdlib, the `call` syntax, strictness.

use rhai::{Dynamic, Engine, FnPtr, ImmutableString, NativeCallContext};

use super::STDLIB;
use super::engine::{apply_limits, register_call_syntax};

/// An engine with the `call` syntax, where `rpc_raw` echoes its arguments.
fn engine() -> Engine {
    let mut e = Engine::new();
    apply_limits(&mut e);
    register_call_syntax(&mut e);
    for m in super::engine::STATIC_MODULES {
        e.register_static_module(m, rhai::Module::new().into());
    }
    e.register_fn("rpc_raw", |m: ImmutableString, p: rhai::Array| {
        format!("{m}{p:?}")
    });
    e.register_fn(
        "__call_fn_ptr",
        |ctx: NativeCallContext, fp: FnPtr, args: rhai::Array| fp.call_raw(&ctx, None, args),
    );
    e
}

#[test]
fn every_stdlib_module_compiles_and_documents_its_functions() {
    let e = engine();
    for m in STDLIB {
        let ast = e
            .compile(m.source)
            .unwrap_or_else(|err| panic!("stdlib/{}.rhai: {err}", m.name));
        let mut count = 0;
        for f in ast
            .iter_functions()
            .filter(|f| !f.name.starts_with("anon$"))
        {
            count += 1;
            assert!(
                f.comments.iter().any(|c| c.starts_with("///")),
                "stdlib/{}.rhai: fn {} has no /// doc comment",
                m.name,
                f.name
            );
        }
        assert!(count > 0, "stdlib/{}.rhai defines no function", m.name);
    }
}

#[test]
fn call_takes_any_number_of_arguments_and_nests() {
    let e = engine();
    assert_eq!(
        e.eval::<String>(r#"call("core.ping")"#).unwrap(),
        "core.ping[]"
    );
    assert_eq!(
        e.eval::<String>(r#"call("a.b", 1, "x", #{k: [1]},)"#)
            .unwrap(),
        r#"a.b[1, "x", #{"k": [1]}]"#
    );
    assert_eq!(e.eval::<i64>(r#"call("x", call("y")).len()"#).unwrap(), 8);
}

#[test]
fn call_still_calls_function_pointers() {
    let e = engine();
    let script = r#"
        fn add(a, b) { a + b }
        let k = 10;
        let f = |x| x + k;
        call(Fn("add"), 1, 2) + call(f, 5) + call(|| 100)
    "#;
    assert_eq!(e.eval::<i64>(script).unwrap(), 118);
}

#[test]
fn call_needs_a_method_or_a_function_pointer() {
    let e = engine();
    let err = e.eval::<Dynamic>("call(42)").unwrap_err().to_string();
    assert!(
        err.contains("must be a method name or a function pointer, not i64"),
        "{err}"
    );
    assert!(e.compile("call(\"x\" 1)").is_err());
    assert!(e.compile("call").is_err());
}

#[test]
fn typos_are_errors() {
    let e = engine();
    let err = e
        .compile("let info = 1; print(inf);")
        .unwrap_err()
        .to_string();
    assert!(err.contains("inf"), "{err}");
    let err = e
        .eval::<Dynamic>("let m = #{version: 1}; m.versoin")
        .unwrap_err()
        .to_string();
    assert!(err.contains("versoin"), "{err}");
}

#[test]
fn the_method_form_fp_call_is_gone() {
    // The documented cost of spelling the binding `call`: write `call(fp, ..)` instead.
    let e = engine();
    let err = e
        .compile("let f = |x| x + 1; f.call(1)")
        .unwrap_err()
        .to_string();
    assert!(!err.is_empty());
    assert_eq!(e.eval::<i64>("let f = |x| x + 1; call(f, 1)").unwrap(), 2);
}

/// The parse-only check run before connecting knows every namespace the run registers
/// (`ws::connect` was refused by it as an undefined module).
#[test]
fn the_check_before_connecting_accepts_every_static_module() {
    for code in [
        r#"let c = ws::connect("ws://127.0.0.1:1/");"#,
        r#"json::parse("1");"#,
        r#"yaml::parse("a: 1");"#,
        r#"log::info("x");"#,
    ] {
        let script = super::Script::inline(code.to_owned());
        assert_eq!(super::check(&script), Ok(()), "{code}");
    }
    let unknown = super::Script::inline("nope::f();".to_owned());
    assert!(super::check(&unknown).is_err());
}
