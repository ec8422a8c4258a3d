//! Identity and access against a running server (`[auth] enabled = true`):
//!
//! * the authorisation matrix: every role × pull/push/delete/administer × a public and a private
//!   namespace × anonymous, password, session token, registry token and API keys of each
//!   permission, over the OCI API and the REST API, each case checked for its status and, when
//!   refused, for leaving the data as it was;
//! * wrong, expired, revoked, signed-out and out-of-scope credentials;
//! * hostile input: forged, `alg=none`, HS256 and rotated-out tokens, scope escalation at the
//!   token endpoint, path tricks in repository names, oversized headers;
//! * real clients (skopeo, podman) logging in and pushing and pulling with credentials.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::http::{self, Response};
use common::{ContainersEnv, Registry, digest_of, require_tool, run_bounded};
use serde_json::{Value, json};

const PASSWORD_SUFFIX: &str = "a long test passphrase";

/// Each test user's password: long, and never containing the user's name.
fn password(user: &str) -> String {
    format!("{PASSWORD_SUFFIX} number {}", user.bytes().map(u64::from).sum::<u64>() * 7919)
}

/// A node with authentication on, `root-admin` as registry administrator, and no request
/// budgets (the tests of budgets set their own).
fn start(dir: &Path, extra: &str) -> Registry {
    start_on(common::free_port(), dir, extra)
}

/// [`start`] on a chosen port (an OpenID provider must know the callback before the registry
/// starts). `extra` may begin with more `[auth]` keys, then hold further tables.
fn start_on(port: u16, dir: &Path, extra: &str) -> Registry {
    let split = extra.find("\n[").map_or(if extra.starts_with('[') { 0 } else { extra.len() }, |i| i + 1);
    let split = if extra.starts_with('[') { 0 } else { split };
    let (auth_keys, tables) = extra.split_at(split);
    let tables =
        if tables.contains("[limits]") { tables.to_owned() } else { format!("[limits]\nenabled = false\n{tables}") };
    let config = dir.join("node.toml");
    let text = format!("[auth]\nenabled = true\nadmins = [\"root-admin\"]\n{auth_keys}\n{tables}");
    std::fs::write(&config, text).unwrap();
    let mut reg = Registry::launch_configured(port, &dir.join("data"), &config);
    reg.wait_ready();
    // The meta leader creates the first signing key a moment after start.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while http::must(&reg.addr(), "GET", "/.well-known/jwks.json", &[], b"").status != 200 {
        assert!(std::time::Instant::now() < deadline, "no signing key within 20 s");
        common::pause(Duration::from_millis(50));
    }
    reg
}

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Auth {
    None,
    Header(String),
}

impl Auth {
    fn basic(user: &str, secret: &str) -> Auth {
        Auth::Header(format!("Basic {}", STANDARD.encode(format!("{user}:{secret}"))))
    }

    fn bearer(token: &str) -> Auth {
        Auth::Header(format!("Bearer {token}"))
    }
}

fn call(addr: &str, method: &str, path: &str, auth: &Auth, body: Option<&Value>) -> Response {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Auth::Header(value) = auth {
        headers.push(("Authorization", value));
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    http::must(addr, method, path, &headers, &bytes)
}

fn sign_up(addr: &str, user: &str) {
    let body = json!({ "name": user, "email": format!("{user}@example.com"), "password": password(user) });
    let r = call(addr, "POST", "/api/v1/users", &Auth::None, Some(&body));
    assert_eq!(r.status, 201, "sign-up of {user}: {}", r.text());
}

fn session(addr: &str, user: &str) -> (String, String) {
    session_with(addr, user, &password(user))
}

/// A registry token from `GET /token` for `scope`, authenticated by `auth`.
fn registry_token(addr: &str, auth: &Auth, scope: &str) -> String {
    let path = format!("/token?service=gati-registry&scope={scope}");
    let r = call(addr, "GET", &path, auth, None);
    assert_eq!(r.status, 200, "token for {scope}: {}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

fn api_key(addr: &str, session: &str, permissions: &[&str], repositories: &[&str]) -> String {
    let body = json!({ "label": "test", "permissions": permissions, "repositories": repositories });
    let r = call(addr, "POST", "/api/v1/user/keys", &Auth::bearer(session), Some(&body));
    assert_eq!(r.status, 201, "key: {}", r.text());
    r.json()["key"].as_str().unwrap().to_owned()
}

fn push_blob(addr: &str, repo: &str, auth: &Auth, data: &[u8]) -> Response {
    let headers: Vec<(&str, &str)> = match auth {
        Auth::Header(v) => vec![("Authorization", v.as_str()), ("Content-Type", "application/octet-stream")],
        Auth::None => vec![("Content-Type", "application/octet-stream")],
    };
    let path = format!("/v2/{repo}/blobs/uploads/?digest={}", digest_of(data));
    http::must(addr, "POST", &path, &headers, data)
}

/// Pushes a one-layer image as `repo:tag` and returns its manifest digest.
fn push_image(addr: &str, repo: &str, tag: &str, auth: &Auth) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = format!("layer of {repo}:{tag} {}", common::Rng::new().next_u64()).into_bytes();
    for blob in [&config, &layer] {
        let r = push_blob(addr, repo, auth, blob);
        assert_eq!(r.status, 201, "blob push to {repo}: {}", r.text());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest_of(&layer), "size": layer.len() }],
    })
    .to_string();
    let Auth::Header(value) = auth else { panic!("images are pushed with credentials") };
    let headers = [("Authorization", value.as_str()), ("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let r = http::must(addr, "PUT", &format!("/v2/{repo}/manifests/{tag}"), &headers, manifest.as_bytes());
    assert_eq!(r.status, 201, "manifest push to {repo}: {}", r.text());
    digest_of(manifest.as_bytes())
}

fn blob_status(addr: &str, repo: &str, digest: &str, admin: &Auth) -> u16 {
    call(addr, "HEAD", &format!("/v2/{repo}/blobs/{digest}"), admin, None).status
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Read,
    Write,
    Admin,
    Owner,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Pull,
    Push,
    Delete,
    Administer,
}

impl Act {
    fn needs(self) -> Role {
        match self {
            Act::Pull => Role::Read,
            Act::Push => Role::Write,
            Act::Delete | Act::Administer => Role::Admin,
        }
    }

    fn key_permission(self) -> &'static str {
        match self {
            Act::Pull => "pull",
            Act::Push => "push",
            Act::Delete => "delete",
            Act::Administer => "admin",
        }
    }

    fn scope_actions(self) -> &'static str {
        match self {
            Act::Pull => "pull",
            Act::Push => "push",
            Act::Delete => "delete",
            Act::Administer => "*",
        }
    }
}

#[derive(Clone, Debug)]
enum Cred {
    Anonymous,
    Password,
    Session,
    RegistryToken,
    Key(&'static str),
}

/// The outcome the rules promise: success, or the status of the refusal.
fn expected(role: Option<Role>, public: bool, act: Act, cred: &Cred) -> Result<(), u16> {
    let by_role = role.is_some_and(|r| r >= act.needs()) || (act == Act::Pull && public);
    if matches!(cred, Cred::Anonymous) {
        return if by_role { Ok(()) } else { Err(401) };
    }
    if !public && role.is_none() {
        return Err(404);
    }
    if !by_role {
        return Err(403);
    }
    match cred {
        Cred::Key(permission) if *permission != act.key_permission() => Err(403),
        _ => Ok(()),
    }
}

struct Ns {
    namespace: &'static str,
    repo: &'static str,
    public: bool,
}

#[test]
fn authorisation_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "");
    let addr = reg.addr();
    let users = ["root-admin", "alice", "olga", "rita", "wendy", "adam", "mike", "stranger"];
    for user in users {
        sign_up(&addr, user);
    }
    let sessions: std::collections::HashMap<&str, String> = users.iter().map(|u| (*u, session(&addr, u).0)).collect();
    let admin = Auth::bearer(&sessions["root-admin"]);
    let olga = Auth::bearer(&sessions["olga"]);
    let alice = Auth::bearer(&sessions["alice"]);
    assert_eq!(call(&addr, "POST", "/api/v1/orgs", &olga, Some(&json!({ "name": "acme" }))).status, 201);
    let r = call(&addr, "PUT", "/api/v1/orgs/acme/members/mike", &olga, Some(&json!({ "role": "member" })));
    assert_eq!(r.status, 204, "{}", r.text());
    let private = json!({ "visibility": "private" });
    assert_eq!(call(&addr, "PUT", "/api/v1/namespaces/orgs/acme/policy", &olga, Some(&private)).status, 204);
    for (ns, granter) in [("users/alice", &alice), ("orgs/acme", &olga)] {
        for (user, role) in [("rita", "read"), ("wendy", "write"), ("adam", "admin")] {
            let grant = json!({ "grantee": { "kind": "user", "name": user }, "role": role });
            let r = call(&addr, "PUT", &format!("/api/v1/namespaces/{ns}/grants"), granter, Some(&grant));
            assert_eq!(r.status, 204, "grant {role} on {ns} to {user}: {}", r.text());
        }
    }
    let namespaces = [
        Ns { namespace: "users/alice", repo: "users/alice/app", public: true },
        Ns { namespace: "orgs/acme", repo: "orgs/acme/app", public: false },
    ];
    for ns in &namespaces {
        push_image(&addr, ns.repo, "v1", &admin);
    }
    let role_of = |user: &str, ns: &Ns| -> Option<Role> {
        match (user, ns.namespace) {
            ("root-admin", _) => Some(Role::Owner),
            ("alice", "users/alice") | ("olga", "orgs/acme") => Some(Role::Owner),
            ("rita", _) => Some(Role::Read),
            ("wendy", _) => Some(Role::Write),
            ("adam", _) => Some(Role::Admin),
            ("mike", "orgs/acme") => Some(Role::Read),
            _ => None,
        }
    };
    let mut keys = std::collections::HashMap::new();
    for user in users {
        for permission in ["pull", "push", "delete", "admin"] {
            keys.insert((user, permission), api_key(&addr, &sessions[user], &[permission], &[]));
        }
    }
    let mut principals: Vec<(&str, Cred)> = vec![("anonymous", Cred::Anonymous)];
    for user in users {
        for cred in [
            Cred::Password,
            Cred::Session,
            Cred::RegistryToken,
            Cred::Key("pull"),
            Cred::Key("push"),
            Cred::Key("delete"),
            Cred::Key("admin"),
        ] {
            principals.push((user, cred));
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut rng = common::Rng::new();
    for ns in &namespaces {
        for (user, cred) in &principals {
            for act in [Act::Pull, Act::Push, Act::Delete, Act::Administer] {
                if matches!(cred, Cred::RegistryToken) && act == Act::Administer {
                    continue; // registry tokens are for the OCI API
                }
                let auth = match cred {
                    Cred::Anonymous => Auth::None,
                    Cred::Password => Auth::basic(user, &password(user)),
                    Cred::Session => Auth::bearer(&sessions[user]),
                    Cred::Key(p) => Auth::bearer(&keys[&(*user, *p)]),
                    Cred::RegistryToken => {
                        let scope = format!("repository:{}:{}", ns.repo, act.scope_actions());
                        Auth::bearer(&registry_token(&addr, &Auth::basic(user, &password(user)), &scope))
                    }
                };
                let want = expected(role_of(user, ns), ns.public, act, cred);
                let (status, intact) = match act {
                    Act::Pull => {
                        let r = call(&addr, "GET", &format!("/v2/{}/manifests/v1", ns.repo), &auth, None);
                        (r.status, true)
                    }
                    Act::Push => {
                        let data = rng.bytes(64);
                        let r = push_blob(&addr, ns.repo, &auth, &data);
                        let stored = blob_status(&addr, ns.repo, &digest_of(&data), &admin) == 200;
                        (r.status, r.is_success() == stored)
                    }
                    Act::Delete => {
                        let data = rng.bytes(64);
                        assert_eq!(push_blob(&addr, ns.repo, &admin, &data).status, 201);
                        let digest = digest_of(&data);
                        let r = call(&addr, "DELETE", &format!("/v2/{}/blobs/{digest}", ns.repo), &auth, None);
                        let still = blob_status(&addr, ns.repo, &digest, &admin) == 200;
                        (r.status, r.is_success() != still)
                    }
                    Act::Administer => {
                        let r = call(&addr, "GET", &format!("/api/v1/namespaces/{}/policy", ns.namespace), &auth, None);
                        (r.status, true)
                    }
                };
                checked += 1;
                let ok = match want {
                    Ok(()) => (200..300).contains(&status),
                    Err(code) => status == code,
                };
                if !ok || !intact {
                    failures.push(format!(
                        "{user} with {cred:?} doing {act:?} on {}: got {status} (data intact: {intact}), expected {want:?}",
                        ns.namespace
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cases wrong:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 400, "the matrix covers {checked} cases");

    // An API key limited to other repositories cannot see a private one, and cannot write a
    // public one it is not limited to.
    let limited = api_key(&addr, &sessions["wendy"], &["pull", "push"], &["users/alice/other*"]);
    let auth = Auth::bearer(&limited);
    assert_eq!(call(&addr, "GET", "/v2/orgs/acme/app/manifests/v1", &auth, None).status, 404);
    assert_eq!(push_blob(&addr, "users/alice/app", &auth, b"not here").status, 403);
    assert_eq!(push_blob(&addr, "users/alice/other-app", &auth, b"here").status, 201);
    // A key cannot mint keys, nor manage the account or its organisations.
    let minted =
        call(&addr, "POST", "/api/v1/user/keys", &auth, Some(&json!({ "label": "x", "permissions": ["pull"] })));
    assert_eq!(minted.status, 403, "{}", minted.text());
    let olga_key = Auth::bearer(&keys[&("olga", "admin")]);
    let promote = json!({ "role": "owner" });
    assert_eq!(call(&addr, "PUT", "/api/v1/orgs/acme/members/mike", &olga_key, Some(&promote)).status, 403);
    assert_eq!(call(&addr, "POST", "/api/v1/orgs", &olga_key, Some(&json!({ "name": "acme-two" }))).status, 403);
    assert_eq!(call(&addr, "POST", "/api/v1/auth/logout-everywhere", &olga_key, None).status, 403);
    // Registry tokens are for the OCI API only.
    let token = registry_token(&addr, &Auth::basic("olga", &password("olga")), "repository:orgs/acme/app:*");
    assert_eq!(call(&addr, "GET", "/api/v1/user", &Auth::bearer(&token), None).status, 401);
    assert_eq!(call(&addr, "PUT", "/api/v1/orgs/acme/members/mike", &Auth::bearer(&token), Some(&promote)).status, 401);
    assert_eq!(call(&addr, "GET", "/api/v1/orgs/acme", &olga, None).json()["members"]["mike"], "member");
}

#[test]
fn refused_credentials_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "");
    let addr = reg.addr();
    for user in ["root-admin", "alice", "mallory"] {
        sign_up(&addr, user);
    }
    let (alice_session, alice_refresh) = session(&addr, "alice");
    let alice = Auth::bearer(&alice_session);
    let original = push_image(&addr, "users/alice/app", "v1", &alice);
    // The overwriting manifest's config is in the repository, so only credentials can refuse it.
    assert_eq!(push_blob(&addr, "users/alice/app", &alice, b"{}").status, 201);
    let tag_points_at_original = || {
        let r = call(&addr, "GET", "/v2/users/alice/app/manifests/v1", &Auth::None, None);
        r.status == 200 && r.header("docker-content-digest") == Some(original.as_str())
    };
    let try_overwrite = |auth: &Auth| -> u16 {
        let manifest = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(b"{}"), "size": 2 }, "layers": [] });
        let mut headers = vec![("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
        if let Auth::Header(v) = auth {
            headers.push(("Authorization", v.as_str()));
        }
        http::must(&addr, "PUT", "/v2/users/alice/app/manifests/v1", &headers, manifest.to_string().as_bytes()).status
    };

    // Wrong password, unknown user, someone else's credentials, garbage.
    assert_eq!(try_overwrite(&Auth::basic("alice", "not her password at all")), 401);
    assert_eq!(try_overwrite(&Auth::basic("nobody-here", "whatever password")), 401);
    assert_eq!(try_overwrite(&Auth::basic("mallory", &password("mallory"))), 403);
    assert_eq!(try_overwrite(&Auth::bearer("not.a.token")), 401);
    assert_eq!(try_overwrite(&Auth::Header("Basic %%%".into())), 401);
    assert!(tag_points_at_original());

    // An API key: works (and its last use is recorded), then is revoked everywhere; an
    // expiring key stops on time.
    let key = api_key(&addr, &alice_session, &["pull", "push"], &[]);
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&key), b"with key").status, 201);
    let id = key.split('_').nth(1).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let keys = call(&addr, "GET", "/api/v1/user/keys", &alice, None).json();
        let listed = keys["keys"].as_array().unwrap().iter().find(|k| k["id"] == id).cloned().unwrap();
        assert!(listed.get("key").is_none() && !listed.to_string().contains(&key), "the secret is never listed");
        if listed["lastUsedAt"].as_u64().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the key's last use was never recorded: {listed}");
        common::pause(Duration::from_millis(200));
    }
    assert_eq!(call(&addr, "DELETE", &format!("/api/v1/user/keys/{id}"), &alice, None).status, 204);
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&key), b"revoked key").status, 401);
    assert_eq!(try_overwrite(&Auth::basic("alice", &key)), 401, "a revoked key as a Basic password");
    let body = json!({ "label": "short", "permissions": ["push"], "expiresIn": 1 });
    let short =
        call(&addr, "POST", "/api/v1/user/keys", &alice, Some(&body)).json()["key"].as_str().unwrap().to_owned();
    common::pause(Duration::from_millis(2100));
    assert_eq!(try_overwrite(&Auth::bearer(&short)), 401, "an expired key");
    // A key is bound to its owner's name when given as a Basic password.
    let other = api_key(&addr, &alice_session, &["push"], &[]);
    assert_eq!(try_overwrite(&Auth::basic("mallory", &other)), 401);

    // A registry token issued for an API key ends with the key, and a token is never
    // exchanged for another at the token endpoint.
    let key_for_token = api_key(&addr, &alice_session, &["pull", "push"], &[]);
    let from_key = registry_token(&addr, &Auth::basic("alice", &key_for_token), "repository:users/alice/app:pull,push");
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&from_key), b"via a key's token").status, 201);
    let renew = "/token?service=gati-registry&scope=repository:users/alice/app:push";
    let renewed = call(&addr, "GET", renew, &Auth::bearer(&from_key), None);
    assert_eq!(renewed.status, 401, "{}", renewed.text());
    let key_id = key_for_token.split('_').nth(1).unwrap();
    assert_eq!(call(&addr, "DELETE", &format!("/api/v1/user/keys/{key_id}"), &alice, None).status, 204);
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&from_key), b"after the key went").status, 401);

    // Registry tokens cover only what was granted: a pull token cannot push.
    let pull = registry_token(&addr, &Auth::basic("alice", &password("alice")), "repository:users/alice/app:pull");
    let r = http::must(
        &addr,
        "POST",
        "/v2/users/alice/app/blobs/uploads/",
        &[("Authorization", &format!("Bearer {pull}"))],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("insufficient_scope"), "{:?}", r.headers);
    assert_eq!(try_overwrite(&Auth::bearer(&pull)), 401);

    // Signing out ends the session's tokens; a password change ends every earlier token.
    let (second, second_refresh) = session(&addr, "alice");
    let r = call(&addr, "POST", "/api/v1/auth/logout", &Auth::None, Some(&json!({ "refreshToken": second_refresh })));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(try_overwrite(&Auth::bearer(&second)), 401, "a signed-out session's access token");
    let r = call(&addr, "POST", "/api/v1/auth/refresh", &Auth::None, Some(&json!({ "refreshToken": second_refresh })));
    assert_eq!(r.status, 401, "a signed-out session's refresh token");
    common::pause(Duration::from_millis(1100)); // token times have second resolution
    let change = json!({ "current": password("alice"), "new": "an entirely new passphrase" });
    assert_eq!(call(&addr, "PUT", "/api/v1/user/password", &alice, Some(&change)).status, 204);
    assert_eq!(try_overwrite(&alice), 401, "a token issued before the password change");
    let r = call(&addr, "POST", "/api/v1/auth/refresh", &Auth::None, Some(&json!({ "refreshToken": alice_refresh })));
    assert_eq!(r.status, 401);
    assert_eq!(try_overwrite(&Auth::basic("alice", &password("alice"))), 401, "the old password");
    assert!(tag_points_at_original(), "no refused request changed the tag");
    assert_eq!(try_overwrite(&Auth::basic("alice", "an entirely new passphrase")), 201);

    // A disabled account is refused at once.
    let (admin_session, _) = session(&addr, "root-admin");
    let (mallory_session, _) = session(&addr, "mallory");
    let r = call(
        &addr,
        "PUT",
        "/api/v1/admin/users/mallory",
        &Auth::bearer(&admin_session),
        Some(&json!({ "disabled": true })),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(call(&addr, "GET", "/api/v1/user", &Auth::bearer(&mallory_session), None).status, 401);
    let r = call(
        &addr,
        "PUT",
        "/api/v1/admin/users/alice",
        &Auth::bearer(&mallory_session),
        Some(&json!({ "registryAdmin": true })),
    );
    assert_eq!(r.status, 401);
}

fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
}

#[test]
fn hostile_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "");
    let addr = reg.addr();
    for user in ["root-admin", "alice", "eve"] {
        sign_up(&addr, user);
    }
    let (alice, _) = session(&addr, "alice");
    push_image(&addr, "users/alice/app", "v1", &Auth::bearer(&alice));
    let private = json!({ "visibility": "private" });
    assert_eq!(
        call(&addr, "PUT", "/api/v1/namespaces/users/alice/policy", &Auth::bearer(&alice), Some(&private)).status,
        204
    );
    let pull = |auth: &Auth| call(&addr, "GET", "/v2/users/alice/app/manifests/v1", auth, None).status;
    assert_eq!(pull(&Auth::bearer(&alice)), 200);

    // Tokens that were not signed by the registry's key.
    let real = registry_token(&addr, &Auth::basic("alice", &password("alice")), "repository:users/alice/app:pull");
    assert_eq!(pull(&Auth::bearer(&real)), 200);
    let parts: Vec<&str> = real.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("alice");
    let none = forge(&json!({ "alg": "none", "typ": "JWT", "kid": header["kid"] }), &claims, b"");
    assert_eq!(pull(&Auth::bearer(&none)), 401, "alg=none");
    let hs = forge(&json!({ "alg": "HS256", "typ": "JWT", "kid": header["kid"] }), &claims, &[7u8; 32]);
    assert_eq!(pull(&Auth::bearer(&hs)), 401, "HS256");
    let mut eve_claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    eve_claims["access"] =
        json!([{ "type": "repository", "name": "users/alice/app", "actions": ["pull", "push", "delete"] }]);
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(eve_claims.to_string()), parts[2]);
    assert_eq!(pull(&Auth::bearer(&tampered)), 401, "payload changed under the signature");
    assert_eq!(pull(&Auth::bearer(&format!("{real}x"))), 401, "signature changed");

    // Scope escalation: eve asks for push and delete on alice's repository and gets nothing.
    let eve = Auth::basic("eve", &password("eve"));
    let r = call(
        &addr,
        "GET",
        "/token?service=gati-registry&scope=repository:users/alice/app:pull,push,delete,*",
        &eve,
        None,
    );
    assert_eq!(r.status, 200);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["access"], json!([]), "nothing granted: {claims}");
    assert_eq!(pull(&Auth::bearer(&token)), 404);
    let r = call(&addr, "GET", "/token?service=gati-registry&scope=repository:../users/alice/app:pull", &eve, None);
    assert_eq!(r.status, 400, "a path trick in a scope: {}", r.text());
    let r = call(&addr, "GET", "/token?service=another-registry&scope=repository:users/alice/app:pull", &eve, None);
    assert_eq!(r.status, 400, "a token for another service");

    // A key rotated out with no grace period ends the tokens it signed.
    let (admin, _) = session(&addr, "root-admin");
    let r = call(
        &addr,
        "POST",
        "/api/v1/admin/signing-keys/rotate",
        &Auth::bearer(&admin),
        Some(&json!({ "retirePreviousAfterSecs": 0 })),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    common::pause(Duration::from_millis(1100));
    assert_eq!(pull(&Auth::bearer(&real)), 401, "a token signed by a rotated-out key");
    assert_eq!(pull(&Auth::bearer(&alice)), 401, "a session token signed by a rotated-out key");
    let fresh = registry_token(&addr, &Auth::basic("alice", &password("alice")), "repository:users/alice/app:pull");
    assert_eq!(pull(&Auth::bearer(&fresh)), 200, "tokens of the new key work");
    let jwks = call(&addr, "GET", "/.well-known/jwks.json", &Auth::None, None).json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "the retired key is no longer published: {jwks}");
    let eve_rotates =
        call(&addr, "POST", "/api/v1/admin/signing-keys/rotate", &eve, Some(&json!({ "retirePreviousAfterSecs": 0 })));
    assert_eq!(eve_rotates.status, 403);

    // Path tricks never reach another namespace's content.
    let fresh_auth = Auth::bearer(&fresh);
    for path in [
        "/v2/users/eve/../alice/app/manifests/v1",
        "/v2/users/eve/%2e%2e/alice/app/manifests/v1",
        "/v2/users//alice/app/manifests/v1",
        "/v2/Users/alice/app/manifests/v1",
        "/v2/users/alice/app%2fmanifests/v1",
    ] {
        let r = call(&addr, "GET", path, &eve, None);
        assert!(matches!(r.status, 400 | 404), "{path}: {} {}", r.status, r.text());
        assert_ne!(r.status, 200);
    }
    assert_eq!(call(&addr, "GET", "/v2/users/alice/app/manifests/v1", &fresh_auth, None).status, 200);

    // Oversized credentials are refused, and the server stays up.
    let huge = format!("Bearer {}", "a".repeat(20 * 1024));
    assert_eq!(pull(&Auth::Header(huge)), 401);
    let enormous = format!("Basic {}", "A".repeat(200 * 1024));
    // The server may instead close the connection on a header block past its limit.
    if let Ok(r) = http::request(&addr, "GET", "/v2/users/alice/app/manifests/v1", &[("Authorization", &enormous)], b"")
    {
        assert!(matches!(r.status, 401 | 431), "{}", r.status);
    }
    assert_eq!(pull(&fresh_auth), 200, "the server still serves");

    // The catalog lists every repository, private ones included: registry administrators only.
    assert_eq!(call(&addr, "GET", "/v2/_catalog", &Auth::None, None).status, 401);
    assert_eq!(call(&addr, "GET", "/v2/_catalog", &eve, None).status, 403);
    let r = call(&addr, "GET", "/v2/_catalog", &Auth::basic("root-admin", &password("root-admin")), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["repositories"].as_array().unwrap().iter().any(|n| n == "users/alice/app"));
    // `/v2/` answers any valid credential, and challenges everyone else.
    assert_eq!(call(&addr, "GET", "/v2/", &eve, None).status, 200);
    assert_eq!(call(&addr, "GET", "/v2/", &Auth::basic("eve", "not her password"), None).status, 401);

    // Sign-up refuses reserved, confusable and malformed names, and weak passwords.
    for (name, email, pass) in [
        ("admin", "a@x.io", "a long enough passphrase"),
        ("a1ice", "b@x.io", "a long enough passphrase"),
        ("Alice", "c@x.io", "a long enough passphrase"),
        ("ev/e", "d@x.io", "a long enough passphrase"),
        ("fred", "not-an-email", "a long enough passphrase"),
        ("fred", "f@x.io", "short"),
        ("fred", "f@x.io", "password1234"),
    ] {
        let r = call(
            &addr,
            "POST",
            "/api/v1/users",
            &Auth::None,
            Some(&json!({ "name": name, "email": email, "password": pass })),
        );
        assert!(matches!(r.status, 409 | 422), "{name}/{email}: {} {}", r.status, r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
}

#[test]
fn oci_clients_log_in_push_and_pull_with_credentials() {
    require_tool("skopeo");
    require_tool("podman");
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "");
    let addr = reg.addr();
    sign_up(&addr, "alice");
    sign_up(&addr, "bob");
    let env = ContainersEnv::new(&dir.path().join("containers"), &reg);
    let layout = dir.path().join("layout");
    let out =
        run_bounded(
            std::process::Command::new("python3")
                .arg(common::interop_script("make_oci_layout.py"))
                .arg(&layout)
                .args(["--tag", "v1", "--platforms", "linux/amd64", "--layers", "2"]),
            Duration::from_secs(60),
        );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let skopeo = |args: &[&str]| run_bounded(env.skopeo().args(args), Duration::from_secs(120));
    let login = skopeo(&["login", "--tls-verify=false", "-u", "alice", "-p", "wrong password here", &addr]);
    assert!(!login.status.success(), "a wrong password must not log in");
    let login = skopeo(&["login", "--tls-verify=false", "-u", "alice", "-p", &password("alice"), &addr]);
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let dest = format!("docker://{addr}/users/alice/app:v1");
    let src = format!("oci:{}:v1", layout.display());
    let push = skopeo(&["copy", "--all", "--dest-tls-verify=false", &src, &dest]);
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    let inspect = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    // Out of scope: bob cannot push into alice's namespace.
    let bob = format!("bob:{}", password("bob"));
    let bob_dest = format!("docker://{addr}/users/alice/app:bob");
    let bob_push = skopeo(&["copy", "--all", "--dest-tls-verify=false", "--dest-creds", &bob, &src, &bob_dest]);
    assert!(!bob_push.status.success(), "bob pushed into alice's namespace");
    assert_eq!(call(&addr, "GET", "/v2/users/alice/app/manifests/bob", &Auth::None, None).status, 404);

    // oras (oras-py) logs in, pushes an artifact and a referrer, and pulls it back.
    let oras_dir = dir.path().join("oras");
    std::fs::create_dir_all(&oras_dir).unwrap();
    // (oras-py retries a refused login without end, so wrong credentials are shown with skopeo.)
    let roundtrip = run_bounded(
        std::process::Command::new("python3")
            .arg(common::interop_script("oras_roundtrip.py"))
            .args(["--registry", &addr, "--workdir"])
            .arg(&oras_dir)
            .args(["--repo", "users/alice/artifact", "--username", "alice", "--password", &password("alice")])
            .stdin(std::process::Stdio::null()),
        Duration::from_secs(180),
    );
    assert!(roundtrip.status.success(), "{}", String::from_utf8_lossy(&roundtrip.stderr));

    // podman logs in and pulls what skopeo pushed.
    let storage = dir.path().join("podman");
    let podman = |args: &[&str]| {
        let mut cmd = std::process::Command::new("podman");
        env.apply(&mut cmd)
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(["--storage-driver=vfs", "--events-backend=none", "--cgroup-manager=cgroupfs"])
            .args(args);
        run_bounded(&mut cmd, Duration::from_secs(180))
    };
    let login = podman(&["login", "--tls-verify=false", "-u", "alice", "-p", &password("alice"), &addr]);
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let policy = env.policy.display().to_string();
    let image = format!("{addr}/users/alice/app:v1");
    let pulled = podman(&["pull", "--tls-verify=false", "--signature-policy", &policy, &image]);
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));

    // After logout, pulls of private content need credentials again.
    let (alice_session, _) = session(&addr, "alice");
    let private = json!({ "visibility": "private" });
    let r = call(&addr, "PUT", "/api/v1/namespaces/users/alice/policy", &Auth::bearer(&alice_session), Some(&private));
    assert_eq!(r.status, 204);
    assert!(skopeo(&["logout", "--all"]).status.success());
    assert!(
        !skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]).status.success(),
        "anonymous pull of private content"
    );
    // An API key works as the password of a real client.
    let key = api_key(&addr, &alice_session, &["pull"], &[]);
    let with_key = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &format!("alice:{key}"), &dest]);
    assert!(with_key.status.success(), "{}", String::from_utf8_lossy(&with_key.stderr));
}

/// Sends GETs of `path` until one is refused with 429 (at most `max`); returns how many passed
/// and the refusal.
fn until_refused(addr: &str, path: &str, auth: &Auth, max: usize) -> (usize, Response) {
    for passed in 0..max {
        let r = call(addr, "GET", path, auth, None);
        if r.status == 429 {
            return (passed, r);
        }
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    panic!("{max} requests of {path} were all served");
}

fn retry_after(r: &Response) -> Duration {
    let secs: u64 = r.header("retry-after").expect("429 carries Retry-After").parse().expect("whole seconds");
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    Duration::from_secs(secs)
}

#[test]
fn budgets_refuse_with_429_and_recover_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "[limits]\nenabled = true\nreads_per_second = 2.0\nread_burst = 6\nwrites_per_second = 1.0\nwrite_burst = 4\n\
                  logins_per_minute = 60.0\nlogin_burst = 8\nprincipal_reads_per_second = 1000.0\n";
    let reg = start(dir.path(), limits);
    let addr = reg.addr();
    sign_up(&addr, "alice");
    let (alice, _) = session(&addr, "alice");
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&alice), b"x").status, 201);
    common::pause(Duration::from_secs(4)); // the write and read budgets refill

    // Reads by this address: the burst passes, then 429 with Retry-After in the OCI format.
    let path = format!("/v2/users/alice/app/blobs/{}", digest_of(b"x"));
    let (passed, refused) = until_refused(&addr, &path, &Auth::None, 50);
    assert!((5..=7).contains(&passed), "{passed} reads passed before the first 429");
    assert_eq!(refused.json()["errors"][0]["code"], "TOOMANYREQUESTS");
    // Writes have their own budget: still open while reads are spent.
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&alice), b"y").status, 201);
    common::pause(retry_after(&refused) + Duration::from_millis(100));
    assert_eq!(call(&addr, "GET", &path, &Auth::None, None).status, 200, "reads recover after Retry-After");

    // Writes: the burst passes, then 429; they recover too.
    let mut refused = None;
    for i in 0..20u32 {
        let r = push_blob(&addr, "users/alice/app", &Auth::bearer(&alice), format!("blob {i}").as_bytes());
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let refused = refused.expect("writes past the burst are refused");
    common::pause(retry_after(&refused) + Duration::from_millis(100));
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&alice), b"after the wait").status, 201);

    // The REST API answers the same way, in problem+json.
    common::pause(Duration::from_secs(4));
    let (_, refused) = until_refused(&addr, "/api/v1/user", &Auth::bearer(&alice), 50);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert_eq!(refused.json()["status"], 429);
}

#[test]
fn repeated_failed_sign_ins_lock_the_name_out_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "[limits]\nenabled = true\nlogins_per_minute = 600.0\nlogin_burst = 100\nfailed_logins_before_lockout = 3\n\
                  lockout_secs = 2\nmax_lockout_secs = 8\n";
    let reg = start(dir.path(), limits);
    let addr = reg.addr();
    sign_up(&addr, "alice");
    let token = |secret: &str| call(&addr, "GET", "/token?service=gati-registry", &Auth::basic("alice", secret), None);
    for _ in 0..3 {
        assert_eq!(token("guess number one two").status, 401);
    }
    // Locked out: even the right password waits, and says how long.
    let locked = token(&password("alice"));
    assert_eq!(locked.status, 429, "{}", locked.text());
    let wait = retry_after(&locked);
    // Other names and the REST login are locked alike (one guard per name, every surface).
    let body = json!({ "login": "alice", "password": password("alice") });
    assert_eq!(call(&addr, "POST", "/api/v1/auth/login", &Auth::None, Some(&body)).status, 429);
    common::pause(wait + Duration::from_millis(200));
    assert_eq!(token(&password("alice")).status, 200, "the lockout ends");

    // The address's sign-in budget is separate from the name's: a flood of guesses at many
    // names is cut off too.
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "[limits]\nenabled = true\nlogins_per_minute = 6.0\nlogin_burst = 5\n");
    let addr = reg.addr();
    let mut refused = None;
    for i in 0..30 {
        let r = call(
            &addr,
            "GET",
            "/token?service=gati-registry",
            &Auth::basic(&format!("user{i}"), "some guess here"),
            None,
        );
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 401);
    }
    let refused = refused.expect("sign-in attempts past the burst are refused");
    assert_eq!(refused.json()["error"], "slow_down");
    assert!(retry_after(&refused) >= Duration::from_secs(1));
}

/// Polls a namespace's audit log until `wanted` holds of its entries (they are replicated in
/// batches a fraction of a second after the requests), bounded by 10 s.
fn audit_until(addr: &str, namespace: &str, auth: &Auth, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = call(addr, "GET", &format!("/api/v1/namespaces/{namespace}/audit?limit=1000"), auth, None);
        assert_eq!(r.status, 200, "{}", r.text());
        let entries = r.json()["entries"].as_array().unwrap().clone();
        if wanted(&entries) {
            return entries;
        }
        assert!(std::time::Instant::now() < deadline, "audit log of {namespace} never matched: {entries:#?}");
        common::pause(Duration::from_millis(100));
    }
}

fn has(entries: &[Value], actor: Option<&str>, action: &str, status: u16) -> bool {
    entries.iter().any(|e| {
        e["actor"].as_str() == actor
            && e["action"].as_str() == Some(action)
            && e["status"].as_u64() == Some(u64::from(status))
    })
}

#[test]
fn the_audit_log_records_writes_and_private_access_for_namespace_admins() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "");
    let addr = reg.addr();
    for user in ["root-admin", "alice", "bob", "olga", "mike"] {
        sign_up(&addr, user);
    }
    let (alice, _) = session(&addr, "alice");
    let private = json!({ "visibility": "private" });
    assert_eq!(
        call(&addr, "PUT", "/api/v1/namespaces/users/alice/policy", &Auth::bearer(&alice), Some(&private)).status,
        204
    );
    push_image(&addr, "users/alice/app", "v1", &Auth::bearer(&alice));
    let pull = |auth: &Auth| call(&addr, "GET", "/v2/users/alice/app/manifests/v1", auth, None).status;
    assert_eq!(pull(&Auth::bearer(&alice)), 200);
    assert_eq!(pull(&Auth::basic("bob", &password("bob"))), 404);
    assert_eq!(pull(&Auth::None), 401);
    api_key(&addr, &alice, &["pull"], &[]);

    let entries = audit_until(&addr, "users/alice", &Auth::bearer(&alice), |e| {
        has(e, Some("alice"), "push", 201)
            && has(e, Some("alice"), "pull", 200)
            && has(e, Some("bob"), "pull", 404)
            && has(e, None, "pull", 401)
            && has(e, Some("alice"), "POST /api/v1/user/keys", 201)
    });
    let bob_pull = entries.iter().find(|e| e["actor"] == "bob").unwrap();
    assert_eq!(bob_pull["outcome"], "denied");
    assert_eq!(bob_pull["client"], "127.0.0.1");
    assert_eq!(bob_pull["credential"], "password");
    assert_eq!(bob_pull["target"], "users/alice/app");
    assert!(bob_pull["atMs"].as_u64().unwrap() > 1_700_000_000_000);
    // Sequence numbers rise; paging continues after the last one seen.
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let r = call(
        &addr,
        "GET",
        &format!("/api/v1/namespaces/users/alice/audit?after={}", seqs[1]),
        &Auth::bearer(&alice),
        None,
    );
    assert_eq!(r.json()["entries"][0]["seq"].as_u64(), Some(seqs[2]));
    // Export as JSON lines.
    let r =
        call(&addr, "GET", "/api/v1/namespaces/users/alice/audit?format=jsonl&limit=1000", &Auth::bearer(&alice), None);
    assert_eq!(r.header("content-type"), Some("application/jsonl"));
    let lines: Vec<Value> = r.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), entries.len());
    // Only those who administer the namespace read it.
    let bob = Auth::basic("bob", &password("bob"));
    assert_eq!(call(&addr, "GET", "/api/v1/namespaces/users/alice/audit", &bob, None).status, 404);
    assert_eq!(call(&addr, "GET", "/api/v1/namespaces/users/alice/audit", &Auth::None, None).status, 401);

    // Organisation admins read their organisation's log; members may not.
    let (olga, _) = session(&addr, "olga");
    assert_eq!(call(&addr, "POST", "/api/v1/orgs", &Auth::bearer(&olga), Some(&json!({ "name": "acme" }))).status, 201);
    let r =
        call(&addr, "PUT", "/api/v1/orgs/acme/members/mike", &Auth::bearer(&olga), Some(&json!({ "role": "member" })));
    assert_eq!(r.status, 204);
    audit_until(&addr, "orgs/acme", &Auth::bearer(&olga), |e| {
        has(e, Some("olga"), "PUT /api/v1/orgs/acme/members/mike", 204)
    });
    let r = call(&addr, "GET", "/api/v1/orgs/acme/audit", &Auth::basic("mike", &password("mike")), None);
    assert_eq!(r.status, 403, "{}", r.text());

    // Publisher verification, by a registry administrator, shows in the API.
    let (admin, _) = session(&addr, "root-admin");
    let r = call(
        &addr,
        "PUT",
        "/api/v1/admin/orgs/acme",
        &Auth::bearer(&admin),
        Some(&json!({ "verifiedPublisher": true })),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(call(&addr, "GET", "/api/v1/orgs/acme", &Auth::None, None).json()["verifiedPublisher"], true);
    let r = call(
        &addr,
        "PUT",
        "/api/v1/admin/users/alice",
        &Auth::bearer(&admin),
        Some(&json!({ "verifiedPublisher": true })),
    );
    assert_eq!(r.status, 200);
    assert_eq!(call(&addr, "GET", "/api/v1/users/alice", &Auth::None, None).json()["verifiedPublisher"], true);
    let r = call(
        &addr,
        "PUT",
        "/api/v1/admin/orgs/acme",
        &Auth::bearer(&olga),
        Some(&json!({ "verifiedPublisher": false })),
    );
    assert_eq!(r.status, 403, "only registry administrators verify");
}

/// The one-time token in the newest outbox message to `to` (polled: mail is written right
/// after the write that creates its token).
fn mailed_token(outbox: &Path, to: &str, subject: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut messages: Vec<_> = std::fs::read_dir(outbox)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        messages.sort();
        for path in messages.iter().rev() {
            let text = std::fs::read_to_string(path).unwrap();
            if text.contains(&format!("To: {to}\r\n")) && text.contains(&format!("Subject: {subject}\r\n")) {
                let token = text.split("token=").nth(1).unwrap().split_whitespace().next().unwrap();
                return token.to_owned();
            }
        }
        assert!(std::time::Instant::now() < deadline, "no mail {subject:?} to {to} in {}", outbox.display());
        common::pause(Duration::from_millis(50));
    }
}

#[test]
fn email_verification_and_password_reset_work_once_by_mailed_link() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "");
    let addr = reg.addr();
    let outbox = dir.path().join("data").join("outbox");
    sign_up(&addr, "alice");
    let (session_before, _) = session(&addr, "alice");
    let me = |token: &str| call(&addr, "GET", "/api/v1/user", &Auth::bearer(token), None);
    assert_eq!(me(&session_before).json()["emailVerified"], false);

    // Verification: the mailed token works once; a forged secret never.
    let token = mailed_token(&outbox, "alice@example.com", "Verify your email address");
    let verify =
        |token: &str| call(&addr, "POST", "/api/v1/auth/verify-email", &Auth::None, Some(&json!({ "token": token })));
    let (id, _) = token.split_once('.').unwrap();
    assert_eq!(verify(&format!("{id}.{}", "0".repeat(64))).status, 422, "a forged secret");
    assert_eq!(verify(&token).status, 204);
    assert_eq!(me(&session_before).json()["emailVerified"], true);
    assert_eq!(verify(&token).status, 422, "a used link");

    // Reset: unknown addresses get the same answer and no mail.
    let reset =
        |email: &str| call(&addr, "POST", "/api/v1/auth/password-reset", &Auth::None, Some(&json!({ "email": email })));
    let mails = || std::fs::read_dir(&outbox).unwrap().count();
    let before = mails();
    assert_eq!(reset("nobody@example.com").status, 202);
    assert_eq!(mails(), before, "no mail for an unknown address");
    common::pause(Duration::from_millis(1100)); // token times have second resolution
    assert_eq!(reset("alice@example.com").status, 202);
    let token = mailed_token(&outbox, "alice@example.com", "Reset your password");
    let confirm = |token: &str, password: &str| {
        let body = json!({ "token": token, "password": password });
        call(&addr, "POST", "/api/v1/auth/password-reset/confirm", &Auth::None, Some(&body))
    };
    assert_eq!(confirm(&token, "short").status, 422, "the password policy holds");
    let key = api_key(&addr, &session_before, &["pull"], &[]);
    assert_eq!(confirm(&token, "a brand new passphrase").status, 204);
    assert_eq!(confirm(&token, "another new passphrase").status, 422, "a used link");
    assert_eq!(me(&session_before).status, 401, "sessions from before the reset end");
    assert_eq!(me(&key).status, 401, "a reset revokes every API key");
    let login = |password: &str| {
        call(&addr, "POST", "/api/v1/auth/login", &Auth::None, Some(&json!({ "login": "alice", "password": password })))
            .status
    };
    assert_eq!(login(&password("alice")), 401);
    assert_eq!(login("a brand new passphrase"), 200);
    // An address already verified needs no new link.
    let (session_after, _) = session_with(&addr, "alice", "a brand new passphrase");
    assert_eq!(
        call(&addr, "POST", "/api/v1/auth/verify-email/resend", &Auth::bearer(&session_after), None).status,
        409
    );
}

fn session_with(addr: &str, user: &str, password: &str) -> (String, String) {
    let r =
        call(addr, "POST", "/api/v1/auth/login", &Auth::None, Some(&json!({ "login": user, "password": password })));
    assert_eq!(r.status, 200, "{}", r.text());
    let json = r.json();
    (json["accessToken"].as_str().unwrap().to_owned(), json["refreshToken"].as_str().unwrap().to_owned())
}

#[test]
fn openid_connect_sign_in_creates_and_finds_the_linked_account() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let provider = common::oidc::OidcProvider::start(&[common::oidc::callback_uri(&addr, "test")]);
    let extra = format!(
        "[[auth.oidc]]\nname = \"test\"\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        provider.issuer,
        common::oidc::CLIENT_ID,
        common::oidc::CLIENT_SECRET
    );
    let reg = start_on(port, dir.path(), &extra);
    assert_eq!(reg.addr(), addr);

    // The first sign-in creates the account, linked to the provider's subject.
    let first = common::oidc::sign_in(&addr, "test", "erin");
    assert_eq!(first.status, 200, "{}\n{}", first.text(), provider.log_tail(4000));
    let body = first.json();
    assert_eq!(body["user"]["name"], "erin");
    assert_eq!(body["user"]["email"], "erin@oidc.test");
    assert_eq!(body["user"]["emailVerified"], true);
    let token = body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(call(&addr, "GET", "/api/v1/user", &Auth::bearer(&token), None).json()["name"], "erin");
    assert_eq!(push_blob(&addr, "users/erin/app", &Auth::bearer(&token), b"from an external sign-in").status, 201);
    // Signing in again finds the same account instead of making another.
    let again = common::oidc::sign_in(&addr, "test", "erin");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["user"]["name"], "erin");
    assert_eq!(call(&addr, "GET", "/api/v1/users/erin-0000", &Auth::None, None).status, 404);
    // The account has no password: password sign-in is refused.
    let login = json!({ "login": "erin", "password": common::oidc::PASSWORD });
    assert_eq!(call(&addr, "POST", "/api/v1/auth/login", &Auth::None, Some(&login)).status, 401);

    // An address already used by another account is never taken over.
    let body = json!({ "name": "frank", "email": "frank@oidc.test", "password": password("frank") });
    assert_eq!(call(&addr, "POST", "/api/v1/users", &Auth::None, Some(&body)).status, 201);
    let takeover = common::oidc::sign_in(&addr, "test", "frank");
    assert_eq!(takeover.status, 409, "{}", takeover.text());

    // A callback that does not match the browser's own start is refused.
    let mut browser = common::oidc::Browser::new();
    let start = browser.get(&format!("http://{addr}/api/v1/auth/oidc/test/start"));
    assert_eq!(start.status, 302);
    let location = start.header("location").unwrap().to_owned();
    let callback = browser.authorize(&location, &common::oidc::callback_uri(&addr, "test"), "gina");
    let forged_state = callback.replace("state=", "state=x");
    assert_eq!(browser.get(&forged_state).status, 401, "a changed state");
    let no_cookie = http::must(&addr, "GET", &callback[callback.find("/api/").unwrap()..], &[], b"");
    assert_eq!(no_cookie.status, 401, "a callback without the sign-in cookie: {}", no_cookie.text());
    assert_eq!(call(&addr, "GET", "/api/v1/auth/oidc/nobody/start", &Auth::None, None).status, 404);
    let refused = call(&addr, "GET", "/api/v1/auth/oidc/test/callback?error=access_denied", &Auth::None, None);
    assert_eq!(refused.status, 401);
}

#[test]
fn expired_access_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start(dir.path(), "access_token_secs = 10\nrefresh_token_secs = 10\n");
    let addr = reg.addr();
    sign_up(&addr, "alice");
    let (session, refresh) = session(&addr, "alice");
    let token =
        registry_token(&addr, &Auth::basic("alice", &password("alice")), "repository:users/alice/app:pull,push");
    assert_eq!(push_blob(&addr, "users/alice/app", &Auth::bearer(&token), b"while valid").status, 201);
    // Ten seconds of life plus the thirty seconds of clock leeway every verifier allows.
    common::pause(Duration::from_millis(41_500));
    let r = push_blob(&addr, "users/alice/app", &Auth::bearer(&token), b"after expiry");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer realm=")));
    assert_eq!(call(&addr, "GET", "/api/v1/user", &Auth::bearer(&session), None).status, 401);
    let r = call(&addr, "POST", "/api/v1/auth/refresh", &Auth::None, Some(&json!({ "refreshToken": refresh })));
    assert_eq!(r.status, 401, "an expired refresh token: {}", r.text());
    assert_eq!(
        call(&addr, "HEAD", &format!("/v2/users/alice/app/blobs/{}", digest_of(b"after expiry")), &Auth::None, None)
            .status,
        404
    );
}

#[test]
fn github_sign_in_creates_and_finds_the_linked_account() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    // The provider also serves GitHub's OAuth endpoints and REST API (GitHub Enterprise layout).
    let provider = common::oidc::OidcProvider::start(&[common::oidc::callback_uri(&addr, "github")]);
    let extra = format!(
        "[[auth.oidc]]\nname = \"github\"\nkind = \"github\"\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        common::oidc::github_web_url(&provider),
        common::oidc::CLIENT_ID,
        common::oidc::CLIENT_SECRET
    );
    let _reg = start_on(port, dir.path(), &extra);
    let first = common::oidc::sign_in(&addr, "github", "Octo.Cat");
    assert_eq!(first.status, 200, "{}\n{}", first.text(), provider.log_tail(4000));
    let body = first.json();
    assert_eq!(body["user"]["name"], "octo-cat", "the GitHub login becomes the account name");
    assert_eq!(body["user"]["email"], common::oidc::github_email("Octo.Cat"));
    assert_eq!(body["user"]["emailVerified"], true, "the primary verified address");
    let token = body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(push_blob(&addr, "users/octo-cat/app", &Auth::bearer(&token), b"from GitHub").status, 201);
    let again = common::oidc::sign_in(&addr, "github", "Octo.Cat");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["user"]["name"], "octo-cat", "the same account, found by GitHub's user id");
    // A state that is not the browser's own is refused before any code exchange.
    let mut browser = common::oidc::Browser::new();
    let start = browser.get(&format!("http://{addr}/api/v1/auth/oidc/github/start"));
    assert_eq!(start.status, 302);
    let location = start.header("location").unwrap().to_owned();
    assert!(
        location.contains("/login/oauth/authorize?") && location.contains("code_challenge_method=S256"),
        "{location}"
    );
    let callback = browser.authorize(&location, &common::oidc::callback_uri(&addr, "github"), "mona");
    assert_eq!(browser.get(&callback.replace("state=", "state=x")).status, 401);
}
