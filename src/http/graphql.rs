//! `/graphql`: relationships between artifacts (being written).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Answers every GraphQL request until the schema lands.
pub(super) async fn handler() -> Response {
    (StatusCode::NOT_IMPLEMENTED, "GraphQL is not served yet").into_response()
}
