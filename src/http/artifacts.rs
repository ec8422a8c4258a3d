//! The Gati artifact part of the REST API (`/api/v1`): publish, read, list, search, resolve,
//! dist-tags, deprecation, unpublish, download statistics, and the JSON Schemas of each type's
//! config. Errors are `application/problem+json`; a refused document lists every field at fault
//! in `errors`.
//!
//! An artifact's paths are `/api/v1/artifacts/<namespace>/<name>/...`, where the namespace is
//! `users/<user>`, `orgs/<org>` or one component, exactly as in OCI repository names. Files are
//! uploaded before a publish with the OCI upload API (`/v2/<namespace>/<name>/blobs/uploads/`),
//! which is chunked and resumable; the publish then names them by digest in the document.

use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gati_core::artifact::{ArtifactKind, ArtifactVersion, DistTag, config};
use gati_core::time::{day_text, parse_day, rfc3339};
use gati_core::{ByteRange, RepoName, VersionRange};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpState;
use super::api::{ApiResult, Problem, body, json_ok, principal};
use super::limits::Class;
use crate::identity::{Action, Decision, Principal, Target};
use crate::registry::RegistryError;
use crate::registry::artifacts::{ArtifactInfo, PublishRequest, SearchQuery, VersionSelector, VersionView, day_of};

/// The largest request body of these routes (a document is at most 1 MiB).
const MAX_BODY: usize = gati_core::artifact::document::MAX_DOCUMENT_BYTES + 1024;

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Problem {
        let detail = e.to_string();
        match e {
            RegistryError::ArtifactInvalid(errors) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid artifact", detail).with_errors(errors)
            }
            RegistryError::ArtifactRequestInvalid(_) | RegistryError::NameInvalid(_) | RegistryError::TagInvalid(_) => {
                Problem::bad_request(detail)
            }
            RegistryError::Unresolvable(_) => Problem::new(StatusCode::CONFLICT, "Unresolvable dependencies", detail),
            RegistryError::ArtifactConflict(_) | RegistryError::PreconditionFailed { .. } => {
                Problem::new(StatusCode::CONFLICT, "Conflict", detail)
            }
            RegistryError::ArtifactUnknown
            | RegistryError::VersionUnknown(_)
            | RegistryError::NameUnknown
            | RegistryError::ManifestUnknown
            | RegistryError::BlobUnknown => Problem::new(StatusCode::NOT_FOUND, "Not found", detail),
            RegistryError::RangeNotSatisfiable { .. } => {
                Problem::new(StatusCode::RANGE_NOT_SATISFIABLE, "Range not satisfiable", detail)
            }
            RegistryError::Unavailable(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", detail),
            RegistryError::Internal => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", detail),
            other => Problem::bad_request(other.to_string()),
        }
    }
}

/// Who is asking, once they may do `action` to `repo`. With authentication off everyone may do
/// everything, as on the OCI API.
async fn allowed(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    repo: &RepoName,
    action: Action,
) -> Result<Principal, Problem> {
    if !state.identity.enabled() {
        return Ok(Principal::Anonymous);
    }
    let class = if action == Action::Pull { Class::Read } else { Class::Write };
    let principal = principal(state, headers, class).await?;
    match state.identity.decide(&principal, Target::Repo(repo), action, client)? {
        Decision::Allow => Ok(principal),
        Decision::Unauthenticated { .. } => Err(Problem::unauthenticated("sign in first")),
        Decision::Forbidden { reason } => Err(Problem::new(StatusCode::FORBIDDEN, "Forbidden", reason)),
        Decision::NotFound => Err(RegistryError::ArtifactUnknown.into()),
    }
}

/// Whether `principal` may read `repo`: private artifacts are left out of listings and
/// resolutions for everyone without a role on their namespace.
fn can_read(state: &HttpState, principal: &Principal, client: Option<IpAddr>, repo: &RepoName) -> bool {
    !state.identity.enabled()
        || state.identity.decide(principal, Target::Repo(repo), Action::Pull, client).ok() == Some(Decision::Allow)
}

async fn reader(state: &HttpState, headers: &HeaderMap) -> Result<Principal, Problem> {
    if state.identity.enabled() { principal(state, headers, Class::Read).await } else { Ok(Principal::Anonymous) }
}

fn publisher(principal: &Principal) -> String {
    principal.user_name().map_or_else(|| "anonymous".to_owned(), ToString::to_string)
}

/// Splits `<namespace>/<name>/<rest...>` into the artifact and the rest.
fn split_artifact(path: &str) -> Result<(RepoName, Vec<&str>), Problem> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let n = if matches!(parts.first(), Some(&("users" | "orgs"))) { 3 } else { 2 };
    if parts.len() < n {
        return Err(Problem::new(StatusCode::NOT_FOUND, "Not found", "name an artifact: <namespace>/<name>"));
    }
    let repo: RepoName =
        parts[..n].join("/").parse().map_err(|e: gati_core::CoreError| Problem::bad_request(e.to_string()))?;
    Ok((repo, parts[n..].to_vec()))
}

/// `/api/v1/artifacts/{*path}`: one artifact's routes.
pub(super) async fn artifact_routes(
    State(state): State<HttpState>,
    Path(path): Path<String>,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult {
    let query = query_map(raw_query.as_deref())?;
    let client = super::auth::client_ip(request.extensions());
    let method = request.method().clone();
    let (repo, rest) = split_artifact(&path)?;
    let (parts, body_stream) = request.into_parts();
    let headers = parts.headers;
    let reg = &state.registry;
    match (&method, rest.as_slice()) {
        (&Method::GET, []) => {
            allowed(&state, &headers, client, &repo, Action::Pull).await?;
            Ok(json_ok(StatusCode::OK, info_json(&reg.artifact_info(&repo).await?)))
        }
        (&Method::GET, ["versions"]) => {
            allowed(&state, &headers, client, &repo, Action::Pull).await?;
            let info = reg.artifact_info(&repo).await?;
            let versions: Vec<Value> = info.versions.iter().map(version_json).collect();
            Ok(json_ok(StatusCode::OK, json!({ "name": repo.as_str(), "versions": versions })))
        }
        (&Method::GET, ["versions", v]) => {
            allowed(&state, &headers, client, &repo, Action::Pull).await?;
            let view = reg.artifact_version(&repo, &VersionSelector::parse(v)?).await?;
            Ok(json_ok(StatusCode::OK, view_json(&view)?))
        }
        (&Method::GET, ["versions", v, "document"]) => {
            allowed(&state, &headers, client, &repo, Action::Pull).await?;
            let view = reg.artifact_version(&repo, &VersionSelector::parse(v)?).await?;
            reg.count_download(&repo, &view.record.version);
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, gati_core::artifact::DOCUMENT_MEDIA_TYPE.to_owned()),
                    (header::ETAG, format!("\"{}\"", view.record.document)),
                ],
                view.document,
            )
                .into_response())
        }
        (&Method::GET, ["versions", v, "files", file @ ..]) if !file.is_empty() => {
            allowed(&state, &headers, client, &repo, Action::Pull).await?;
            let range = headers.get(header::RANGE).and_then(|r| r.to_str().ok()).and_then(|r| ByteRange::parse(r).ok());
            let (entry, content) =
                reg.artifact_file(&repo, &VersionSelector::parse(v)?, &file.join("/"), range).await?;
            let builder = Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::ACCEPT_RANGES, "bytes")
                .header(header::ETAG, format!("\"sha256:{}\"", entry.sha256));
            let built = match content.range {
                Some((start, end)) => builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", content.size))
                    .header(header::CONTENT_LENGTH, end - start + 1)
                    .body(Body::from_stream(content.stream)),
                None => builder
                    .status(StatusCode::OK)
                    .header(header::CONTENT_LENGTH, content.size)
                    .body(Body::from_stream(content.stream)),
            };
            built.map_err(|_| Problem::from(RegistryError::Internal))
        }
        (&Method::PUT, ["versions", v]) => {
            let principal = allowed(&state, &headers, client, &repo, Action::Push).await?;
            let visible = |r: &RepoName| can_read(&state, &principal, client, r);
            let document = axum::body::to_bytes(body_stream, MAX_BODY).await.map_err(|_| {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large", "a document is at most 1 MiB")
            })?;
            let dist_tag = query
                .get("tag")
                .map(|t| t.parse::<DistTag>())
                .transpose()
                .map_err(|e| Problem::bad_request(e.to_string()))?;
            let published = reg
                .publish(
                    PublishRequest {
                        repo: repo.clone(),
                        version: (*v).to_owned(),
                        document,
                        dist_tag,
                        publisher: publisher(&principal),
                    },
                    &visible,
                )
                .await?;
            let mut response = json_ok(
                StatusCode::CREATED,
                json!({
                    "name": repo.as_str(),
                    "version": v,
                    "manifestDigest": published.manifest.to_string(),
                    "documentDigest": published.document.to_string(),
                }),
            );
            if let Ok(location) = format!("/api/v1/artifacts/{repo}/versions/{v}").parse() {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        (&Method::DELETE, ["versions", v]) => {
            let principal = allowed(&state, &headers, client, &repo, Action::Delete).await?;
            let version: ArtifactVersion =
                v.parse().map_err(|e: gati_core::CoreError| Problem::bad_request(e.to_string()))?;
            let visible = |r: &RepoName| can_read(&state, &principal, client, r);
            reg.unpublish(&repo, version, &visible).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::GET, ["dist-tags"]) => {
            allowed(&state, &headers, client, &repo, Action::Pull).await?;
            let info = reg.artifact_info(&repo).await?;
            Ok(json_ok(StatusCode::OK, json!(dist_tags_json(&info))))
        }
        (&Method::PUT, ["dist-tags", tag]) => {
            allowed(&state, &headers, client, &repo, Action::Push).await?;
            let tag: DistTag = tag.parse().map_err(|e: gati_core::CoreError| Problem::bad_request(e.to_string()))?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct SetTag {
                version: ArtifactVersion,
            }
            let bytes = read_small(body_stream).await?;
            let SetTag { version } = body(&headers, &bytes)?;
            reg.set_dist_tag(&repo, tag, version).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::DELETE, ["dist-tags", tag]) => {
            allowed(&state, &headers, client, &repo, Action::Push).await?;
            let tag: DistTag = tag.parse().map_err(|e: gati_core::CoreError| Problem::bad_request(e.to_string()))?;
            reg.remove_dist_tag(&repo, tag).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::PUT, ["deprecation"]) => {
            allowed(&state, &headers, client, &repo, Action::Push).await?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Deprecation {
                range: VersionRange,
                message: Option<String>,
            }
            let bytes = read_small(body_stream).await?;
            let Deprecation { range, message } = body(&headers, &bytes)?;
            let message = message.filter(|m| !m.trim().is_empty());
            if message.as_ref().is_some_and(|m| m.len() > 1024) {
                return Err(Problem::bad_request("a deprecation message is at most 1024 bytes"));
            }
            let versions = reg.deprecate(&repo, &range, message).await?;
            let versions: Vec<String> = versions.iter().map(ToString::to_string).collect();
            Ok(json_ok(StatusCode::OK, json!({ "versions": versions })))
        }
        (&Method::GET, ["dependents"]) => {
            let principal = allowed(&state, &headers, client, &repo, Action::Pull).await?;
            let dependents: Vec<Value> = reg
                .artifact_dependents(&repo)
                .await?
                .into_iter()
                .filter(|d| can_read(&state, &principal, client, &d.repo))
                .map(
                    |d| json!({ "name": d.repo.as_str(), "version": d.version.to_string(), "range": d.range.as_str() }),
                )
                .collect();
            Ok(json_ok(StatusCode::OK, json!({ "name": repo.as_str(), "dependents": dependents })))
        }
        (&Method::GET, ["downloads"]) => {
            allowed(&state, &headers, client, &repo, Action::Pull).await?;
            let today = day_of(crate::registry::artifacts::now_secs());
            let day = |key: &str, default: u32| -> Result<u32, Problem> {
                match query.get(key) {
                    None => Ok(default),
                    Some(text) => {
                        parse_day(text).ok_or_else(|| Problem::bad_request(format!("{key}: a date such as 2026-01-31")))
                    }
                }
            };
            let to = day("to", today)?;
            let from = day("from", to.saturating_sub(29))?;
            if from > to || to - from > 366 {
                return Err(Problem::bad_request("from..to spans 1 to 366 days"));
            }
            let days: Vec<Value> = reg
                .artifact_downloads(&repo, from, to)
                .await?
                .into_iter()
                .map(|d| json!({ "day": day_text(d.day), "version": d.version.to_string(), "downloads": d.count }))
                .collect();
            let total: u64 = days.iter().filter_map(|d| d["downloads"].as_u64()).sum();
            Ok(json_ok(
                StatusCode::OK,
                json!({ "name": repo.as_str(), "from": day_text(from), "to": day_text(to), "total": total, "days": days }),
            ))
        }
        _ => Err(Problem::new(StatusCode::NOT_FOUND, "Not found", "no such artifact route")),
    }
}

/// The query string as a map; a malformed one is a problem document like every other error.
fn query_map(raw: Option<&str>) -> Result<std::collections::HashMap<String, String>, Problem> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| Problem::bad_request(format!("malformed query string: {e}")))
}

async fn read_small(body: Body) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large", "the body is too large"))
}

/// `GET /api/v1/artifacts`: simple filtering (`q`, `type`, `namespace`), paged by `after`.
pub(super) async fn search(
    State(state): State<HttpState>,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult {
    let query = query_map(raw_query.as_deref())?;
    let client = super::auth::client_ip(request.extensions());
    let principal = reader(&state, request.headers()).await?;
    let kind = query
        .get("type")
        .map(|t| t.parse::<ArtifactKind>())
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let after = query
        .get("after")
        .map(|a| a.parse::<RepoName>())
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let limit = match query.get("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| Problem::bad_request("limit: 1 to 100"))?,
    };
    if query.get("q").is_some_and(|q| q.len() > 256) {
        return Err(Problem::bad_request("q: at most 256 bytes"));
    }
    let search =
        SearchQuery { text: query.get("q").cloned(), kind, namespace: query.get("namespace").cloned(), after, limit };
    let visible = |repo: &RepoName| can_read(&state, &principal, client, repo);
    let page = state.registry.search_artifacts(&search, &visible).await?;
    let items = page.items;
    let results: Vec<Value> = items
        .iter()
        .map(|a| {
            json!({
                "name": a.repo.as_str(),
                "type": a.kind,
                "latest": a.latest.as_ref().map(ToString::to_string),
                "description": a.description,
                "updatedAt": rfc3339(a.updated_at),
            })
        })
        .collect();
    let next = page.next.map(|r| r.to_string());
    Ok(json_ok(StatusCode::OK, json!({ "results": results, "next": next })))
}

/// `POST /api/v1/resolve`: `{"dependencies": {"<artifact>": "<range>"}}` to one version per
/// artifact, or a `409` that explains the conflict.
pub(super) async fn resolve(State(state): State<HttpState>, request: Request) -> ApiResult {
    let client = super::auth::client_ip(request.extensions());
    let (parts, body_stream) = request.into_parts();
    let principal = reader(&state, &parts.headers).await?;
    let bytes = read_small(body_stream).await?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ResolveBody {
        dependencies: std::collections::BTreeMap<String, String>,
    }
    let ResolveBody { dependencies } = body(&parts.headers, &bytes)?;
    if dependencies.len() > 1000 {
        return Err(Problem::bad_request("at most 1000 dependencies"));
    }
    let mut roots = Vec::new();
    let mut errors = Vec::new();
    for (name, range) in &dependencies {
        let repo = gati_core::artifact::ArtifactRef::parse(name, None).map(|r| r.repo);
        match (repo, range.parse::<VersionRange>()) {
            (Ok(repo), Ok(range)) => roots.push((repo, range)),
            (Err(e), _) => {
                errors.push(gati_core::artifact::FieldError::new(format!("dependencies.{name}"), e.to_string()))
            }
            (_, Err(e)) => {
                errors.push(gati_core::artifact::FieldError::new(format!("dependencies.{name}"), e.to_string()))
            }
        }
    }
    if !errors.is_empty() {
        return Err(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid dependencies", "see errors").with_errors(errors)
        );
    }
    let visible = |repo: &RepoName| can_read(&state, &principal, client, repo);
    let graph = state.registry.resolve_dependencies(&roots, &visible).await?;
    let packages: Vec<Value> = graph
        .packages
        .iter()
        .map(|p| {
            let deps: serde_json::Map<String, Value> =
                p.dependencies.iter().map(|(r, v)| (r.to_string(), Value::String(v.to_string()))).collect();
            json!({
                "name": p.repo.as_str(),
                "version": p.version.to_string(),
                "type": p.kind,
                "manifestDigest": p.manifest.to_string(),
                "documentDigest": p.document.to_string(),
                "dependencies": deps,
                "deprecated": p.deprecated,
            })
        })
        .collect();
    Ok(json_ok(StatusCode::OK, json!({ "packages": packages })))
}

/// `GET /api/v1/schemas/{type}`: the JSON Schema of a type's `config`.
pub(super) async fn schema(Path(kind): Path<String>) -> ApiResult {
    let kind: ArtifactKind = kind
        .parse()
        .map_err(|e: gati_core::CoreError| Problem::new(StatusCode::NOT_FOUND, "Not found", e.to_string()))?;
    let body = config::schema(kind).to_string();
    Ok(([(header::CONTENT_TYPE, "application/schema+json"), (header::CACHE_CONTROL, "public, max-age=3600")], body)
        .into_response())
}

fn dist_tags_json(info: &ArtifactInfo) -> serde_json::Map<String, Value> {
    info.dist_tags.iter().map(|(t, v)| (t.to_string(), Value::String(v.to_string()))).collect()
}

fn dependencies_json(deps: &[(RepoName, VersionRange)]) -> serde_json::Map<String, Value> {
    deps.iter().map(|(r, range)| (r.to_string(), Value::String(range.to_string()))).collect()
}

fn version_json(r: &gati_core::artifact::VersionRecord) -> Value {
    json!({
        "version": r.version.to_string(),
        "description": r.description,
        "publishedAt": rfc3339(r.published_at),
        "publisher": r.publisher,
        "size": r.size,
        "deprecated": r.deprecated,
        "unpublished": r.unpublished,
        "dependencies": dependencies_json(&r.dependencies),
        "manifestDigest": r.manifest.to_string(),
    })
}

fn info_json(info: &ArtifactInfo) -> Value {
    let versions: Vec<Value> = info.versions.iter().map(version_json).collect();
    json!({
        "name": info.repo.as_str(),
        "type": info.kind,
        "createdAt": rfc3339(info.created_at),
        "distTags": dist_tags_json(info),
        "versions": versions,
    })
}

fn view_json(view: &VersionView) -> Result<Value, Problem> {
    let document: Value = serde_json::from_slice(&view.document).map_err(|_| Problem::from(RegistryError::Internal))?;
    let mut out = version_json(&view.record);
    out["name"] = json!(view.repo.as_str());
    out["type"] = json!(view.record.kind);
    out["documentDigest"] = json!(view.record.document.to_string());
    out["files"] = json!(view.files);
    out["document"] = document;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_split_at_the_namespace() {
        let (repo, rest) = split_artifact("users/krishna/user-auth/versions/1.0.0").unwrap();
        assert_eq!(repo.as_str(), "users/krishna/user-auth");
        assert_eq!(rest, ["versions", "1.0.0"]);
        let (repo, rest) = split_artifact("library/tool").unwrap();
        assert_eq!((repo.as_str(), rest.len()), ("library/tool", 0));
        assert!(split_artifact("users/krishna").is_err());
        assert!(split_artifact("users/../x").is_err());
    }
}
