//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the artifact REST API, built from
//! [`ROUTES`], the table this module keeps beside the router, and from the JSON Schemas the
//! config types generate. A test sends a request to every route of the table, so a route that
//! is documented but not served fails the build.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use gati_core::artifact::{ArtifactKind, config};
use serde_json::{Map, Value, json};

/// One documented operation.
pub(super) struct Route {
    /// HTTP method, lowercase.
    pub(super) method: &'static str,
    /// OpenAPI path template.
    pub(super) path: &'static str,
    /// One line.
    pub(super) summary: &'static str,
    /// The request body's media type, if any.
    pub(super) body: Option<&'static str>,
    /// The success status.
    pub(super) ok: u16,
}

const ARTIFACT: &str = "/api/v1/artifacts/{namespace}/{name}";

/// Every artifact operation. `{namespace}` is `users/<user>`, `orgs/<org>` or one component.
pub(super) const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/api/v1/artifacts",
        summary: "Search artifacts (q, type, namespace, limit, after)",
        body: None,
        ok: 200,
    },
    Route {
        method: "post",
        path: "/api/v1/resolve",
        summary: "Resolve dependency ranges to one version per artifact",
        body: Some("application/json"),
        ok: 200,
    },
    Route {
        method: "get",
        path: "/api/v1/schemas/{type}",
        summary: "The JSON Schema of a type's config",
        body: None,
        ok: 200,
    },
    Route { method: "get", path: "/api/v1/openapi.json", summary: "This document", body: None, ok: 200 },
    Route { method: "get", path: ARTIFACT, summary: "An artifact: type, dist-tags and versions", body: None, ok: 200 },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{namespace}/{name}/versions",
        summary: "Every version",
        body: None,
        ok: 200,
    },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{namespace}/{name}/versions/{version}",
        summary: "One version (or dist-tag) with its document and files",
        body: None,
        ok: 200,
    },
    Route {
        method: "put",
        path: "/api/v1/artifacts/{namespace}/{name}/versions/{version}",
        summary: "Publish a version: the body is the document (gati.json with contents); files are uploaded first through /v2 blob uploads; ?tag= points a dist-tag at it",
        body: Some("application/json"),
        ok: 201,
    },
    Route {
        method: "delete",
        path: "/api/v1/artifacts/{namespace}/{name}/versions/{version}",
        summary: "Unpublish a version (within 72 hours, when nothing depends on it)",
        body: None,
        ok: 204,
    },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{namespace}/{name}/versions/{version}/document",
        summary: "The document, byte for byte as published (counts a download)",
        body: None,
        ok: 200,
    },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{namespace}/{name}/versions/{version}/files/{path}",
        summary: "One file (Range supported)",
        body: None,
        ok: 200,
    },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{namespace}/{name}/dist-tags",
        summary: "The dist-tags",
        body: None,
        ok: 200,
    },
    Route {
        method: "put",
        path: "/api/v1/artifacts/{namespace}/{name}/dist-tags/{tag}",
        summary: "Point a dist-tag at a version: {\"version\": \"1.2.3\"}",
        body: Some("application/json"),
        ok: 204,
    },
    Route {
        method: "delete",
        path: "/api/v1/artifacts/{namespace}/{name}/dist-tags/{tag}",
        summary: "Remove a dist-tag (not latest)",
        body: None,
        ok: 204,
    },
    Route {
        method: "put",
        path: "/api/v1/artifacts/{namespace}/{name}/deprecation",
        summary: "Deprecate versions: {\"range\": \"<2\", \"message\": \"...\"}; an empty message lifts it",
        body: Some("application/json"),
        ok: 200,
    },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{namespace}/{name}/dependents",
        summary: "Versions of other artifacts that depend on this one",
        body: None,
        ok: 200,
    },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{namespace}/{name}/downloads",
        summary: "Downloads per version and day (from, to: YYYY-MM-DD)",
        body: None,
        ok: 200,
    },
];

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

/// The whole document.
pub(super) fn build() -> Value {
    let problem = json!({
        "type": "object",
        "description": "RFC 9457 problem details; `errors` lists each field at fault",
        "properties": {
            "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
            "detail": { "type": "string" },
            "errors": { "type": "array", "items": { "type": "object", "properties": {
                "field": { "type": "string" }, "message": { "type": "string" } } } }
        }
    });
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": parameters(r.path),
            "responses": {
                r.ok.to_string(): { "description": "success" },
                "default": { "description": "an error", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } }
            }
        });
        if let Some(media) = r.body {
            op["requestBody"] = json!({ "required": true, "content": { media: { "schema": { "type": "object" } } } });
        }
        entry[r.method] = op;
    }
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), problem);
    for kind in ArtifactKind::ALL {
        schemas.insert(format!("config-{kind}"), config::schema(kind));
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Gati Registry API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "a session access token or an API key" },
                "basic": { "type": "http", "scheme": "basic" }
            }
        },
        "security": [ {}, { "bearer": [] }, { "basic": [] } ]
    })
}

/// The handler.
pub(super) async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], build().to_string()).into_response()
}
