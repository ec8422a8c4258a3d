//! The HTTP client the OpenID Connect exchanges go through: hyper with rustls and the system's
//! trust roots, bounded in time and in response size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::error::{OidcError, Result};

/// How long one exchange with a provider may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How the registry names itself to providers.
const USER_AGENT: &str = concat!("gati-registry/", env!("CARGO_PKG_VERSION"));
/// The largest answer read from a provider (discovery documents and key sets are small).
const MAX_BODY: usize = 1 << 20;

/// A pooled HTTPS (and loopback HTTP) client.
pub(crate) struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    pub(crate) fn new() -> Result<HttpClient> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| OidcError::Config(format!("no trust roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient { client: Client::builder(TokioExecutor::new()).build(connector) })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let (parts, body) = request.into_parts();
        let request = openidconnect::http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| OidcError::Provider(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| OidcError::Provider(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(openidconnect::http::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| OidcError::Provider("no answer in time".into()))?
    }
}

impl HttpClient {
    /// One plain exchange (GitHub's REST calls): returns the status and the body. Every request
    /// names the registry in `User-Agent`, which GitHub requires.
    pub(crate) async fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>)> {
        let mut request =
            openidconnect::http::Request::builder().method(method).uri(url).header("user-agent", USER_AGENT);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).map_err(|e| OidcError::Config(format!("request to {url}: {e}")))?;
        let response = self.send(request).await?;
        Ok((response.status().as_u16(), response.into_body()))
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = OidcError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
