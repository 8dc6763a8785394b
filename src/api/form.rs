//! Request parameters from the query string of a GET and the form body of a POST (both at
//! once are merged), as the Prometheus and Loki HTTP APIs take them.

use axum::http::Uri;

/// The parameters of one request, in arrival order.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parameters of the query string of `uri` and of a form-encoded `body`.
    pub fn parse(uri: &Uri, body: &[u8]) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(query) = uri.query() {
            pairs.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        pairs.extend(form_urlencoded::parse(body).into_owned());
        Self { pairs }
    }

    /// The last value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}
