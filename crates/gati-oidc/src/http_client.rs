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

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = OidcError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
