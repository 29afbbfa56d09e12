//! The `midscript.truenas` collection (`ansible/`) with real ansible-core against a fleet of
//! three `midscript mock` servers: check mode that sends nothing (read back from the mocks),
//! a deploy that changes each host once, a second run that changes nothing, `state: absent`,
//! one host whose deployment crashes failing alone with the container logs, no API key in
//! `-vvv` output, the call and script modules, `ansible-doc`, and `ansible-galaxy collection
//! build`.
//!
//! ansible-core lives in a virtualenv that `.ci/run` installs (pinned in
//! `.ci/ansible-requirements.txt`) at `$MIDSCRIPT_ANSIBLE_VENV`, default `target/ansible-venv`.
//! Without it these tests say so and pass, except under `CI=true`, where they fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::standalone::{BIN, Sandbox, StandaloneMock, stderr, stdout};

/// The virtualenv with ansible-core, or `None` (outside CI) when it is not installed.
fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("MIDSCRIPT_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ansible-venv"));
    if dir.join("bin/ansible-playbook").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "ansible-core is not installed at {} (CI=true): .ci/run installs it",
        dir.display()
    );
    eprintln!(
        "ansible tests not run: no ansible-core at {} (run .ci/run, or set MIDSCRIPT_ANSIBLE_VENV)",
        dir.display()
    );
    None
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible")
}

/// An ansible tool from the virtualenv, with a home and temp folders of its own, the
/// collection in place, and nothing of the developer's environment that would change it.
fn ansible(venv: &Path, tool: &str, sandbox: &Sandbox) -> Command {
    let mut c = Command::new(venv.join("bin").join(tool));
    for var in [
        "MIDSCRIPT_URL",
        "TRUENAS_URL",
        "MIDSCRIPT_API_KEY",
        "TRUENAS_API_KEY",
        "MIDSCRIPT_PROFILE",
        "ANSIBLE_CONFIG",
    ] {
        c.env_remove(var);
    }
    let home = sandbox.home();
    c.current_dir(fixtures())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("ANSIBLE_HOME", home.join("ansible"))
        .env("ANSIBLE_LOCAL_TEMP", home.join("ansible-tmp"))
        .env(
            "ANSIBLE_COLLECTIONS_PATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible"),
        )
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    c
}

/// One mock NAS of the fleet.
struct Nas {
    name: String,
    mock: StandaloneMock,
    key: String,
}

impl Nas {
    fn start(name: &str, n: usize) -> Nas {
        // A key of its own per host, so the `-vvv` check looks for three distinct secrets.
        let key = format!("{n}-fleetkey{name}{}", "Q".repeat(48));
        let mock = StandaloneMock::start(&["--api-key", &key]);
        Nas {
            name: name.to_owned(),
            mock,
            key,
        }
    }

    /// Call `method` on this mock with the binary (what an admin would do to look).
    fn call(&self, sandbox: &Sandbox, method: &str, args: &[&str]) -> Value {
        let url = self.mock.value("URL");
        let fp = self.mock.value("FINGERPRINT");
        let mut argv = vec![
            "--url",
            &url,
            "--fingerprint",
            &fp,
            "--api-key",
            &self.key,
            "-o",
            "compact",
            "call",
            method,
        ];
        argv.extend_from_slice(args);
        let out = sandbox.run(&argv);
        assert!(out.status.success(), "{method}: {}", stderr(&out));
        serde_json::from_str(&stdout(&out)).expect("JSON")
    }

    fn apps(&self, sandbox: &Sandbox) -> Value {
        self.call(sandbox, "app.query", &[])
    }

    fn jobs(&self, sandbox: &Sandbox) -> usize {
        self.call(sandbox, "core.get_jobs", &[])
            .as_array()
            .map_or(0, Vec::len)
    }
}

/// Three mock NAS boxes and an inventory for them.
struct Fleet {
    venv: PathBuf,
    sandbox: Sandbox,
    hosts: Vec<Nas>,
}

impl Fleet {
    fn start(venv: PathBuf) -> Fleet {
        let hosts = ["nas1", "nas2", "nas3"]
            .iter()
            .enumerate()
            .map(|(i, n)| Nas::start(n, i + 1))
            .collect();
        Fleet {
            venv,
            sandbox: Sandbox::new(),
            hosts,
        }
    }

    /// Write the inventory, with `extra` host variables per host name.
    fn inventory(&self, extra: &BTreeMap<&str, &str>) -> PathBuf {
        let mut text = String::from("[nas]\n");
        for h in &self.hosts {
            text.push_str(&format!(
                "{} midscript_url={} midscript_fingerprint={} midscript_api_key={} {}\n",
                h.name,
                h.mock.value("URL"),
                h.mock.value("FINGERPRINT"),
                h.key,
                extra.get(h.name.as_str()).copied().unwrap_or("")
            ));
        }
        // Interpreter discovery finds a shim that does not run here: the venv's own Python.
        text.push_str(&format!(
            "\n[all:vars]\nansible_python_interpreter={}\nmidscript_bin={BIN}\n",
            self.venv.join("bin/python").display()
        ));
        self.sandbox.write("inventory.ini", &text)
    }

    /// Run `deploy.yml` with `args` and `-vvv`; check that no API key shows.
    fn playbook(&self, inventory: &Path, args: &[&str]) -> (String, Output) {
        self.playbook_file(inventory, "deploy.yml", args)
    }

    /// Run a playbook of `tests/fixtures/ansible` with `args` and `-vvv`; check that no API
    /// key shows.
    fn playbook_file(&self, inventory: &Path, file: &str, args: &[&str]) -> (String, Output) {
        let out = ansible(&self.venv, "ansible-playbook", &self.sandbox)
            .arg("-i")
            .arg(inventory)
            .arg(file)
            .arg("-vvv")
            .args(args)
            .output()
            .expect("ansible-playbook runs");
        let text = format!("{}{}", stdout(&out), stderr(&out));
        for h in &self.hosts {
            assert!(
                !text.contains(&h.key),
                "{}'s API key appears in the -vvv output:\n{text}",
                h.name
            );
        }
        // The key did reach the module: its invocation shows it masked.
        assert!(
            text.contains("\"api_key\": \"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER\""),
            "{text}"
        );
        (text, out)
    }
}

/// `PLAY RECAP` counts per host: (ok, changed, failed).
fn recap(text: &str) -> BTreeMap<String, (u32, u32, u32)> {
    let re = regex::Regex::new(
        r"(?m)^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)",
    )
    .unwrap();
    re.captures_iter(text)
        .map(|c| {
            let n = |i: usize| c[i].parse::<u32>().unwrap();
            (c[1].to_owned(), (n(2), n(3), n(4)))
        })
        .collect()
}

fn all(counts: (u32, u32, u32)) -> BTreeMap<String, (u32, u32, u32)> {
    ["nas1", "nas2", "nas3"]
        .iter()
        .map(|h| ((*h).to_owned(), counts))
        .collect()
}

#[test]
fn check_mode_sends_nothing_then_a_deploy_changes_each_host_once_and_absent_removes_it() {
    let Some(venv) = venv() else { return };
    let fleet = Fleet::start(venv);
    let inventory = fleet.inventory(&BTreeMap::new());

    let (text, out) = fleet.playbook(&inventory, &["--check", "--diff"]);
    assert!(out.status.success(), "{text}");
    assert_eq!(recap(&text), all((2, 1, 0)), "{text}");
    assert!(
        text.contains("+ web (image traefik/whoami:v1.10)"),
        "{text}"
    );
    assert!(
        text.contains("check mode: stack would be created"),
        "{text}"
    );
    for h in &fleet.hosts {
        assert_eq!(h.apps(&fleet.sandbox), serde_json::json!([]), "{}", h.name);
        assert_eq!(h.jobs(&fleet.sandbox), 0, "{}", h.name);
    }

    let (text, out) = fleet.playbook(&inventory, &[]);
    assert!(out.status.success(), "{text}");
    assert_eq!(recap(&text), all((2, 1, 0)), "{text}");
    let mut jobs = Vec::new();
    for h in &fleet.hosts {
        let apps = h.apps(&fleet.sandbox);
        assert_eq!(apps[0]["name"], "stack", "{}: {apps}", h.name);
        assert_eq!(apps[0]["state"], "RUNNING", "{}: {apps}", h.name);
        jobs.push(h.jobs(&fleet.sandbox));
    }
    assert!(text.contains("stack is RUNNING at"), "{text}");

    let (text, out) = fleet.playbook(&inventory, &["--diff"]);
    assert!(out.status.success(), "{text}");
    assert_eq!(recap(&text), all((2, 0, 0)), "{text}");
    for (h, before) in fleet.hosts.iter().zip(jobs) {
        assert_eq!(
            h.jobs(&fleet.sandbox),
            before,
            "{}: a second run sent a job",
            h.name
        );
    }

    // state: absent removes the app once; check mode first leaves it in place.
    let (text, out) = fleet.playbook_file(&inventory, "remove.yml", &["--check"]);
    assert!(out.status.success(), "{text}");
    assert_eq!(recap(&text), all((1, 1, 0)), "{text}");
    assert_eq!(fleet.hosts[0].apps(&fleet.sandbox)[0]["name"], "stack");
    let (text, out) = fleet.playbook_file(&inventory, "remove.yml", &[]);
    assert!(out.status.success(), "{text}");
    assert_eq!(recap(&text), all((1, 1, 0)), "{text}");
    let (text, out) = fleet.playbook_file(&inventory, "remove.yml", &[]);
    assert!(out.status.success(), "{text}");
    assert_eq!(recap(&text), all((1, 0, 0)), "{text}");
    for h in &fleet.hosts {
        assert_eq!(h.apps(&fleet.sandbox), serde_json::json!([]), "{}", h.name);
    }
}

#[test]
fn a_host_whose_deployment_crashes_fails_alone_with_the_logs() {
    let Some(venv) = venv() else { return };
    let fleet = Fleet::start(venv);
    let inventory = fleet.inventory(&BTreeMap::from([("nas2", "whoami_tag=crash")]));
    let (text, out) = fleet.playbook(&inventory, &[]);
    assert!(!out.status.success(), "{text}");
    let counts = recap(&text);
    assert_eq!(counts["nas1"], (2, 1, 0), "{text}");
    assert_eq!(counts["nas3"], (2, 1, 0), "{text}");
    assert_eq!(counts["nas2"], (0, 0, 1), "{text}");
    // With -vvv the failure is `fatal: [nas2]: FAILED! => {` and the result as indented JSON.
    let start = text
        .find("fatal: [nas2]: FAILED! => {")
        .unwrap_or_else(|| panic!("no failure for nas2:\n{text}"));
    let block = &text[start..];
    let failure = &block[..block.find("\n}").unwrap_or(block.len())];
    assert!(
        failure.contains("stack crashed (created)")
            && failure.contains("web | fatal error (simulated crash), exiting with code 1"),
        "{failure}"
    );
    assert!(
        !text.contains("fatal: [nas1]") && !text.contains("fatal: [nas3]"),
        "{text}"
    );
    let apps = fleet.hosts[1].apps(&fleet.sandbox);
    assert_eq!(apps[0]["state"], "CRASHED", "{apps}");
}

#[test]
fn ansible_doc_shows_the_modules() {
    let Some(venv) = venv() else { return };
    let sandbox = Sandbox::new();
    let out = ansible(&venv, "ansible-doc", &sandbox)
        .arg("midscript.truenas.compose")
        .output()
        .expect("ansible-doc runs");
    let text = stdout(&out);
    assert!(out.status.success(), "{}{}", text, stderr(&out));
    for needle in [
        "midscript.truenas.compose",
        "Resolves a local compose project",
        "project_src",
        "midscript_api_key",
        "EXAMPLES:",
        "RETURN VALUES:",
        "portals",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let out = ansible(&venv, "ansible-doc", &sandbox)
        .args([
            "--json",
            "midscript.truenas.compose",
            "midscript.truenas.call",
            "midscript.truenas.script",
        ])
        .output()
        .expect("ansible-doc runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let docs: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for m in ["compose", "call", "script"] {
        let d = &docs[format!("midscript.truenas.{m}")];
        assert!(d["doc"]["short_description"].is_string(), "{m}: {d}");
        assert!(d["examples"].as_str().is_some_and(|e| !e.is_empty()), "{m}");
        assert!(d["return"].is_object(), "{m}");
        assert_eq!(
            d["doc"]["options"]["api_key"]["type"], "str",
            "{m}: the connection options come from the shared fragment"
        );
    }
}

#[test]
fn the_call_and_script_modules_report_results_and_changes() {
    let Some(venv) = venv() else { return };
    let fleet = Fleet::start(venv);
    let inventory = fleet.inventory(&BTreeMap::new());
    let (text, out) = fleet.playbook_file(&inventory, "calls.yml", &[]);
    assert!(out.status.success(), "{text}");
    // ok: 7 tasks; changed: the scrub job and the first script run.
    assert_eq!(recap(&text), all((7, 2, 0)), "{text}");
}

#[test]
fn ansible_galaxy_packs_the_collection() {
    let Some(venv) = venv() else { return };
    let sandbox = Sandbox::new();
    let out_dir = sandbox.home().join("built");
    let out = ansible(&venv, "ansible-galaxy", &sandbox)
        .args(["collection", "build"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("ansible/ansible_collections/midscript/truenas"),
        )
        .arg("--output-path")
        .arg(&out_dir)
        .output()
        .expect("ansible-galaxy runs");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let tarball = out_dir.join("midscript-truenas-0.1.0.tar.gz");
    let list = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys, tarfile; print('\\n'.join(sorted(tarfile.open(sys.argv[1]).getnames())))",
        ])
        .arg(&tarball)
        .output()
        .expect("python runs");
    let names = stdout(&list);
    for f in [
        "MANIFEST.json",
        "plugins/modules/compose.py",
        "plugins/modules/call.py",
        "plugins/modules/script.py",
        "plugins/module_utils/machine.py",
        "plugins/action/compose.py",
        "plugins/plugin_utils/host_vars.py",
        "plugins/doc_fragments/connection.py",
        "meta/runtime.yml",
    ] {
        assert!(
            names.lines().any(|l| l == f),
            "{f} missing from the package:\n{names}"
        );
    }
    assert!(!names.contains("__pycache__"), "{names}");
}

#[test]
fn a_missing_binary_or_server_fails_the_task_with_a_clear_message() {
    let Some(venv) = venv() else { return };
    let sandbox = Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().port();
    drop(listener);
    let inventory = sandbox.write(
        "inventory.ini",
        &format!(
            "[nas]\nnas1 midscript_url=wss://127.0.0.1:{closed}/api/current midscript_api_key=1-unusedkeyZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ\n\n[all:vars]\nansible_python_interpreter={}\n",
            venv.join("bin/python").display()
        ),
    );
    let adhoc = |bin: &str| {
        let out = ansible(&venv, "ansible", &sandbox)
            .arg("nas1")
            .arg("-i")
            .arg(&inventory)
            .args([
                "-c",
                "local",
                "-m",
                "midscript.truenas.call",
                "-a",
                "method=system.info",
            ])
            .arg("-e")
            .arg(format!("midscript_bin={bin}"))
            .output()
            .expect("ansible runs");
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!out.status.success(), "{text}");
        assert!(!text.contains("unusedkey"), "{text}");
        text
    };
    let text = adhoc("/nonexistent/midscript");
    assert!(
        text.contains("midscript_bin /nonexistent/midscript is not an executable file"),
        "{text}"
    );
    let text = adhoc(BIN);
    assert!(text.contains("\"msg\": \"cannot connect: "), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{closed}")), "{text}");
}
