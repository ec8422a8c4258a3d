//! The schema's root (`Query`) and the limits every query is checked against before anything
//! runs. A query over a limit is refused whole, with a GraphQL error and no data.
//!
//! Cost rules:
//! * depth: at most [`MAX_DEPTH`] nested fields. That is above what the data graph needs and
//!   just enough for the introspection query GraphQL tools send (its type references nest about
//!   13 deep), since introspection stays on;
//! * complexity, at most [`MAX_COMPLEXITY`]: every field costs 1 plus its children; a paged list
//!   costs `first` (default 20, at most 100) times its children, plus 1 (a version's
//!   `dependencies` too); a field that reaches
//!   another artifact (`artifact`, `Dependency.artifact`/`resolved`, `Dependent.artifact`/
//!   `version`) costs `paging::READ_COST` more. `first` given as a variable is costed with
//!   the variable's value.
//!
//! Each response reports what its query cost in `extensions.analyzer` (`complexity`, `depth`),
//! so clients can see how close they are to the limits.
//!
//! Static costs cannot see how long a scan will be (dependents, search), so the request's reader
//! also charges what it actually reads against a budget (`reader::MAX_STORE_READS`): one unit
//! per record, and one per 64 dependents or 256 artifacts a scan goes through.

use std::sync::LazyLock;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Result, Schema};
use gati_core::RepoName;
use gati_core::artifact::{ArtifactKind, ArtifactRef, RefTarget};

use super::paging::{CursorList, DEFAULT_PAGE, decode_cursor, encode_cursor, page_cost, page_size, read_cost};
use super::reader::bad_input;
use super::types::{Artifact, ArtifactConnection, reader};
use crate::registry::artifacts::SearchQuery;

/// The most a query may cost, in the units the module documentation describes.
pub(super) const MAX_COMPLEXITY: usize = 5_000;

/// The deepest a query may nest.
pub(super) const MAX_DEPTH: usize = 15;

/// The longest search text accepted, as on the REST API.
const MAX_SEARCH_TEXT: usize = 256;

pub(super) type GatiSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Built once: the schema holds no data, only types and limits.
static SCHEMA: LazyLock<GatiSchema> = LazyLock::new(|| {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_depth(MAX_DEPTH)
        .extension(async_graphql::extensions::Analyzer)
        .finish()
});

pub(super) fn schema() -> &'static GatiSchema {
    &SCHEMA
}

/// Reads Gati artifacts and the relationships between them.
pub(super) struct Query;

/// Reads Gati artifacts and the relationships between them.
#[Object]
impl Query {
    /// One artifact by its full name (`users/krishna/user-auth`); null when it does not exist
    /// or the caller may not see it.
    #[graphql(complexity = "read_cost(child_complexity)")]
    async fn artifact(&self, ctx: &Context<'_>, name: String) -> Result<Option<Artifact>> {
        let repo = artifact_name(&name)?;
        Ok(reader(ctx)?.artifact(&repo).await?.map(|_| Artifact::new(repo)))
    }

    /// Artifacts the caller may see, in name order, filtered by words that must each appear in
    /// the name or the latest version's description (`query`), by type and by namespace.
    /// Search is eventually consistent with publishing. `first` is 0 to 100.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn artifacts(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        #[graphql(name = "type")] kind: Option<String>,
        namespace: Option<String>,
        #[graphql(default_with = "DEFAULT_PAGE")] first: i32,
        after: Option<String>,
    ) -> Result<ArtifactConnection> {
        let size = page_size(first)?;
        if query.as_ref().is_some_and(|q| q.len() > MAX_SEARCH_TEXT) {
            return Err(bad_input(format!("query: at most {MAX_SEARCH_TEXT} bytes")));
        }
        let kind = kind
            .map(|k| k.parse::<ArtifactKind>())
            .transpose()
            .map_err(|e: gati_core::CoreError| bad_input(format!("type: {e}")))?;
        let after_repo = after
            .as_deref()
            .map(|cursor| {
                decode_cursor(CursorList::Artifacts, cursor)?
                    .parse::<RepoName>()
                    .map_err(|_| bad_input(format!("after: {cursor:?} is not a cursor of this list")))
            })
            .transpose()?;
        let search = SearchQuery { text: query, kind, namespace, after: after_repo, limit: size };
        let (found, more) = reader(ctx)?.search(&search).await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges.extend(found.into_iter().map(|summary| {
            Edge::new(encode_cursor(CursorList::Artifacts, summary.repo.as_str()), Artifact::new(summary.repo))
        }));
        Ok(connection)
    }
}

/// An artifact's name as users write it: `namespace/name`, perhaps after the registry's host.
fn artifact_name(name: &str) -> Result<RepoName> {
    let reference = ArtifactRef::parse(name, None).map_err(|e| bad_input(format!("name: {e}")))?;
    if reference.target != RefTarget::Latest {
        return Err(bad_input("name: the artifact's name only; ask for a version with Artifact.version"));
    }
    Ok(reference.repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `query` with no reader: validation happens, and any field that reads fails.
    async fn errors_of(query: &str) -> Vec<String> {
        schema().execute(query).await.errors.into_iter().map(|e| e.message).collect()
    }

    #[tokio::test]
    async fn costly_queries_are_refused_before_running() {
        let errors =
            errors_of("{ artifacts(first: 100) { nodes { versions(first: 100) { nodes { version } } } } }").await;
        assert_eq!(errors, ["Query is too complex."]);
        // Variables are costed with their values.
        let request = async_graphql::Request::new(
            "query($n: Int!) { artifacts(first: $n) { nodes { versions(first: $n) { nodes { version } } } } }",
        )
        .variables(async_graphql::Variables::from_json(serde_json::json!({ "n": 100 })));
        let errors: Vec<String> = schema().execute(request).await.errors.into_iter().map(|e| e.message).collect();
        assert_eq!(errors, ["Query is too complex."]);
    }

    #[tokio::test]
    async fn ordinary_queries_are_within_the_limits() {
        let query = "{ artifact(name: \"users/a/x\") { name type latest { version } \
            versions(first: 10) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { version \
              publisher { name verified } dependencies(first: 10) { name range resolved { version } artifact { name } } } } } \
            dependents(first: 20) { totalCount nodes { range artifact { name } version { version } } } } }";
        let response = schema().execute(query).await;
        let errors: Vec<&str> = response.errors.iter().map(|e| e.message.as_str()).collect();
        assert!(errors.iter().all(|e| !e.contains("too complex") && !e.contains("too deep")), "{errors:?}");
        assert!(!errors.is_empty(), "without a reader, reading fails at run time");
        // 5 (artifact) + 4 (name, type, latest) + 10 × 152 + 1 (versions: a node with ten
        // dependencies of 14 each) + 20 × 15 + 1 (dependents).
        let cost = response.extensions["analyzer"].to_string();
        assert!(cost.contains("complexity: 1831") && cost.contains("depth: 7"), "{cost}");
    }

    #[tokio::test]
    async fn the_introspection_query_of_graphql_tools_passes() {
        // graphql-js's getIntrospectionQuery: type references nest seven `ofType` deep under
        // `fields { args { type } }`.
        let type_ref = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name \
            ofType { kind name ofType { kind name ofType { kind name } } } } } } }";
        let query = format!(
            "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} \
             subscriptionType {{ name }} types {{ ...FullType }} directives {{ name description locations \
             args {{ ...InputValue }} }} }} }} \
             fragment FullType on __Type {{ kind name description fields(includeDeprecated: true) {{ name \
             description args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }} \
             inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }} enumValues(includeDeprecated: true) \
             {{ name description isDeprecated deprecationReason }} possibleTypes {{ ...TypeRef }} }} \
             fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }} \
             fragment TypeRef on __Type {{ {type_ref} }}"
        );
        let response = schema().execute(query.as_str()).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let text = response.data.to_string();
        for name in ["Artifact", "Version", "Dependency", "Dependent", "Publisher", "VersionConnection", "PageInfo"] {
            assert!(text.contains(&format!("name: \"{name}\"")), "{name} missing");
        }
    }

    #[tokio::test]
    async fn too_deep_queries_are_refused() {
        let mut query = String::from("{ artifact(name: \"users/a/x\") { ");
        for _ in 0..8 {
            query.push_str("latest { artifact { ");
        }
        query.push_str("name");
        query.push_str(&" } }".repeat(8));
        query.push_str(" } }");
        assert_eq!(errors_of(&query).await, ["Query is nested too deep."]);
    }

    #[test]
    fn artifact_names_are_names_only() {
        assert_eq!(artifact_name("users/krishna/user-auth").unwrap().as_str(), "users/krishna/user-auth");
        assert_eq!(artifact_name("gati.dev/users/krishna/user-auth").unwrap().as_str(), "users/krishna/user-auth");
        assert!(artifact_name("users/krishna/user-auth@1.0.0").is_err());
        assert!(artifact_name("user-auth").is_err());
        assert!(artifact_name("users/../x").is_err());
    }
}
