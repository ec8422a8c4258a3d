//! A real OpenID Connect provider for sign-in tests, and a browser-less sign-in through it.
//!
//! * [`OidcProvider`] runs panva's certified `oidc-provider` (npm, pinned by
//!   `scripts/oidc/package-lock.json`) through `scripts/oidc-provider.sh` on a free loopback port,
//!   with one confidential client ([`CLIENT_ID`] / [`CLIENT_SECRET`]), and stops it on drop. It
//!   never skips: when the package is not installed it panics naming the install command.
//! * [`sign_in`] (or [`Browser::sign_in`]) plays a browser through the whole authorization-code
//!   flow: the registry's `/api/v1/auth/oidc/{provider}/start`, the provider's login and consent
//!   pages, and back to the registry's callback, whose response it returns.
//!
//! What the registry's side can rely on (oidc-provider 9.13.3 as `scripts/oidc/provider.mjs`
//! configures it):
//! * issuer `http://127.0.0.1:PORT`, discovery at `{issuer}/.well-known/openid-configuration`;
//!   endpoints `/auth`, `/token`, `/me` (userinfo) and `/jwks`, all named by the discovery document;
//! * PKCE is required (S256 only): every authorization request must carry `code_challenge` and
//!   `code_challenge_method=S256`, and the token request the `code_verifier`;
//! * the token endpoint takes `client_secret_basic` (HTTP Basic with the form-urlencoded id and
//!   secret) or `client_secret_post`;
//! * ID tokens are signed RS256 (key in the JWKS, `kid` set) and carry `iss`, `aud` = the client id,
//!   `sub` = the login, `nonce`, `iat`, `exp` and, with scopes `openid email profile`,
//!   `email` = `{login}@oidc.test`, `email_verified` = true, `preferred_username` and `name` = login
//!   (no `auth_time` unless `max_age` is sent; userinfo at `/me` answers the same claims);
//! * the authorization response is `?code=...&state=...&iss=...` (RFC 9207 `iss` is included).
//!
//! **GitHub mode.** The same provider process, on the same port and with the same client, login
//! and consent pages, also answers like GitHub's OAuth app endpoints, laid out as on GitHub
//! Enterprise Server: web base [`github_web_url`] (= the issuer) and REST API base
//! [`github_api_url`] (`{issuer}/api/v3`). The authorization and the code exchange are
//! oidc-provider's own (real one-time codes, real PKCE check), only reshaped:
//! * `GET /login/oauth/authorize?client_id=&redirect_uri=&scope=read:user user:email&state=
//!   &code_challenge=&code_challenge_method=S256` (no `response_type`, `openid` or `nonce`; GitHub's
//!   `prompt` and `login` are ignored) runs the same login and consent pages, then redirects to
//!   `redirect_uri?code=...&state=...` (no `iss`). PKCE is required here too;
//! * `POST /login/oauth/access_token` with a form body `client_id`, `client_secret`, `code`,
//!   `redirect_uri`, `code_verifier` answers HTTP 200 always: with `Accept: application/json`
//!   `{"access_token":"...","token_type":"bearer","scope":"read:user,user:email"}` (lower-case
//!   `bearer`, scopes comma-separated), or `{"error":"bad_verification_code"` (wrong, spent or
//!   expired code, wrong or missing verifier) / `"incorrect_client_credentials"` /
//!   `"redirect_uri_mismatch", "error_description":..., "error_uri":...}`; without that `Accept`,
//!   the same fields form-urlencoded. Re-using a code also revokes the tokens it gave;
//! * `GET {api}/user` with `Authorization: Bearer <token>` (or `token <token>`) and a
//!   `User-Agent` (none: 403, as GitHub) answers `{"id": github_user_id(login), "login": login,
//!   "name": login, "email": null}`, or 401 `{"message":"Bad credentials",...}`;
//! * `GET {api}/user/emails` answers `[{"email": github_email(login), "primary": true,
//!   "verified": true, "visibility": "private"}, {"email": "{login}-alt@github.test",
//!   "primary": false, "verified": false, "visibility": null}]` when the token has scope
//!   `user:email` (or `user`), else 404.
//!
//! [`sign_in`] drives a registry provider configured this way (e.g. named `github`) unchanged:
//! the registry's `/start` redirects to `/login/oauth/authorize`, and the browser comes back to
//! [`callback_uri`] with `code` and `state` only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::http::{self, Response};
use super::run_bounded;

/// The provider's only client.
pub const CLIENT_ID: &str = "gati-registry";
/// [`CLIENT_ID`]'s secret.
pub const CLIENT_SECRET: &str = "gati-test-client-secret-0123456789";
/// Any password signs in: the provider's development login accepts every login and password.
pub const PASSWORD: &str = "any-password";

/// Most redirects and form posts one sign-in may take before the driver gives up.
pub const MAX_STEPS: usize = 20;
/// Bound on each HTTP exchange of the driver.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a whole sign-in.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oidc-provider.sh")
}

/// The registry's redirect URI for `provider`: what to register with the identity provider, and
/// where [`sign_in`] expects the provider to send the browser back.
pub fn callback_uri(registry_addr: &str, provider: &str) -> String {
    format!("http://{registry_addr}/api/v1/auth/oidc/{provider}/callback")
}

/// The scopes the registry asks GitHub for.
pub const GITHUB_SCOPES: &str = "read:user user:email";

/// GitHub's web base URL as `provider` plays it (GitHub Enterprise Server layout): the issuer,
/// under which `/login/oauth/authorize` and `/login/oauth/access_token` live.
pub fn github_web_url(provider: &OidcProvider) -> String {
    provider.issuer.clone()
}

/// GitHub's REST API base URL as `provider` plays it: `{issuer}/api/v3` (`/user`, `/user/emails`).
pub fn github_api_url(provider: &OidcProvider) -> String {
    format!("{}/api/v3", provider.issuer)
}

/// The numeric GitHub user id the provider gives `login`: FNV-1a (32-bit) of its UTF-8 bytes,
/// masked to 31 bits, never 0 (the same function as `githubUserId` in scripts/oidc/provider.mjs).
pub fn github_user_id(login: &str) -> u64 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in login.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    match hash & 0x7fff_ffff {
        0 => 1,
        id => u64::from(id),
    }
}

/// The primary, verified address GitHub's `/user/emails` lists for `login`.
pub fn github_email(login: &str) -> String {
    format!("{login}@github.test")
}

/// A running OpenID Connect provider (`scripts/oidc-provider.sh start`), stopped on drop; it
/// also plays GitHub (see the module documentation).
pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`; also the base of every endpoint.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub port: u16,
    pub pid: u32,
    pub redirect_uris: Vec<String>,
    /// Holds the pid file and the provider's log.
    dir: tempfile::TempDir,
}

impl OidcProvider {
    /// Starts a provider on a free loopback port whose client may redirect to `redirect_uris`.
    ///
    /// The provider checks redirect URIs exactly, and the registry needs the provider's issuer in
    /// its configuration, so the registry's port must be chosen before either starts: take a port
    /// with [`super::free_port`], start the provider with
    /// `&[callback_uri(&format!("127.0.0.1:{port}"), name)]`, then start the registry on that port
    /// with [`OidcProvider::issuer`], [`CLIENT_ID`] and [`CLIENT_SECRET`] configured for `name`.
    ///
    /// Panics (never skips) if the provider is not installed or does not start within the
    /// script's bound (20 s).
    pub fn start(redirect_uris: &[String]) -> OidcProvider {
        assert!(!redirect_uris.is_empty(), "OidcProvider::start needs at least one redirect URI");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run_bounded(
            Command::new("bash")
                .arg(script())
                .arg("start")
                .env("OIDC_DIR", dir.path())
                .env("REDIRECT_URIS", redirect_uris.join(","))
                .env_remove("OIDC_PORT"),
            Duration::from_secs(40),
        );
        assert!(
            out.status.success(),
            "the OpenID Connect provider did not start; if it is not installed, run \
             `bash scripts/oidc-provider.sh install` (or scripts/install-test-deps.sh; needs Node.js >= 20.19 \
             and npm):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars: std::collections::HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let var = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("oidc-provider.sh start printed no {k}"));
        OidcProvider {
            issuer: var("issuer"),
            client_id: var("client_id"),
            client_secret: var("client_secret"),
            port: var("port").parse().expect("port"),
            pid: var("pid").parse().expect("pid"),
            redirect_uris: redirect_uris.to_vec(),
            dir,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The last `max` bytes of the provider's log (one line per request, and its errors).
    pub fn log_tail(&self, max: usize) -> String {
        let log = std::fs::read(self.dir.path().join("oidc-provider.log")).unwrap_or_default();
        let start = log.len().saturating_sub(max);
        String::from_utf8_lossy(&log[start..]).into_owned()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- OpenID Connect provider log ({}) ---\n{}", self.issuer, self.log_tail(6000));
        }
        let stopped = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = Command::new("kill").arg("-9").arg(self.pid.to_string()).status();
        }
    }
}

/// Signs `login` in at the registry on `registry_addr` through its OpenID Connect `provider`
/// (the name in `/api/v1/auth/oidc/{provider}/...`), without a browser:
///
/// 1. `GET /api/v1/auth/oidc/{provider}/start` on the registry must answer 302 or 303 with a
///    `Location` (the provider's authorization URL: `/auth` for OpenID Connect, or
///    `/login/oauth/authorize` for a registry provider that speaks GitHub) and set the cookie
///    `gati_oidc`;
/// 2. the driver follows the provider's redirects, posts its login form (`login` = `login`, any
///    password) and its consent form, and follows redirects until one leads to
///    [`callback_uri`]`(registry_addr, provider)`;
/// 3. it `GET`s that callback on the registry, cookies included, and returns the response
///    unchecked.
///
/// The provider must have been started with that callback URI among its redirect URIs (so the
/// registry's port must be known before the provider starts; see [`OidcProvider::start`]). Bounded
/// by [`MAX_STEPS`] steps of at most [`STEP_TIMEOUT`] each and [`SIGN_IN_TIMEOUT`] overall; panics
/// with the steps taken when the flow goes anywhere else.
pub fn sign_in(registry_addr: &str, provider: &str, login: &str) -> Response {
    Browser::new().sign_in(registry_addr, provider, login)
}

/// One cookie of the [`Browser`]'s jar.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: String,
}

/// A minimal browser: a cookie jar (cookies are keyed by name and path, sent by path prefix, and
/// shared by every port of 127.0.0.1 as browsers do), redirects and HTML forms.
#[derive(Debug, Default)]
pub struct Browser {
    pub cookies: Vec<Cookie>,
    /// One line per request: method, URL, status and `Location`; printed when a step fails.
    pub trace: Vec<String>,
}

/// A URL split for [`http::request`]: `127.0.0.1:PORT` and the path with its query.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("not an http:// URL: {url:?}"));
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    assert!(authority.starts_with("127.0.0.1:"), "the sign-in left loopback: {url}");
    (authority.to_owned(), path)
}

/// `location` (absolute, or an absolute path) relative to `base`.
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with('/') {
        let (authority, _) = split_url(base);
        format!("http://{authority}{location}")
    } else {
        panic!("relative Location {location:?} (from {base}) is not supported")
    }
}

/// The path of a URL without its query.
fn url_path(url: &str) -> String {
    let (_, path) = split_url(url);
    path.split(['?', '#']).next().unwrap_or("/").to_owned()
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` and `+` of a query-string component.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded query parameters of `url`, in order.
pub fn query_params(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else { return Vec::new() };
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// Decodes the few HTML character references an attribute value may use.
fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the start tag `tag` (`<input ...>`), unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        // A whole attribute name: preceded by whitespace, followed by optional spaces and `=`.
        if !lower[..at].ends_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let rest = tag[at + name.len()..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else { continue };
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
            _ => rest.split(|c: char| c.is_ascii_whitespace() || c == '>').next().unwrap_or(""),
        };
        return Some(html_unescape(value));
    }
    None
}

/// An HTML form: where it posts and its fields.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    /// `(name, type, value)` of each `<input>` with a name, in document order.
    pub inputs: Vec<(String, String, String)>,
}

impl Form {
    /// The first `<form>` of `html`, if any.
    pub fn parse(html: &str) -> Option<Form> {
        let lower = html.to_ascii_lowercase();
        let start = lower.find("<form")?;
        let tag_end = start + lower[start..].find('>')?;
        let form_tag = &html[start..=tag_end];
        let end = lower[tag_end..].find("</form").map_or(html.len(), |i| tag_end + i);
        let body = &html[tag_end + 1..end];
        let body_lower = &lower[tag_end + 1..end];
        let mut inputs = Vec::new();
        let mut from = 0;
        while let Some(i) = body_lower[from..].find("<input") {
            let at = from + i;
            let close = body_lower[at..].find('>').map_or(body.len(), |j| at + j + 1);
            let tag = &body[at..close];
            if let Some(name) = attribute(tag, "name") {
                let kind = attribute(tag, "type").unwrap_or_else(|| "text".to_owned()).to_ascii_lowercase();
                inputs.push((name, kind, attribute(tag, "value").unwrap_or_default()));
            }
            from = close;
        }
        Some(Form {
            action: attribute(form_tag, "action").unwrap_or_default(),
            method: attribute(form_tag, "method").unwrap_or_else(|| "get".to_owned()).to_ascii_lowercase(),
            inputs,
        })
    }

    /// Whether the form has a field `name`.
    pub fn has(&self, name: &str) -> bool {
        self.inputs.iter().any(|(n, _, _)| n == name)
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser::default()
    }

    /// The value of the cookie `name` (any path), if the jar holds one.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|c| c.name == name).map(|c| c.value.as_str())
    }

    /// The `Cookie` header for a request to `path`: every cookie whose path prefixes it.
    pub fn cookie_header(&self, path: &str) -> String {
        let path = path.split(['?', '#']).next().unwrap_or("/");
        let mut matching: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| {
                path == c.path
                    || (path.starts_with(&c.path) && (c.path.ends_with('/') || path[c.path.len()..].starts_with('/')))
            })
            .collect();
        // Longer paths first, as browsers send them.
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        matching.iter().map(|c| format!("{}={}", c.name, c.value)).collect::<Vec<_>>().join("; ")
    }

    /// Takes the `Set-Cookie` headers of a response to `url` into the jar (a cookie set empty,
    /// with `Max-Age=0` or expiring in 1970 is removed).
    pub fn store_cookies(&mut self, url: &str, resp: &Response) {
        let request_path = url_path(url);
        for (_, header) in resp.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")) {
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else { continue };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            // RFC 6265 default path: the request path up to its last `/`.
            let mut path = match request_path.rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => request_path[..i].to_owned(),
            };
            let mut expired = value.is_empty();
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "path" if v.trim().starts_with('/') => path = v.trim().to_owned(),
                    "max-age" => expired |= v.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                    "expires" => expired |= v.contains("1970"),
                    _ => {}
                }
            }
            self.cookies.retain(|c| !(c.name == name && c.path == path));
            if !expired {
                self.cookies.push(Cookie { name, value, path });
            }
        }
    }

    /// One request to an absolute `http://127.0.0.1:PORT/...` URL with the jar's cookies; stores
    /// the cookies of the response and records the step in [`Browser::trace`].
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let (authority, path) = split_url(url);
        let cookie = self.cookie_header(&path);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !cookie.is_empty() {
            all.push(("Cookie", &cookie));
        }
        let resp = http::request_with_timeout(&authority, method, &path, &all, body, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n--- steps so far ---\n{}", self.trace.join("\n")));
        self.store_cookies(url, &resp);
        self.trace.push(format!(
            "{method} {url} -> {}{}",
            resp.status,
            resp.header("Location").map(|l| format!(" Location: {l}")).unwrap_or_default()
        ));
        resp
    }

    pub fn get(&mut self, url: &str) -> Response {
        self.request("GET", url, &[], &[])
    }

    /// POSTs `fields` as `application/x-www-form-urlencoded`.
    pub fn post_form(&mut self, url: &str, fields: &[(String, String)]) -> Response {
        let body =
            fields.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&");
        self.request("POST", url, &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes())
    }

    fn fail(&self, what: &str, resp: Option<&Response>) -> ! {
        panic!(
            "OpenID Connect sign-in: {what}\n--- steps ---\n{}{}",
            self.trace.join("\n"),
            resp.map(|r| format!("\n--- last response: HTTP {} ---\n{}", r.status, r.text())).unwrap_or_default()
        )
    }

    /// Plays the user at the provider: from `authorization_url`, follows redirects, signs in as
    /// `login` on the login page and accepts the consent page, until a redirect leads to
    /// `redirect_uri` (compared without its query). Returns that URL (with `code` and `state`, or
    /// `error`; `iss` too from `/auth`, not from GitHub's `/login/oauth/authorize`) without
    /// requesting it. Bounded like [`sign_in`].
    pub fn authorize(&mut self, authorization_url: &str, redirect_uri: &str, login: &str) -> String {
        let deadline = Instant::now() + SIGN_IN_TIMEOUT;
        let target = redirect_uri.split('?').next().unwrap_or(redirect_uri).to_owned();
        let mut url = authorization_url.to_owned();
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..MAX_STEPS {
            if url.split(['?', '#']).next() == Some(target.as_str()) {
                return url;
            }
            if Instant::now() > deadline {
                self.fail(&format!("not back at {target} within {SIGN_IN_TIMEOUT:?}"), None);
            }
            let resp = match form.take() {
                Some(fields) => self.post_form(&url, &fields),
                None => self.get(&url),
            };
            match resp.status {
                301 | 302 | 303 | 307 | 308 => {
                    let Some(location) = resp.header("Location") else {
                        self.fail("a redirect without Location", Some(&resp))
                    };
                    // 307/308 would repeat a POST; the provider only uses 302/303.
                    url = resolve(&url, location);
                }
                200 => {
                    let text = resp.text();
                    let Some(page) = Form::parse(&text) else {
                        self.fail("a page without a form where the login or consent page was expected", Some(&resp))
                    };
                    if page.method != "post" {
                        self.fail(&format!("a form with method {:?}", page.method), Some(&resp));
                    }
                    let fields: Vec<(String, String)> = page
                        .inputs
                        .iter()
                        .map(|(name, kind, value)| {
                            let value = if name == "login" {
                                login.to_owned()
                            } else if kind == "password" || name == "password" {
                                PASSWORD.to_owned()
                            } else {
                                value.clone()
                            };
                            (name.clone(), value)
                        })
                        .collect();
                    let names: Vec<String> = fields
                        .iter()
                        .map(|(k, v)| if k == "password" { format!("{k}=***") } else { format!("{k}={v}") })
                        .collect();
                    self.trace.push(format!("  form (action {:?}): {}", page.action, names.join(" ")));
                    url = if page.action.is_empty() { url } else { resolve(&url, &page.action) };
                    form = Some(fields);
                }
                _ => self.fail("an unexpected answer from the provider", Some(&resp)),
            }
        }
        self.fail(&format!("not back at {target} after {MAX_STEPS} steps"), None)
    }

    /// [`sign_in`] with this browser's cookie jar (which then holds whatever the registry's
    /// callback set, e.g. a session cookie).
    ///
    /// Like a real browser, this one keeps its session at the provider: signing in again with it
    /// skips the login form (and the consent form once the grant exists) and comes back as the
    /// account signed in first, whatever `login` says. Use a new [`Browser`] for another account.
    pub fn sign_in(&mut self, registry_addr: &str, provider: &str, login: &str) -> Response {
        let start = format!("http://{registry_addr}/api/v1/auth/oidc/{provider}/start");
        let resp = self.get(&start);
        if !matches!(resp.status, 302 | 303) {
            self.fail("the registry's start did not redirect (302/303)", Some(&resp));
        }
        if self.cookie("gati_oidc").is_none() {
            self.fail("the registry's start set no gati_oidc cookie", Some(&resp));
        }
        let Some(location) = resp.header("Location") else {
            self.fail("the registry's start redirect has no Location", Some(&resp))
        };
        let authorization_url = resolve(&start, location);
        let callback = self.authorize(&authorization_url, &callback_uri(registry_addr, provider), login);
        self.get(&callback)
    }
}
