//! Gati artifacts end to end: the `gati` CLI against the real `gati-registry` binary.
//!
//! * The product's example artifacts (a WASM module, a plugin, a model, an agent, a template) are
//!   published with `gati publish` together with the artifacts they depend on, installed into a
//!   fresh directory with their dependencies, reinstalled offline from `gati.lock` with the
//!   registry stopped, pulled with an OCI client (oras-py), and their documents round-trip.
//! * Invalid artifacts are refused with the field at fault, and nothing is stored.
//! * An interrupted publish resumes; versions are immutable; unpublish and deprecation rules.
//!
//! The `gati` binary is the one built beside the test (`cargo build -p gati-cli` is run first
//! when it is missing, so the test also works alone).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::http;
use common::{Registry, interop_script, require_tool, run_bounded};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};

const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The `gati` binary, built if needed.
fn gati_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/artifacts-<hash> -> target/<profile>/gati
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir").to_path_buf();
    let bin = profile_dir.join("gati");
    if !bin.try_exists().unwrap_or(false) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = run_bounded(
            Command::new(cargo)
                .args(["build", "-p", "gati-cli", "--bin", "gati"])
                .current_dir(env!("CARGO_MANIFEST_DIR")),
            Duration::from_secs(900),
        );
        assert!(out.status.success(), "building gati: {}", String::from_utf8_lossy(&out.stderr));
    }
    bin
}

/// A `gati` user: its own config and cache directories, pointed at one registry.
struct Cli {
    bin: PathBuf,
    home: tempfile::TempDir,
    registry: String,
}

impl Cli {
    fn new(registry: &Registry) -> Cli {
        Cli {
            bin: gati_bin(),
            home: tempfile::tempdir().expect("tempdir"),
            registry: format!("http://{}", registry.addr()),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("GATI_REGISTRY", &self.registry)
            .env("GATI_CONFIG_DIR", self.home.path().join("config"))
            .env("GATI_CACHE_DIR", self.home.path().join("cache"))
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        run_bounded(&mut self.command(args), CLI_TIMEOUT)
    }

    /// Runs with `--json` and expects success; returns the JSON printed.
    fn ok(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "gati {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("gati {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Runs with `--json` and expects exit status `code`; returns the error object printed.
    fn fails(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "gati {args:?}: expected exit {code}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
        v["error"].clone()
    }
}

fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).expect("example")).expect("example JSON")
}

/// A project directory with `gati.json` and payload files.
fn project(root: &Path, dir: &str, document: &Value, files: &[(&str, &[u8])]) -> PathBuf {
    let p = root.join(dir);
    std::fs::create_dir_all(&p).expect("project dir");
    std::fs::write(p.join("gati.json"), serde_json::to_vec_pretty(document).expect("json")).expect("gati.json");
    for (path, bytes) in files {
        let f = p.join(path);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("dirs");
        std::fs::write(f, bytes).expect("file");
    }
    p
}

/// The smallest valid WebAssembly module (magic and version), followed by a marker so that
/// different modules have different bytes.
fn wasm(marker: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    // A custom section (id 0) named "gati" holding the marker.
    let mut payload = vec![4u8];
    payload.extend_from_slice(b"gati");
    payload.extend_from_slice(marker.as_bytes());
    bytes.push(0);
    bytes.push(u8::try_from(payload.len()).expect("short marker"));
    bytes.extend_from_slice(&payload);
    bytes
}

fn module(namespace: &str, name: &str, version: &str, deps: Value) -> Value {
    json!({
        "name": name, "version": version, "namespace": namespace, "type": "module-wasm",
        "manifest": {
            "name": name, "version": version, "description": format!("{name} {version}"), "license": "MIT",
            "config": { "wasmFile": format!("{name}.wasm") },
            "dependencies": deps,
        }
    })
}

fn model(namespace: &str, name: &str, version: &str) -> Value {
    json!({
        "name": name, "version": version, "namespace": namespace, "type": "model",
        "manifest": {
            "description": format!("{name} model"), "license": "Apache-2.0",
            "config": { "modelFormat": "onnx", "modelFile": "model.onnx", "inputShape": [1, 16], "outputShape": [1, 2] }
        }
    })
}

fn node_module(namespace: &str, name: &str, version: &str) -> Value {
    json!({
        "name": name, "version": version, "namespace": namespace, "type": "module-node",
        "manifest": { "description": "database core", "license": "MIT", "config": { "entry": "dist/index.js" } }
    })
}

fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// Uploads bytes as a blob of `repo` with one monolithic OCI upload.
fn upload_blob(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(bytes));
    let path = format!("/v2/{repo}/blobs/uploads/?digest=sha256:{hex}");
    let r = http::request(addr, "POST", &path, &[("Content-Type", "application/octet-stream")], bytes).expect("upload");
    assert_eq!(r.status, 201, "{}", r.text());
    hex
}

fn publish_raw(addr: &str, repo: &str, version: &str, doc: &Value) -> http::Response {
    let path = format!("/api/v1/artifacts/{repo}/versions/{version}");
    http::request(addr, "PUT", &path, &[("Content-Type", "application/json")], &serde_json::to_vec(doc).expect("json"))
        .expect("publish")
}

fn file_entry(path: &str, bytes: &[u8]) -> Value {
    json!({
        "path": path, "size": bytes.len(),
        "sha256": hex::encode(Sha256::digest(bytes)), "sha512": hex::encode(Sha512::digest(bytes)),
    })
}

#[test]
fn the_examples_publish_install_reinstall_offline_and_pull_with_an_oci_client() {
    require_tool("python3");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut registry = Registry::start(&tmp.path().join("data"));
    let addr = registry.addr();
    let cli = Cli::new(&registry);
    let src = tmp.path().join("src");

    // What the examples depend on, published first: crypto-utils (two versions, so that the
    // range picks the higher), the plugin's required module, and the agent's models.
    let deps: Vec<(PathBuf, &str)> = vec![
        (
            project(
                &src,
                "crypto-1.0.0",
                &module("users/krishna", "crypto-utils", "1.0.0", json!([])),
                &[("crypto-utils.wasm", &wasm("c1"))],
            ),
            "users/krishna/crypto-utils@1.0.0",
        ),
        (
            project(
                &src,
                "crypto-1.2.0",
                &module("users/krishna", "crypto-utils", "1.2.0", json!([])),
                &[("crypto-utils.wasm", &wasm("c12"))],
            ),
            "users/krishna/crypto-utils@1.2.0",
        ),
        (
            project(
                &src,
                "crypto-2.0.0",
                &module("users/krishna", "crypto-utils", "2.0.0", json!([])),
                &[("crypto-utils.wasm", &wasm("c2"))],
            ),
            "users/krishna/crypto-utils@2.0.0",
        ),
        (
            project(
                &src,
                "database-core",
                &node_module("gati.dev/orgs/gati-official", "database-core", "1.0.0"),
                &[("dist/index.js", b"module.exports = {};\n")],
            ),
            "orgs/gati-official/database-core@1.0.0",
        ),
        (
            project(&src, "gpt-4", &model("gati.dev/users/openai", "gpt-4", "1.0.0"), &[("model.onnx", b"onnx-gpt")]),
            "users/openai/gpt-4@1.0.0",
        ),
        (
            project(
                &src,
                "code-embeddings",
                &model("gati.dev/users/ml-researcher", "code-embeddings", "2.0.0"),
                &[("model.onnx", b"onnx-emb")],
            ),
            "users/ml-researcher/code-embeddings@2.0.0",
        ),
    ];
    for (dir, expected) in &deps {
        let out = cli.ok(&["publish", dir.to_str().expect("utf-8")]);
        assert_eq!(format!("{}@{}", out["name"].as_str().unwrap(), out["version"].as_str().unwrap()), *expected);
    }

    // The five examples, as the product describes them, with real payloads.
    let template_files: Vec<(&str, &[u8])> = vec![
        ("package.json", br#"{ "name": "{{projectName}}", "db": "{{ databaseType }}" }"#),
        ("tsconfig.json", b"{}"),
        ("src/index.ts", b"export const app = '{{projectName}}';\n"),
        ("public/logo.bin", &[0xff, 0x00, 0x7b, 0x7b]),
        ("README.md", b"# {{projectName}}\n"),
        ("notes/unpublished.txt", b"not matched by the template's files patterns"),
    ];
    type Example<'a> = (&'a str, PathBuf, Vec<(&'a str, Vec<u8>)>);
    let examples: Vec<Example<'_>> = vec![
        ("user-auth", vec![("user-auth.wasm", wasm("auth"))]),
        ("postgres-adapter", vec![("dist/index.js", b"export default {};\n".to_vec())]),
        ("sentiment-analyzer", vec![("sentiment-bert.onnx", vec![7u8; 300_000])]),
        ("code-reviewer", vec![("agent.wasm", wasm("agent"))]),
        ("nextjs-gati-starter", template_files.iter().map(|(p, b)| (*p, b.to_vec())).collect()),
    ]
    .into_iter()
    .map(|(name, files)| {
        let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
        let dir = project(&src, name, &example(name), &borrowed);
        (name, dir, files)
    })
    .collect();
    let mut published = Vec::new();
    for (name, dir, _) in &examples {
        let out = cli.ok(&["publish", dir.to_str().expect("utf-8")]);
        assert_eq!(out["name"].as_str().unwrap().rsplit('/').next(), Some(*name));
        published.push(out);
    }
    // The sixth example, a transformer, has no files at all: an artifact of its document alone.
    let transformer = project(&src, "user-auth-v1-to-v2", &example("user-auth-v1-to-v2"), &[]);
    let out = cli.ok(&["publish", transformer.to_str().unwrap()]);
    assert_eq!(out["name"], "users/krishna/user-auth-v1-to-v2");
    let view = cli.ok(&["info", "users/krishna/user-auth-v1-to-v2@1.0.0"]);
    assert_eq!((view["type"].as_str(), view["files"].as_array().map(Vec::len)), (Some("transformer"), Some(0)));
    assert_eq!(view["document"]["manifest"], example("user-auth-v1-to-v2")["manifest"]);
    let repos: Vec<String> = published.iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        repos,
        [
            "users/krishna/user-auth",
            "orgs/gati-official/postgres-adapter",
            "users/ml-researcher/sentiment-analyzer",
            "users/ai-dev/code-reviewer",
            "orgs/gati-official/nextjs-gati-starter"
        ]
    );

    // Each document round-trips: its `manifest` is exactly the example's, through the REST API
    // (byte for byte as published) and through the OCI config blob.
    for ((name, _, files), repo) in examples.iter().zip(&repos) {
        let version = example(name)["version"].as_str().unwrap().to_owned();
        let doc =
            http::request(&addr, "GET", &format!("/api/v1/artifacts/{repo}/versions/{version}/document"), &[], &[])
                .expect("document");
        assert_eq!(doc.status, 200);
        let doc = doc.json();
        assert_eq!(doc["manifest"], example(name)["manifest"], "{name}: the manifest round-trips");
        let contents: Vec<&str> =
            doc["contents"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
        let mut expected: Vec<&str> = files.iter().map(|(p, _)| *p).filter(|p| !p.starts_with("notes/")).collect();
        expected.sort_unstable();
        assert_eq!(contents, expected, "{name}: the files published (the template's patterns exclude notes/)");
    }

    // Install the four runnable examples into a fresh project: dependencies come along, and
    // crypto-utils resolves to the highest version in ^1.0.0.
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let installed = cli.ok(&[
        "install",
        "--dir",
        app.to_str().unwrap(),
        "users/krishna/user-auth@2.1.0",
        "orgs/gati-official/postgres-adapter",
        "users/ml-researcher/sentiment-analyzer@^3",
        "users/ai-dev/code-reviewer@latest",
    ]);
    let versions = installed["installed"].as_object().unwrap();
    assert_eq!(versions["users/krishna/crypto-utils"], "1.2.0");
    assert_eq!(versions["users/krishna/user-auth"], "2.1.0");
    assert_eq!(versions.len(), 5, "{installed}");
    for ((name, _, files), repo) in examples.iter().zip(&repos).take(4) {
        let placed = files_in(&app.join("gati_modules").join(repo));
        let mut expected: Vec<(String, Vec<u8>)> = files.iter().map(|(p, b)| ((*p).to_owned(), b.clone())).collect();
        let doc = std::fs::read(app.join("gati_modules").join(repo).join("gati.json")).unwrap();
        expected.push(("gati.json".into(), doc.clone()));
        expected.sort();
        assert_eq!(placed, expected, "{name}: installed files are the published bytes");
        let doc: Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(doc["manifest"], example(name)["manifest"]);
    }
    let crypto = files_in(&app.join("gati_modules/users/krishna/crypto-utils"));
    assert!(crypto.iter().any(|(p, b)| p == "crypto-utils.wasm" && *b == wasm("c12")));
    let lock: Value = serde_json::from_slice(&std::fs::read(app.join("gati.lock")).unwrap()).unwrap();
    assert_eq!(lock["lockfileVersion"], 1);
    assert_eq!(lock["packages"]["users/krishna/crypto-utils"]["version"], "1.2.0");
    assert_eq!(lock["requires"]["orgs/gati-official/postgres-adapter"], "^1.5.0", "a bare name pins ^latest");

    // In a project, `gati install` with no arguments installs gati.json's dependencies (a bare
    // name is in the project's namespace), and again from gati.lock once there is one.
    let project_dir = examples[0].1.to_str().unwrap().to_owned();
    let deps = cli.ok(&["install", "--dir", &project_dir]);
    assert_eq!(deps["installed"], json!({ "users/krishna/crypto-utils": "1.2.0" }));
    let again = cli.ok(&["install", "--dir", &project_dir, "--frozen"]);
    assert_eq!((again["installed"].clone(), again["downloadedBytes"].clone()), (deps["installed"].clone(), json!(0)));

    // An OCI client pulls an artifact: files by their titles, the document as the config.
    let pulled = tmp.path().join("oras");
    let out = run_bounded(
        Command::new("python3").arg(interop_script("oras_pull.py")).args([
            "--registry",
            &addr,
            "--target",
            "users/krishna/user-auth:2.1.0",
            "--outdir",
            pulled.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "oras pull: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("oras summary");
    assert_eq!(summary["artifactType"], "application/vnd.gati.module-wasm.v1+json");
    assert_eq!(summary["configMediaType"], "application/vnd.gati.manifest.v1+json");
    assert_eq!(summary["files"]["user-auth.wasm"], hex::encode(Sha256::digest(wasm("auth"))));
    let oci_doc: Value = serde_json::from_str(summary["document"].as_str().unwrap()).unwrap();
    assert_eq!(oci_doc["manifest"], example("user-auth")["manifest"]);

    // A template renders into a new directory with given and default variables.
    let rendered = tmp.path().join("my-app");
    cli.ok(&[
        "template",
        "init",
        "orgs/gati-official/nextjs-gati-starter",
        rendered.to_str().unwrap(),
        "--var",
        "projectName=my-app",
        "--yes",
    ]);
    assert_eq!(
        std::fs::read_to_string(rendered.join("package.json")).unwrap(),
        r#"{ "name": "my-app", "db": "postgres" }"#
    );
    assert_eq!(std::fs::read_to_string(rendered.join("README.md")).unwrap(), "# my-app\n");
    assert_eq!(
        std::fs::read(rendered.join("public/logo.bin")).unwrap(),
        [0xff, 0x00, 0x7b, 0x7b],
        "binary files are copied"
    );
    let missing = cli.fails(
        &[
            "template",
            "init",
            "orgs/gati-official/nextjs-gati-starter",
            tmp.path().join("x").to_str().unwrap(),
            "--yes",
        ],
        2,
    );
    assert!(missing["message"].as_str().unwrap().contains("projectName"), "{missing}");
    let bad = cli.fails(
        &[
            "template",
            "init",
            "orgs/gati-official/nextjs-gati-starter",
            tmp.path().join("y").to_str().unwrap(),
            "--var",
            "projectName=a",
            "--var",
            "databaseType=oracle",
            "--yes",
        ],
        2,
    );
    assert!(bad["message"].as_str().unwrap().contains("oracle"), "{bad}");

    // Metadata, search, dist-tags and deprecation.
    let info = cli.ok(&["info", "users/krishna/crypto-utils"]);
    assert_eq!(info["distTags"]["latest"], "2.0.0");
    assert_eq!(info["versions"].as_array().unwrap().len(), 3);
    let hits = cli.ok(&["search", "--type", "model"]);
    let names: Vec<&str> = hits["results"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["users/ml-researcher/code-embeddings", "users/ml-researcher/sentiment-analyzer", "users/openai/gpt-4"]
    );
    let hits = cli.ok(&["search", "bert", "sentiment"]);
    assert_eq!(hits["results"].as_array().unwrap().len(), 1);
    cli.ok(&["dist-tag", "add", "users/krishna/crypto-utils@1.0.0", "legacy"]);
    assert_eq!(cli.ok(&["dist-tag", "ls", "users/krishna/crypto-utils"])["legacy"], "1.0.0");
    let refused = cli.fails(&["dist-tag", "rm", "users/krishna/crypto-utils", "latest"], 5);
    assert!(refused["message"].as_str().unwrap().contains("latest"));
    cli.ok(&["dist-tag", "rm", "users/krishna/crypto-utils", "legacy"]);
    let deprecated = cli.ok(&["deprecate", "users/krishna/crypto-utils@<1.2.0", "use 1.2 or later"]);
    assert_eq!(deprecated["versions"], json!(["1.0.0"]));

    // Dependency conflicts are explained.
    let conflict = http::request(
        &addr,
        "POST",
        "/api/v1/resolve",
        &[("Content-Type", "application/json")],
        br#"{"dependencies":{"users/krishna/user-auth":"2.1.0","users/krishna/crypto-utils":"^2.0.0"}}"#,
    )
    .unwrap();
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    let detail = conflict.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("users/krishna/crypto-utils") && detail.contains("^1.0.0") && detail.contains("^2.0.0"),
        "{detail}"
    );

    // Downloads were counted off the request path (the document fetches of the install).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = http::request(&addr, "GET", "/api/v1/artifacts/users/krishna/user-auth/downloads", &[], &[])
            .unwrap()
            .json();
        if stats["total"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(stats["days"][0]["version"], "2.1.0");
            break;
        }
        assert!(Instant::now() < deadline, "downloads never counted: {stats}");
        common::pause(Duration::from_millis(200));
    }

    // A second install from the lock file is exact, and works with the registry gone.
    registry.kill9();
    let again = tmp.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::copy(app.join("gati.lock"), again.join("gati.lock")).unwrap();
    let offline = cli.ok(&["install", "--dir", again.to_str().unwrap(), "--offline"]);
    assert_eq!(offline["downloadedBytes"], 0);
    assert_eq!(files_in(&again.join("gati_modules")), files_in(&app.join("gati_modules")));
    assert_eq!(std::fs::read(again.join("gati.lock")).unwrap(), std::fs::read(app.join("gati.lock")).unwrap());
    // Without the cache, an offline install says so with its own exit status.
    let stranger = Cli { bin: cli.bin.clone(), home: tempfile::tempdir().unwrap(), registry: cli.registry.clone() };
    let third = tmp.path().join("third");
    std::fs::create_dir_all(&third).unwrap();
    std::fs::copy(app.join("gati.lock"), third.join("gati.lock")).unwrap();
    stranger.fails(&["install", "--dir", third.to_str().unwrap(), "--offline"], 9);
}

#[test]
fn invalid_artifacts_are_refused_with_their_field_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let addr = registry.addr();
    let cli = Cli::new(&registry);
    let src = tmp.path().join("src");
    let absent = |repo: &str| {
        let r = http::request(&addr, "GET", &format!("/api/v1/artifacts/{repo}"), &[], &[]).unwrap();
        assert_eq!(r.status, 404, "{repo} must not exist: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    };
    let fields = |error: &Value| -> Vec<String> {
        error["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
    };

    // Refused by the CLI before anything is uploaded (the same rules the registry applies).
    let mut cyclic = example("code-reviewer");
    cyclic["manifest"]["config"]["skillGraph"]["dependencies"]["analyze-code"] = json!(["generate-tests"]);
    let dir = project(&src, "cyclic", &cyclic, &[("agent.wasm", &wasm("a"))]);
    let e = cli.fails(&["publish", dir.to_str().unwrap()], 6);
    assert_eq!(fields(&e), ["manifest.config.skillGraph.dependencies.analyze-code"]);
    assert!(e["errors"][0]["message"].as_str().unwrap().contains("cycle"));

    let mut unknown = module("users/t", "m", "1.0.0", json!([]));
    unknown["type"] = json!("module-rust");
    let dir = project(&src, "unknown", &unknown, &[("m.wasm", &wasm("m"))]);
    assert_eq!(fields(&cli.fails(&["publish", dir.to_str().unwrap()], 6)), ["type"]);

    let dir = project(
        &src,
        "range",
        &module("users/t", "m", "1.0.0", json!([{ "name": "dep", "version": "^^1" }])),
        &[("m.wasm", &wasm("m"))],
    );
    assert_eq!(fields(&cli.fails(&["publish", dir.to_str().unwrap()], 6)), ["manifest.dependencies[0].version"]);

    let mut schema = model("users/t", "net", "1.0.0");
    schema["manifest"]["config"]["inputShape"] = json!([1, "wide"]);
    let dir = project(&src, "schema", &schema, &[("model.onnx", b"x")]);
    assert_eq!(fields(&cli.fails(&["publish", dir.to_str().unwrap()], 6)), ["manifest.config.inputShape[1]"]);

    // Refused by the registry, which alone knows what exists: a missing dependency, an agent's
    // missing model, a plugin's missing module; a file that does not hash to its sha512.
    let dir = project(
        &src,
        "missing",
        &module("users/t", "m", "1.0.0", json!([{ "name": "nothing-here", "version": "^1" }])),
        &[("m.wasm", &wasm("m"))],
    );
    let e = cli.fails(&["publish", dir.to_str().unwrap()], 6);
    assert_eq!(fields(&e), ["manifest.dependencies[0].name"]);
    assert!(e["errors"][0]["message"].as_str().unwrap().contains("users/t/nothing-here"), "{e}");

    let dir = project(&src, "agent", &example("code-reviewer"), &[("agent.wasm", &wasm("a"))]);
    let e = cli.fails(&["publish", dir.to_str().unwrap()], 6);
    assert_eq!(fields(&e), ["manifest.config.modelReferences[0]", "manifest.config.modelReferences[1]"]);

    let dir = project(&src, "plugin", &example("postgres-adapter"), &[("dist/index.js", b"x")]);
    assert_eq!(fields(&cli.fails(&["publish", dir.to_str().unwrap()], 6)), ["manifest.requiredModules[0]"]);

    let bytes = wasm("lie");
    upload_blob(&addr, "users/t/liar", &bytes);
    let mut doc = module("users/t", "liar", "1.0.0", json!([]));
    let mut entry = file_entry("liar.wasm", &bytes);
    entry["sha512"] = json!(hex::encode(Sha512::digest(b"other bytes")));
    doc["contents"] = json!([entry]);
    let r = publish_raw(&addr, "users/t/liar", "1.0.0", &doc);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["field"], "contents[0].sha512");

    // A document naming a file that was never uploaded, and one published under another name.
    let mut doc = module("users/t", "ghost", "1.0.0", json!([]));
    doc["contents"] = json!([file_entry("ghost.wasm", b"never uploaded")]);
    let r = publish_raw(&addr, "users/t/ghost", "1.0.0", &doc);
    assert_eq!((r.status, r.json()["errors"][0]["field"].clone()), (422, json!("contents[0]")));
    let r = publish_raw(&addr, "users/t/other", "1.0.0", &doc);
    assert_eq!((r.status, r.json()["errors"][0]["field"].clone()), (422, json!("name")));
    let r = http::request(
        &addr,
        "PUT",
        "/api/v1/artifacts/users/t/ghost/versions/1.0.0",
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .unwrap();
    assert_eq!(r.status, 422);

    for repo in [
        "users/t/m",
        "users/t/net",
        "users/ai-dev/code-reviewer",
        "orgs/gati-official/postgres-adapter",
        "users/t/liar",
        "users/t/ghost",
        "users/t/other",
    ] {
        absent(repo);
    }
    let tags = http::request(&addr, "GET", "/v2/users/t/liar/tags/list", &[], &[]).unwrap();
    assert!(
        tags.status == 404 || tags.json()["tags"].as_array().is_none_or(Vec::is_empty),
        "no OCI tag either: {}",
        tags.text()
    );
}

#[test]
fn an_interrupted_publish_resumes_and_published_versions_are_immutable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let addr = registry.addr();
    let cli = Cli::new(&registry);
    let src = tmp.path().join("src");
    let mut rng = common::Rng::new();
    let weights = rng.bytes(12 << 20);
    let dir = project(&src, "big", &model("users/t", "big", "1.0.0"), &[("model.onnx", &weights)]);

    // Publish at 4 MiB/s in 256 KiB requests and kill the CLI once part of the file is in.
    let mut child = cli
        .command(&["publish", dir.to_str().unwrap(), "--limit-rate", "4M"])
        .env("GATI_UPLOAD_CHUNK_BYTES", "262144")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gati");
    let state_dir = dir.join(".gati");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state: Option<Value> = std::fs::read_dir(&state_dir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read(e.ok()?.path()).ok())
            .and_then(|b| serde_json::from_slice(&b).ok());
        let location =
            state.as_ref().and_then(|s| s["sessions"].as_object()?.values().next()?.as_str().map(str::to_owned));
        if let Some(location) = location {
            let status = http::request(&addr, "GET", &location, &[], &[]).unwrap();
            let held = status.header("range").and_then(|r| r.split_once('-')).and_then(|(_, e)| e.parse::<u64>().ok());
            if held.is_some_and(|end| end >= 1 << 20) {
                break;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the upload finished before it could be interrupted");
        assert!(Instant::now() < deadline, "the upload never started");
        common::pause(Duration::from_millis(20));
    }
    child.kill().expect("kill gati");
    child.wait().expect("reap gati");

    let out = cli.run(&["publish", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let resumed_at: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("resuming the upload of model.onnx at byte "))
        .unwrap_or_else(|| panic!("the upload did not resume: {stderr}"))
        .trim()
        .parse()
        .unwrap();
    assert!(resumed_at >= 1 << 20 && resumed_at < weights.len() as u64, "resumed at {resumed_at}");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    cli.ok(&["install", "--dir", app.to_str().unwrap(), "users/t/big@1.0.0"]);
    assert_eq!(std::fs::read(app.join("gati_modules/users/t/big/model.onnx")).unwrap(), weights);

    // Versions are immutable; an unpublished version's number is never reused.
    let e = cli.fails(&["publish", dir.to_str().unwrap()], 5);
    assert!(e["message"].as_str().unwrap().contains("already published"), "{e}");
    let lib = project(&src, "lib", &module("users/t", "lib", "1.0.0", json!([])), &[("lib.wasm", &wasm("l"))]);
    cli.ok(&["publish", lib.to_str().unwrap()]);
    let user = project(
        &src,
        "user",
        &module("users/u", "user", "1.0.0", json!([{ "name": "users/t/lib", "version": "^1" }])),
        &[("user.wasm", &wasm("u"))],
    );
    cli.ok(&["publish", user.to_str().unwrap()]);
    let e = cli.fails(&["unpublish", "users/t/lib@1.0.0"], 5);
    assert!(e["message"].as_str().unwrap().contains("users/u/user@1.0.0"), "dependents across namespaces: {e}");
    let dependents = http::request(&addr, "GET", "/api/v1/artifacts/users/t/lib/dependents", &[], &[]).unwrap().json();
    assert_eq!(dependents["dependents"][0]["name"], "users/u/user");
    cli.ok(&["unpublish", "users/u/user@1.0.0"]);
    cli.ok(&["unpublish", "users/t/lib@1.0.0"]);
    let e = cli.fails(&["publish", lib.to_str().unwrap()], 5);
    assert!(e["message"].as_str().unwrap().contains("never reused"), "{e}");
    let gone = http::request(&addr, "GET", "/v2/users/t/lib/manifests/1.0.0", &[], &[]).unwrap();
    assert_eq!(gone.status, 404, "the OCI tag goes with the version");
    cli.fails(&["install", "--dir", tmp.path().join("x").to_str().unwrap(), "users/t/lib@1.0.0"], 5);

    // Plain OCI writes cannot change what a published version owns.
    let big = http::request(&addr, "GET", "/api/v1/artifacts/users/t/big/versions/1.0.0", &[], &[]).unwrap().json();
    let manifest_digest = big["manifestDigest"].as_str().unwrap().to_owned();
    let manifest =
        http::request(&addr, "GET", &format!("/v2/users/t/big/manifests/{manifest_digest}"), &[], &[]).unwrap();
    let mut other: Value = manifest.json();
    other["annotations"]["org.opencontainers.image.version"] = json!("forged");
    let forged = http::request(
        &addr,
        "PUT",
        "/v2/users/t/big/manifests/1.0.0",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        &serde_json::to_vec(&other).unwrap(),
    )
    .unwrap();
    assert_eq!(forged.status, 409, "{}", forged.text());
    let layer = format!("sha256:{}", hex::encode(Sha256::digest(&weights)));
    assert_eq!(
        http::request(&addr, "DELETE", &format!("/v2/users/t/big/blobs/{layer}"), &[], &[]).unwrap().status,
        409
    );
    assert_eq!(http::request(&addr, "DELETE", "/v2/users/t/big/manifests/1.0.0", &[], &[]).unwrap().status, 409);
    let served = http::request(&addr, "GET", "/v2/users/t/big/manifests/1.0.0", &[], &[]).unwrap();
    assert_eq!(served.header("docker-content-digest"), Some(manifest_digest.as_str()));

    // A hostile lock file cannot make an install write or delete outside gati_modules/.
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep"), b"precious").unwrap();
    let hostile = tmp.path().join("hostile");
    std::fs::create_dir_all(&hostile).unwrap();
    let zero = "0".repeat(64);
    for name in ["../../victim", "/tmp/victim", "users/t/../../../victim"] {
        let lock = json!({
            "lockfileVersion": 1, "registry": cli.registry, "requires": { name: "1.0.0" },
            "packages": { name: { "version": "1.0.0", "type": "model", "manifestDigest": format!("sha256:{zero}"),
                                   "documentSha256": zero, "files": [] } }
        });
        std::fs::write(hostile.join("gati.lock"), serde_json::to_vec(&lock).unwrap()).unwrap();
        let e = cli.fails(&["install", "--dir", hostile.to_str().unwrap(), "--offline"], 6);
        assert!(e["message"].as_str().unwrap().contains("not an artifact name"), "{e}");
        assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"precious");
    }
    let lock = json!({
        "lockfileVersion": 1, "registry": cli.registry, "requires": { "users/t/x": "1.0.0" },
        "packages": { "users/t/x": { "version": "1.0.0", "type": "model", "manifestDigest": "x",
                                       "documentSha256": "../../../../victim/keep", "files": [] } }
    });
    std::fs::write(hostile.join("gati.lock"), serde_json::to_vec(&lock).unwrap()).unwrap();
    cli.fails(&["install", "--dir", hostile.to_str().unwrap(), "--offline"], 6);
    assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"precious");
}

#[test]
fn every_documented_route_is_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&tmp.path().join("data"));
    let addr = registry.addr();
    let doc = http::request(&addr, "GET", "/api/v1/openapi.json", &[], &[]).unwrap().json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["schemas"]["config-agent"]["$id"], "/api/v1/schemas/agent");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{}", paths.len());
    for (template, ops) in paths {
        let path = template
            .replace("{namespace}", "users/nobody")
            .replace("{name}", "nothing")
            .replace("{version}", "1.0.0")
            .replace("{tag}", "next")
            .replace("{path}", "a.txt")
            .replace("{type}", "model");
        for method in ops.as_object().unwrap().keys() {
            let body: &[u8] = if method == "put" || method == "post" { b"{}" } else { b"" };
            let r = http::request(&addr, &method.to_uppercase(), &path, &[("Content-Type", "application/json")], body)
                .unwrap();
            // Served: the route answers in its own terms (the artifact does not exist, the body
            // is incomplete), never "no such route".
            let text = r.text();
            assert!(
                !text.contains("no such artifact route") && !text.contains("no such endpoint") && r.status != 405,
                "{method} {path}: {} {text}",
                r.status
            );
            assert!(r.status < 500, "{method} {path}: {} {text}", r.status);
        }
    }
    for bad in ["/api/v1/artifacts?limit=abc", "/api/v1/artifacts?type=module-rust", "/api/v1/artifacts?after=..%2Fx"] {
        let r = http::request(&addr, "GET", bad, &[], &[]).unwrap();
        assert_eq!(
            (r.status, r.header("content-type")),
            (400, Some("application/problem+json")),
            "{bad}: {}",
            r.text()
        );
    }
    let schema = http::request(&addr, "GET", "/api/v1/schemas/template", &[], &[]).unwrap();
    assert_eq!(schema.header("content-type"), Some("application/schema+json"));
    assert!(schema.json()["properties"]["variables"].is_object());
    assert_eq!(http::request(&addr, "GET", "/api/v1/schemas/module-rust", &[], &[]).unwrap().status, 404);
}

/// A node with authentication on and no request budgets.
fn start_with_auth(dir: &Path) -> Registry {
    let config = dir.join("node.toml");
    std::fs::write(&config, "[auth]\nenabled = true\n[limits]\nenabled = false\n").unwrap();
    let mut reg = Registry::launch_configured(common::free_port(), &dir.join("data"), &config);
    reg.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http::request(&reg.addr(), "GET", "/.well-known/jwks.json", &[], b"").map(|r| r.status).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "no signing key within 20 s");
        common::pause(Duration::from_millis(50));
    }
    reg
}

/// A password the registry's policy accepts (long, and without the user's name in it).
fn password(user: &str) -> String {
    format!("violet marmalade kettle number {}", user.len() * 7919 + usize::from(user.as_bytes()[0]))
}

fn login(cli: &Cli, user: &str) {
    let mut child = cli
        .command(&["login", "--username", user, "--password-stdin", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(format!("{}\n", password(user)).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "login {user}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn with_authentication_publishing_needs_rights_and_private_artifacts_stay_hidden() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = start_with_auth(tmp.path());
    let addr = registry.addr();
    for user in ["alice", "bob"] {
        let body = json!({ "name": user, "email": format!("{user}@example.com"), "password": password(user) });
        let r = http::request(
            &addr,
            "POST",
            "/api/v1/users",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let (alice, bob, nobody) = (Cli::new(&registry), Cli::new(&registry), Cli::new(&registry));
    let src = tmp.path().join("src");
    let tool = project(&src, "tool", &module("users/alice", "tool", "1.0.0", json!([])), &[("tool.wasm", &wasm("t"))]);

    nobody.fails(&["publish", tool.to_str().unwrap()], 4);
    login(&alice, "alice");
    login(&bob, "bob");
    assert_eq!(alice.ok(&["whoami"])["name"], "alice");
    bob.fails(&["publish", tool.to_str().unwrap()], 4);
    alice.ok(&["publish", tool.to_str().unwrap()]);
    assert_eq!(bob.ok(&["info", "users/alice/tool"])["distTags"]["latest"], "1.0.0", "public by default");

    // Private: invisible to bob (not found), a challenge to nobody, still alice's.
    let config: Value =
        serde_json::from_slice(&std::fs::read(alice.home.path().join("config/config.json")).unwrap()).unwrap();
    let token = config["registries"][&alice.registry]["accessToken"].as_str().unwrap().to_owned();
    let r = http::request(
        &addr,
        "PUT",
        "/api/v1/namespaces/users/alice/policy",
        &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {token}"))],
        br#"{"visibility":"private"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    bob.fails(&["info", "users/alice/tool"], 3);
    assert!(bob.ok(&["search", "tool"])["results"].as_array().unwrap().is_empty());
    nobody.fails(&["info", "users/alice/tool"], 4);
    assert_eq!(alice.ok(&["search", "tool"])["results"][0]["name"], "users/alice/tool");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let hidden = bob.fails(&["install", "--dir", app.to_str().unwrap(), "users/alice/tool@1.0.0"], 3);
    assert!(hidden["message"].as_str().unwrap().contains("unknown"), "{hidden}");
    alice.ok(&["install", "--dir", app.to_str().unwrap(), "users/alice/tool@1.0.0"]);

    // Nobody can depend on what they cannot see, and the refusal does not reveal it.
    let leech = project(
        &src,
        "leech",
        &module("users/bob", "leech", "1.0.0", json!([{ "name": "users/alice/tool", "version": "^1" }])),
        &[("leech.wasm", &wasm("x"))],
    );
    let e = bob.fails(&["publish", leech.to_str().unwrap()], 6);
    let message = e["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("is not published") && !message.contains("1.0.0"), "{e}");

    alice.ok(&["logout"]);
    alice.fails(&["whoami"], 4);
}
