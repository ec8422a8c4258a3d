//! The CLI's contract with scripts, without a registry: usage errors, exit statuses, JSON errors,
//! completions. (Publishing and installing against a real registry: `tests/artifacts.rs` of the
//! server package.)

use std::process::Command;

fn gati(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().expect("tempdir");
    Command::new(env!("CARGO_BIN_EXE_gati"))
        .args(args)
        .env("GATI_CONFIG_DIR", home.path().join("config"))
        .env("GATI_CACHE_DIR", home.path().join("cache"))
        // A loopback port nothing listens on.
        .env("GATI_REGISTRY", "http://127.0.0.1:9")
        .output()
        .expect("run gati")
}

#[test]
fn help_documents_the_exit_statuses() {
    let out = gati(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["publish", "install", "template", "3 not found", "9 offline"] {
        assert!(text.contains(needle), "{needle} missing from --help:\n{text}");
    }
}

#[test]
fn wrong_usage_exits_2_and_an_unreachable_registry_7() {
    assert_eq!(gati(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(gati(&["unpublish", "users/a/b"]).status.code(), Some(2), "unpublish needs an exact version");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = gati(&["install", "--dir", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "nothing to install");
    let out = gati(&["info", "users/a/b", "--json"]);
    assert_eq!(out.status.code(), Some(7));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(error["error"]["code"], 7);
    assert!(error["error"]["message"].as_str().expect("message").contains("cannot reach"));
}

#[test]
fn publish_checks_the_document_locally_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("gati.json"),
        br#"{"name":"x","version":"1.0","namespace":"users/a","type":"model","manifest":{}}"#,
    )
    .expect("gati.json");
    let out = gati(&["publish", dir.path().to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(6), "refused before any network use");
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let fields: Vec<&str> = error["error"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["version", "manifest.config"]);
}

#[test]
fn completions_are_generated() {
    let out = gati(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("gati"));
}
