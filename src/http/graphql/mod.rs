//! `/graphql`: the relationships between Gati artifacts (artifact → versions → dependencies →
//! dependents → publisher) as a read-only GraphQL schema, served as the GraphQL-over-HTTP
//! specification describes (<https://graphql.github.io/graphql-over-http/draft/>).
//!
//! This file owns the transport: `GET` (`?query=&variables=&operationName=`) and `POST` (a JSON
//! body `{query, variables, operationName}`), the body cap, media-type negotiation and status
//! codes. The schema and its cost rules live in [`schema`], the object types in [`types`], cursors
//! and pages in [`paging`], and who is asking plus every store read in [`reader`]. Resolvers reach
//! the registry only through [`reader::Reader`], which calls the `Registry` and `Identity`
//! facades; nothing here touches a store.
//!
//! Status codes, as the specification asks:
//! * not a well-formed GraphQL-over-HTTP request (body not JSON, no `query`, `variables` not an
//!   object, a body over [`MAX_REQUEST_BYTES`], a `POST` that is not `application/json`): `4xx`
//!   with a GraphQL-shaped `{"errors": [...]}` body;
//! * bad credentials or a spent request budget: the REST API's `401`/`429` problem documents;
//! * otherwise, answering `application/json` (the default): `200`, problems in `errors`, even
//!   when the document fails to parse or validate (too deep, too costly);
//! * answering `application/graphql-response+json` (when the client's `Accept` lists it): `400`
//!   when the document fails to parse or validate, so nothing was executed; `200` once execution
//!   started, field errors included.

mod paging;
mod reader;
mod schema;
mod types;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::HttpState;
use super::limits::Class;
use crate::identity::Principal;
use reader::Reader;

/// The largest request accepted: a `POST` body, or a `GET` query string. Real queries are a few
/// KiB; the cap bounds parsing work before any cost analysis can run.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The media type the specification defines for GraphQL responses.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// `GET` and `POST /graphql`: parses the request, runs it as the caller, and answers.
pub(super) async fn handler(State(state): State<HttpState>, request: Request) -> Response {
    let client = super::auth::client_ip(request.extensions());
    let (parts, body) = request.into_parts();
    let media = ResponseMedia::negotiate(&parts.headers);
    let operation = match parts.method {
        Method::GET | Method::HEAD => from_query_string(parts.uri.query()),
        Method::POST => from_body(&parts.headers, body).await,
        _ => Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST")),
    };
    let operation = match operation {
        Ok(operation) => operation,
        Err(refusal) => return refusal.into_response(media),
    };
    let principal = if state.identity.enabled() {
        match super::api::principal(&state, &parts.headers, Class::Read).await {
            Ok(principal) => principal,
            Err(problem) => return problem.into_response(),
        }
    } else {
        Principal::Anonymous
    };
    let reader = Reader::new(state.registry.clone(), state.identity.clone(), principal, client);
    let response = schema::schema().execute(operation.data(reader)).await;
    respond(media, &response)
}

/// What the response is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseMedia {
    /// `application/json`: the legacy type, always `200` for a well-formed request.
    Json,
    /// `application/graphql-response+json`: request errors are `400`.
    GraphqlResponseJson,
}

impl ResponseMedia {
    /// The specification's type when the client lists it, else `application/json` (also when
    /// there is no `Accept`, which the specification says to treat as `application/json`).
    fn negotiate(headers: &HeaderMap) -> ResponseMedia {
        let listed = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|accept| {
            accept.split(',').any(|item| {
                let mut params = item.split(';').map(str::trim);
                // `q=0`, `q=0.0`, `q=0.000`: the client refuses the type.
                let refused = params.clone().skip(1).any(|p| {
                    p.replace(' ', "").strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
                });
                params.next().is_some_and(|m| m.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON)) && !refused
            })
        });
        if listed { ResponseMedia::GraphqlResponseJson } else { ResponseMedia::Json }
    }

    fn content_type(self) -> &'static str {
        match self {
            ResponseMedia::Json => "application/json",
            ResponseMedia::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
        }
    }
}

/// A request refused before GraphQL sees it.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }

    fn into_response(self, media: ResponseMedia) -> Response {
        let body = json!({ "errors": [{ "message": self.message }] }).to_string();
        (self.status, [(header::CONTENT_TYPE, media.content_type()), (header::CACHE_CONTROL, "no-store")], body)
            .into_response()
    }
}

/// The request's parameters, named as the specification names them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    query: Option<String>,
    operation_name: Option<String>,
    #[serde(default)]
    variables: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    /// JSON text, as the specification encodes variables in a URL.
    variables: Option<String>,
}

async fn from_body(headers: &HeaderMap, body: Body) -> Result<async_graphql::Request, Refusal> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the request as application/json"));
    }
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await.map_err(|_| {
        Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("a GraphQL request is at most {MAX_REQUEST_BYTES} bytes"))
    })?;
    let PostBody { query, operation_name, variables } = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::bad_request(format!("the body is not a GraphQL request object: {e}")))?;
    operation(query, operation_name, variables)
}

fn from_query_string(query: Option<&str>) -> Result<async_graphql::Request, Refusal> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_REQUEST_BYTES {
        return Err(Refusal::new(
            StatusCode::URI_TOO_LONG,
            format!("a GraphQL request is at most {MAX_REQUEST_BYTES} bytes; POST larger ones"),
        ));
    }
    let params: GetParams =
        serde_urlencoded::from_str(query).map_err(|e| Refusal::bad_request(format!("bad query string: {e}")))?;
    let variables = match params.variables.as_deref() {
        None | Some("") => serde_json::Value::Null,
        Some(text) => {
            serde_json::from_str(text).map_err(|e| Refusal::bad_request(format!("variables: not JSON: {e}")))?
        }
    };
    operation(params.query, params.operation_name, variables)
}

fn operation(
    query: Option<String>,
    operation_name: Option<String>,
    variables: serde_json::Value,
) -> Result<async_graphql::Request, Refusal> {
    let query = query.filter(|q| !q.trim().is_empty()).ok_or_else(|| Refusal::bad_request("no query given"))?;
    let variables = match variables {
        serde_json::Value::Null => async_graphql::Variables::default(),
        object @ serde_json::Value::Object(_) => async_graphql::Variables::from_json(object),
        _ => return Err(Refusal::bad_request("variables: a JSON object")),
    };
    let mut request = async_graphql::Request::new(query).variables(variables);
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    Ok(request)
}

/// Whether nothing was executed: the document failed to parse or validate. Such errors carry
/// no path, while every error raised during execution carries the path of its field.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

fn respond(media: ResponseMedia, response: &async_graphql::Response) -> Response {
    let request_error = is_request_error(response);
    // A request error has no `data` entry at all: `"data": null` would claim execution ran.
    let body = if request_error {
        serde_json::to_vec(&json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(response)
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "graphql response serialisation failed");
            return Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(media);
        }
    };
    let status = if request_error && media == ResponseMedia::GraphqlResponseJson {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // What a caller sees depends on who they are, so no shared cache may keep it.
    (status, [(header::CONTENT_TYPE, media.content_type()), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_response_type_follows_accept() {
        assert_eq!(ResponseMedia::negotiate(&HeaderMap::new()), ResponseMedia::Json);
        assert_eq!(ResponseMedia::negotiate(&accept("application/json")), ResponseMedia::Json);
        assert_eq!(
            ResponseMedia::negotiate(&accept("application/graphql-response+json, application/json;q=0.9")),
            ResponseMedia::GraphqlResponseJson
        );
        assert_eq!(ResponseMedia::negotiate(&accept("application/graphql-response+json;q=0")), ResponseMedia::Json);
    }

    #[test]
    fn get_parameters_become_a_request() {
        let request = from_query_string(Some(
            "query=query%20Q%28%24n%3AString%21%29%7Ba%7D&operationName=Q&variables=%7B%22n%22%3A%22x%22%7D",
        ))
        .unwrap();
        assert_eq!(request.query, "query Q($n:String!){a}");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.into_value().to_string(), r#"{n: "x"}"#);
        assert_eq!(from_query_string(None).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(from_query_string(Some("query={a}&variables=[1]")).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(from_query_string(Some("query={a}&variables=nope")).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
