//! Plain-text method docs.

use std::fmt::Write as _;

use super::method::{ArgInfo, MethodInfo};

/// The doc of one method, plain text without ANSI colours:
///
/// ```text
/// app.create(app_create: object) -> object  [job]
///
/// <description>
///
/// Job: yes
/// Roles: APPS_WRITE
///
/// Arguments:
///   app_create: object (required)
///     app_name: string (required) [pattern '^…$', min length 1, max length 40]
///         <field description>
///     train: string = "stable" [min length 1]
///
/// Returns: object
/// ```
pub fn render_doc(m: &MethodInfo) -> String {
    let mut out = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "{}", m.signature());
    let text = m
        .description
        .as_deref()
        .or(m.cli_description.as_deref())
        .map(str::trim)
        .unwrap_or_default();
    if !text.is_empty() {
        let _ = writeln!(out, "\n{text}");
    }
    out.push('\n');
    let _ = writeln!(out, "Job: {}", if m.job { "yes" } else { "no" });
    if m.roles.is_empty() {
        let _ = writeln!(out, "Roles: (none listed)");
    } else {
        let _ = writeln!(out, "Roles: {}", m.roles.join(", "));
    }
    if m.no_auth_required {
        let _ = writeln!(out, "Authentication: not required");
    }
    if m.filterable {
        let _ = writeln!(out, "Filterable: yes (query-filters, query-options)");
    }
    let args = m.args();
    if args.is_empty() {
        let _ = writeln!(out, "\nArguments: none");
    } else {
        let _ = writeln!(out, "\nArguments:");
        for a in &args {
            write_arg(&mut out, a, 1);
        }
    }
    let _ = writeln!(out, "\nReturns: {}", m.returns_type());
    out
}

fn write_arg(out: &mut String, a: &ArgInfo, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = write!(out, "{pad}{}: {}", a.name, a.type_name);
    if a.required {
        out.push_str(" (required)");
    } else if let Some(d) = &a.default {
        let _ = write!(out, " = {d}");
    }
    if !a.constraints.is_empty() {
        let _ = write!(out, " [{}]", a.constraints.join(", "));
    }
    out.push('\n');
    if let Some(d) = a.description.as_deref().map(str::trim)
        && !d.is_empty()
    {
        for line in d.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "{pad}    {line}");
            }
        }
    }
    for f in &a.fields {
        write_arg(out, f, depth + 1);
    }
}

/// The text listing: one method per line, `[job]` marked, then its one-line summary.
pub fn listing<'a>(methods: impl IntoIterator<Item = &'a MethodInfo>) -> String {
    let methods: Vec<&MethodInfo> = methods.into_iter().collect();
    let width = methods.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for m in methods {
        let mark = if m.job { "[job]" } else { "" };
        let line = format!("{:<width$}  {mark:<5}  {}", m.name, m.summary());
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod listing_tests {
    use super::listing;
    use crate::catalog::Catalog;

    #[test]
    fn listings_mark_jobs() {
        let c = Catalog::bundled();
        let text = listing(c.matching("app.create"));
        assert!(text.starts_with("app.create  [job]  "), "{text}");
        let text = listing(c.matching("core.ping"));
        assert!(text.starts_with("core.ping         "), "{text}");
    }
}
