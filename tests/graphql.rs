//! `/graphql` against a running server, over a small graph published through the REST API:
//!
//! * the relationships: artifact → versions (paged by cursor) → dependencies → the version each
//!   range resolves to → dependents (paged) → publisher, and search;
//! * the limits: a too costly query, `first` over 100, a foreign cursor, oversized and malformed
//!   requests, each refused with the status the GraphQL-over-HTTP specification gives it;
//! * visibility: with authentication on, an artifact in a private namespace is invisible (null,
//!   left out of lists) to everyone without a role there, exactly as on the REST API.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Registry;
use common::http::{self, Response};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha512};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Publishes `repo@version` (a `module-wasm` with one file) with `dependencies` (`name`, range).
fn publish(
    addr: &str,
    auth: Option<&str>,
    repo: &str,
    version: &str,
    description: &str,
    dependencies: &[(&str, &str)],
) {
    let (namespace, name) = repo.rsplit_once('/').unwrap();
    let wasm = format!("\0asm module {repo}@{version}").into_bytes();
    let mut headers = vec![("Content-Type", "application/octet-stream")];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    let path = format!("/v2/{repo}/blobs/uploads/?digest={}", common::digest_of(&wasm));
    let r = http::must(addr, "POST", &path, &headers, &wasm);
    assert_eq!(r.status, 201, "upload to {repo}: {}", r.text());
    let dependencies: Vec<Value> =
        dependencies.iter().map(|(name, range)| json!({ "name": name, "version": range })).collect();
    let document = json!({
        "name": name,
        "version": version,
        "namespace": namespace,
        "type": "module-wasm",
        "manifest": {
            "name": name,
            "version": version,
            "description": description,
            "license": "MIT",
            "config": { "wasmFile": "m.wasm" },
            "dependencies": dependencies,
        },
        "contents": [{
            "path": "m.wasm",
            "size": wasm.len(),
            "sha256": common::sha256_hex(&wasm),
            "sha512": hex::encode(Sha512::digest(&wasm)),
        }],
    });
    headers[0] = ("Content-Type", "application/json");
    let path = format!("/api/v1/artifacts/{repo}/versions/{version}");
    let r = http::must(addr, "PUT", &path, &headers, document.to_string().as_bytes());
    assert_eq!(r.status, 201, "publish {repo}@{version}: {}", r.text());
}

/// POSTs a GraphQL request with extra headers and returns the raw response.
fn post(addr: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http::must(addr, "POST", "/graphql", &all, body)
}

/// Runs `query` with `variables` as `auth` (an `Authorization` value); asserts `200` and returns
/// the response body.
fn graphql_as(addr: &str, auth: Option<&str>, query: &str, variables: Value) -> Value {
    let headers: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
    let r = post(addr, &headers, json!({ "query": query, "variables": variables }).to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// Runs `query` anonymously and returns its `data`, asserting there were no errors.
fn data(addr: &str, query: &str, variables: Value) -> Value {
    let body = graphql_as(addr, None, query, variables);
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

fn names(nodes: &Value) -> Vec<String> {
    nodes.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_artifact_graph_through_graphql() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(dir.path());
    let addr = reg.addr();
    publish(&addr, None, "users/a/crypto-utils", "1.0.0", "Hashing helpers", &[]);
    publish(&addr, None, "users/a/crypto-utils", "1.2.0", "Hashing helpers", &[]);
    publish(&addr, None, "users/b/user-auth", "2.1.0", "Sign-in with JWT", &[("users/a/crypto-utils", "^1.0.0")]);
    publish(&addr, None, "users/b/app", "1.0.0", "An app", &[("users/a/crypto-utils", "~1.0.0"), ("user-auth", "2")]);

    // The artifact and its versions, one page at a time.
    let versions = "query($after: String) { artifact(name: \"users/a/crypto-utils\") { name namespace type \
        createdAt distTags { tag version } latest { version } \
        versions(first: 1, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } \
        edges { cursor node { version description size unpublished manifestDigest documentDigest } } } } }";
    let d = data(&addr, versions, json!({}));
    let artifact = &d["artifact"];
    assert_eq!(artifact["name"], "users/a/crypto-utils");
    assert_eq!(artifact["namespace"], "users/a");
    assert_eq!(artifact["type"], "module-wasm");
    assert!(artifact["createdAt"].as_str().unwrap().ends_with('Z'), "{artifact}");
    assert_eq!(artifact["distTags"], json!([{ "tag": "latest", "version": "1.2.0" }]));
    assert_eq!(artifact["latest"]["version"], "1.2.0");
    let page = &artifact["versions"];
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["pageInfo"]["hasPreviousPage"], false);
    let node = &page["edges"][0]["node"];
    assert_eq!((node["version"].as_str(), node["description"].as_str()), (Some("1.2.0"), Some("Hashing helpers")));
    assert!(node["size"].as_u64().unwrap() > 0);
    assert!(node["manifestDigest"].as_str().unwrap().starts_with("sha256:"));
    assert!(node["documentDigest"].as_str().unwrap().starts_with("sha256:"));
    let cursor = page["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    assert_eq!(page["edges"][0]["cursor"], cursor.as_str());
    let d = data(&addr, versions, json!({ "after": cursor }));
    let page = &d["artifact"]["versions"];
    assert_eq!(page["edges"][0]["node"]["version"], "1.0.0");
    assert_eq!(page["edges"].as_array().unwrap().len(), 1);
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    assert_eq!(page["pageInfo"]["hasPreviousPage"], true);

    // A version's dependencies, each resolved to the highest published version in its range;
    // a bare dependency name is in the depending artifact's namespace.
    let deps = "query($name: String!, $v: String!) { artifact(name: $name) { version(version: $v) { version \
        publisher { name verified namespace } artifact { name } \
        dependencies { name range artifact { name } resolved { version artifact { name } } } } } }";
    let d = data(&addr, deps, json!({ "name": "users/b/user-auth", "v": "latest" }));
    let version = &d["artifact"]["version"];
    assert_eq!(version["version"], "2.1.0");
    assert_eq!(version["publisher"], json!({ "name": "anonymous", "verified": false, "namespace": null }));
    assert_eq!(version["artifact"]["name"], "users/b/user-auth");
    assert_eq!(
        version["dependencies"],
        json!([{
            "name": "users/a/crypto-utils",
            "range": "^1.0.0",
            "artifact": { "name": "users/a/crypto-utils" },
            "resolved": { "version": "1.2.0", "artifact": { "name": "users/a/crypto-utils" } },
        }])
    );
    let d = data(&addr, deps, json!({ "name": "users/b/app", "v": "1.0.0" }));
    let resolved: Vec<(&str, &str)> = d["artifact"]["version"]["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dep| (dep["name"].as_str().unwrap(), dep["resolved"]["version"].as_str().unwrap()))
        .collect();
    assert_eq!(resolved, [("users/a/crypto-utils", "1.0.0"), ("users/b/user-auth", "2.1.0")]);
    let d = data(&addr, deps, json!({ "name": "users/b/app", "v": "9.9.9" }));
    assert_eq!(d["artifact"]["version"], Value::Null, "no such version is null");

    // Dependents, paged, back to each depending version and its publisher.
    let dependents = "query($after: String) { artifact(name: \"users/a/crypto-utils\") { \
        dependents(first: 1, after: $after) { totalCount pageInfo { hasNextPage endCursor } \
        nodes { range artifact { name } version { version publisher { name } } } } } }";
    let d = data(&addr, dependents, json!({}));
    let page = &d["artifact"]["dependents"];
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        page["nodes"][0],
        json!({ "range": "~1.0.0", "artifact": { "name": "users/b/app" },
                "version": { "version": "1.0.0", "publisher": { "name": "anonymous" } } })
    );
    let cursor = page["pageInfo"]["endCursor"].clone();
    let d = data(&addr, dependents, json!({ "after": cursor }));
    let page = &d["artifact"]["dependents"];
    assert_eq!(
        page["nodes"],
        json!([{ "range": "^1.0.0", "artifact": { "name": "users/b/user-auth" },
                 "version": { "version": "2.1.0", "publisher": { "name": "anonymous" } } }])
    );
    assert_eq!(page["pageInfo"]["hasNextPage"], false);

    // A deprecated version is shown as such, and ranges resolve past it while others match.
    let deprecation = json!({ "range": "1.2.0", "message": "timing leak" }).to_string();
    let path = "/api/v1/artifacts/users/a/crypto-utils/deprecation";
    let r = http::must(&addr, "PUT", path, &[("Content-Type", "application/json")], deprecation.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let d = data(&addr, deps, json!({ "name": "users/b/user-auth", "v": "2.1.0" }));
    assert_eq!(d["artifact"]["version"]["dependencies"][0]["resolved"]["version"], "1.0.0");
    let d = data(
        &addr,
        "{ artifact(name: \"users/a/crypto-utils\") { version(version: \"1.2.0\") { deprecated deprecationMessage } } }",
        json!({}),
    );
    assert_eq!(d["artifact"]["version"], json!({ "deprecated": true, "deprecationMessage": "timing leak" }));

    // Search, filtered and paged.
    let search = "query($after: String, $ns: String, $q: String) { artifacts(first: 2, after: $after, \
        namespace: $ns, query: $q, type: \"module-wasm\") { pageInfo { hasNextPage endCursor } nodes { name } } }";
    let d = data(&addr, search, json!({}));
    assert_eq!(names(&d["artifacts"]["nodes"]), ["users/a/crypto-utils", "users/b/app"]);
    assert_eq!(d["artifacts"]["pageInfo"]["hasNextPage"], true);
    let d = data(&addr, search, json!({ "after": d["artifacts"]["pageInfo"]["endCursor"] }));
    assert_eq!(names(&d["artifacts"]["nodes"]), ["users/b/user-auth"]);
    assert_eq!(d["artifacts"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        names(&data(&addr, search, json!({ "ns": "users/b" }))["artifacts"]["nodes"]),
        ["users/b/app", "users/b/user-auth"]
    );
    assert_eq!(names(&data(&addr, search, json!({ "q": "jwt" }))["artifacts"]["nodes"]), ["users/b/user-auth"]);

    // GET works too, with variables as JSON text.
    let r = http::must(
        &addr,
        "GET",
        "/graphql?query=query(%24n%3AString!)%7Bartifact(name%3A%24n)%7Bname%7D%7D&variables=%7B%22n%22%3A%22users%2Fb%2Fapp%22%7D",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["artifact"]["name"], "users/b/app");

    // Unknown artifacts are null, not errors.
    let d = data(&addr, "{ artifact(name: \"users/a/nothing\") { name } }", json!({}));
    assert_eq!(d, json!({ "artifact": null }));

    // Introspection stays on.
    let d = data(&addr, "{ __schema { queryType { name } } __type(name: \"Version\") { name } }", json!({}));
    assert_eq!(d["__schema"]["queryType"]["name"], "Query");
    assert_eq!(d["__type"]["name"], "Version");

    refusals(&addr);
    assert!(reg.log_tail(20_000).lines().all(|l| !l.contains("panicked")), "{}", reg.log_tail(4000));
}

/// Each refusal, with the status the GraphQL-over-HTTP specification gives it.
fn refusals(addr: &str) {
    // Too costly: refused before running; no data at all.
    let costly = "{ artifacts(first: 100) { nodes { versions(first: 100) { nodes { version } } \
        dependents(first: 100) { nodes { range } } } } }";
    let body = graphql_as(addr, None, costly, json!({}));
    assert!(body.get("data").is_none(), "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("too complex"), "{body}");
    // Answered as application/graphql-response+json, a document that fails validation is a 400.
    let request = json!({ "query": costly }).to_string();
    let r = post(addr, &[("Accept", "application/graphql-response+json, application/json;q=0.9")], request.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/graphql-response+json"));
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains("too complex"));

    // A syntax error is a GraphQL error with its location.
    let body = graphql_as(addr, None, "{ artifact(name: \"users/a/crypto-utils\") { name ", json!({}));
    assert!(body.get("data").is_none(), "{body}");
    assert!(body["errors"][0]["locations"][0]["line"].is_u64(), "{body}");
    let r = post(addr, &[("Accept", "application/graphql-response+json")], br#"{"query": "{ artifact("}"#);
    assert_eq!(r.status, 400, "{}", r.text());

    // Bad arguments fail their field, with a code; execution ran, so 200 whatever the type.
    let too_many = "{ artifact(name: \"users/a/crypto-utils\") { name versions(first: 101) { totalCount } } }";
    let r = post(
        addr,
        &[("Accept", "application/graphql-response+json")],
        json!({ "query": too_many }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["data"]["artifact"]["versions"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["artifact", "versions"]), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    let foreign =
        "query($c: String) { artifact(name: \"users/a/crypto-utils\") { versions(after: $c) { totalCount } } }";
    let cursor = data(addr, "{ artifacts(first: 1) { pageInfo { endCursor } } }", json!({}))["artifacts"]["pageInfo"]
        ["endCursor"]
        .clone();
    let body = graphql_as(addr, None, foreign, json!({ "c": cursor }));
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    let body = graphql_as(addr, None, "{ artifact(name: \"not a name\") { name } }", json!({}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");

    // Not GraphQL requests at all.
    assert_eq!(post(addr, &[], b"{not json").status, 400);
    assert_eq!(post(addr, &[], br#"{"variables": {}}"#).status, 400, "no query");
    assert_eq!(post(addr, &[], br#"{"query": "{ __typename }", "variables": [1]}"#).status, 400);
    let r = http::must(addr, "POST", "/graphql", &[("Content-Type", "text/plain")], b"{ __typename }");
    assert_eq!(r.status, 415);
    let huge = json!({ "query": format!("{{ __typename }} # {}", "x".repeat(64 * 1024)) }).to_string();
    assert_eq!(post(addr, &[], huge.as_bytes()).status, 413);
    assert_eq!(http::must(addr, "GET", "/graphql", &[], b"").status, 400, "GET without a query");
}

/// A node with authentication on and no request budgets, once it can issue tokens.
fn start_with_auth(dir: &Path) -> Registry {
    let config = dir.join("node.toml");
    std::fs::write(&config, "[auth]\nenabled = true\n[limits]\nenabled = false\n").unwrap();
    let mut reg = Registry::launch_configured(common::free_port(), &dir.join("data"), &config);
    reg.wait_ready();
    // The meta leader creates the first signing key a moment after start.
    let deadline = Instant::now() + TIMEOUT;
    while http::must(&reg.addr(), "GET", "/.well-known/jwks.json", &[], b"").status != 200 {
        assert!(Instant::now() < deadline, "no signing key within {TIMEOUT:?}");
        common::pause(Duration::from_millis(50));
    }
    reg
}

/// Signs `user` up and returns an `Authorization` value for their session.
fn sign_up(addr: &str, user: &str) -> String {
    let password = format!("a long test passphrase for {}", user.len() * 7919);
    let body = json!({ "name": user, "email": format!("{user}@example.com"), "password": password });
    let headers = [("Content-Type", "application/json")];
    let r = http::must(addr, "POST", "/api/v1/users", &headers, body.to_string().as_bytes());
    assert_eq!(r.status, 201, "sign-up of {user}: {}", r.text());
    let login = json!({ "login": user, "password": password });
    let r = http::must(addr, "POST", "/api/v1/auth/login", &headers, login.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    format!("Bearer {}", r.json()["accessToken"].as_str().unwrap())
}

#[test]
fn private_artifacts_are_invisible_without_a_role() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start_with_auth(dir.path());
    let addr = reg.addr();
    let alice = sign_up(&addr, "alice");
    let bob = sign_up(&addr, "bob");
    publish(&addr, Some(&alice), "users/alice/crypto-utils", "1.0.0", "Hashing helpers", &[]);
    publish(&addr, Some(&bob), "users/bob/user-auth", "1.0.0", "Sign-in", &[("users/alice/crypto-utils", "^1.0.0")]);

    let graph = "{ util: artifact(name: \"users/alice/crypto-utils\") { name dependents { totalCount nodes { artifact { name } } } } \
        auth: artifact(name: \"users/bob/user-auth\") { latest { publisher { name verified namespace } \
        dependencies { name artifact { name } resolved { version publisher { name } } } } } \
        artifacts { nodes { name } } }";
    let everything = json!({
        "util": { "name": "users/alice/crypto-utils", "dependents": { "totalCount": 1, "nodes": [{ "artifact": { "name": "users/bob/user-auth" } }] } },
        "auth": { "latest": {
            "publisher": { "name": "bob", "verified": false, "namespace": "users/bob" },
            "dependencies": [{ "name": "users/alice/crypto-utils", "artifact": { "name": "users/alice/crypto-utils" },
                               "resolved": { "version": "1.0.0", "publisher": { "name": "alice" } } }],
        } },
        "artifacts": { "nodes": [{ "name": "users/alice/crypto-utils" }, { "name": "users/bob/user-auth" }] },
    });
    assert_eq!(data(&addr, graph, json!({})), everything, "public: everyone sees everything");

    let private = json!({ "visibility": "private" }).to_string();
    let headers = [("Content-Type", "application/json"), ("Authorization", alice.as_str())];
    let r = http::must(&addr, "PUT", "/api/v1/namespaces/users/alice/policy", &headers, private.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());

    let hidden = json!({
        "util": null,
        "auth": { "latest": {
            "publisher": { "name": "bob", "verified": false, "namespace": "users/bob" },
            "dependencies": [{ "name": "users/alice/crypto-utils", "artifact": null, "resolved": null }],
        } },
        "artifacts": { "nodes": [{ "name": "users/bob/user-auth" }] },
    });
    for (who, auth) in [("anonymous", None), ("bob", Some(bob.as_str()))] {
        assert_eq!(graphql_as(&addr, auth, graph, json!({}))["data"], hidden, "as {who}");
    }
    assert_eq!(graphql_as(&addr, Some(&alice), graph, json!({}))["data"], everything, "as alice");

    // A bad credential is refused outright, as on the REST API.
    let r = post(&addr, &[("Authorization", "Bearer not-a-token")], br#"{"query": "{ __typename }"}"#);
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn searches_over_many_artifacts_page_by_budget_without_revealing_private_names() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start_with_auth(dir.path());
    let addr = reg.addr();
    let alice = sign_up(&addr, "alice");
    let bob = sign_up(&addr, "bob");
    // More artifacts in one namespace (so one shard) than a search examines per shard.
    for i in 0..300 {
        publish(&addr, Some(&alice), &format!("users/alice/lib-{i:03}"), "1.0.0", "a library", &[]);
    }
    for i in 0..3 {
        publish(&addr, Some(&bob), &format!("users/bob/zeta-{i}"), "1.0.0", "zeta tools", &[]);
    }
    let private = json!({ "visibility": "private" }).to_string();
    let headers = [("Content-Type", "application/json"), ("Authorization", alice.as_str())];
    let r = http::must(&addr, "PUT", "/api/v1/namespaces/users/alice/policy", &headers, private.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let search = |auth: &str, query: &str| {
        let r = http::must(&addr, "GET", &format!("/api/v1/artifacts?{query}"), &[("Authorization", auth)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };

    // Bob's searches skip alice's private artifacts without spending budget on them, so no
    // cursor ever names one.
    let found = search(&bob, "q=zeta");
    assert_eq!(found["results"].as_array().unwrap().len(), 3, "{found}");
    assert_eq!(found["next"], Value::Null);
    assert_eq!(search(&bob, "q=nothing-matches")["next"], Value::Null);

    // Alice sees her 300: a search matching none of them stops at the budget with a cursor
    // (one of hers), and the next page finishes the list.
    let first = search(&alice, "q=nothing-matches");
    assert!(first["results"].as_array().unwrap().is_empty());
    let next = first["next"].as_str().expect("a cursor after the budget").to_owned();
    assert!(next.starts_with("users/alice/lib-"), "{next}");
    let second = search(&alice, &format!("q=nothing-matches&after={next}"));
    assert_eq!(second["next"], Value::Null, "{second}");
    // GraphQL goes on through such pages itself, charging them to the request's budget.
    let page = graphql_as(
        &addr,
        Some(&alice),
        r#"{ artifacts(query: "nothing-matches") { nodes { name } pageInfo { hasNextPage } } }"#,
        json!({}),
    );
    assert_eq!(page["data"]["artifacts"], json!({ "nodes": [], "pageInfo": { "hasNextPage": false } }), "{page}");
    let page = graphql_as(
        &addr,
        None,
        r#"{ artifacts(query: "zeta", first: 2) { nodes { name } pageInfo { hasNextPage endCursor } } }"#,
        json!({}),
    );
    assert_eq!(page["data"]["artifacts"]["pageInfo"]["hasNextPage"], true);
    let cursor = page["data"]["artifacts"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let rest = graphql_as(
        &addr,
        None,
        &format!(r#"{{ artifacts(query: "zeta", first: 2, after: "{cursor}") {{ nodes {{ name }} }} }}"#),
        json!({}),
    );
    assert_eq!(rest["data"]["artifacts"]["nodes"], json!([{ "name": "users/bob/zeta-2" }]));

    // The same dependents list asked for 1,200 times is read once.
    let aliases: String = (0..1200).map(|i| format!("d{i}: dependents(first: 0) {{ totalCount }} ")).collect();
    let many =
        graphql_as(&addr, None, &format!(r#"{{ artifact(name: "users/bob/zeta-0") {{ {aliases} }} }}"#), json!({}));
    assert!(many.get("errors").is_none(), "{}", &many.to_string()[..300.min(many.to_string().len())]);
    assert_eq!(many["data"]["artifact"]["d1199"]["totalCount"], 0);
    // A version's dependencies are paged like every list.
    let refused = graphql_as(
        &addr,
        None,
        r#"{ artifact(name: "users/bob/zeta-0") { latest { dependencies(first: 101) { name } } } }"#,
        json!({}),
    );
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("first"), "{refused}");
}
