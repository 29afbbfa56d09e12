//! Faults and bad input (issue 12): values nested without bound, scripts that never give the
//! awaited reply a turn, lost job results, unbounded file reads, failed writes, and the
//! credentials checks of the command line. Each test failed before its fix.

use crate::support::standalone::{run, stderr, stdout};

/// `midscript --mock -e CODE`.
fn mock_script(code: &str) -> std::process::Output {
    run(&["--mock", "-e", code])
}

#[test]
fn deeply_nested_values_are_an_error_not_a_stack_overflow() {
    let build = "let x = []; for i in 0..5000 { x = [x]; }";
    for (code, what) in [
        (
            format!("{build} call(\"system.info\", x)"),
            "system.info: argument 1: a value nested deeper than 128 levels cannot be sent as JSON (at [0][0]",
        ),
        (
            "let m = #{}; for i in 0..5000 { m = #{a: m}; } json::stringify(m)".to_owned(),
            "json::stringify: a value nested deeper than 128 levels cannot be sent as JSON (at a.a.a",
        ),
        (
            format!("{build} print(x)"),
            "print: the value is nested deeper than 128 levels and cannot be printed",
        ),
    ] {
        let o = mock_script(&code);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{code}\n{err}");
        assert!(err.contains(what), "{code}\n{err}");
        assert!(err.contains("-e:1:"), "the error names the place: {err}");
    }
    // Interpolation cannot fail: it shows a placeholder; values within the bound print as Rhai
    // prints them.
    let o = mock_script(&format!(
        "{build} print(`${{x}}`); print([1, \"a\", #{{b: ()}}]); print(`${{[[1]]}}`)"
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "<the value is nested deeper than 128 levels and cannot be printed>\n[1, \"a\", #{\"b\": ()}]\n[[1]]\n"
    );
}

#[test]
fn read_file_is_bounded() {
    let o = mock_script("let s = read_file(\"/dev/zero\"); print(s.len)");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("read_file(/dev/zero): /dev/zero: the file is larger than 16 MiB, the most read_file reads"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
}
