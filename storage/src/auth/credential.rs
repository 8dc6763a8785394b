//! The key a request presents: `Authorization: Bearer <key>`, or Basic with the key as the
//! password (what Grafana data sources and browsers send), or as the user name when the
//! password is empty. The same header name is the gRPC metadata key.

use base64::Engine;

use super::AuthError;

/// The header (and gRPC metadata key) carrying credentials.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// The `WWW-Authenticate` challenge of API clients (OTLP, Prometheus, Loki, Jaeger).
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"skewer\"";

/// The `WWW-Authenticate` challenge that makes a browser ask for the key (as the password).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"skewer\", charset=\"UTF-8\"";

/// Longest `Authorization` value read: keys are short, a huge header is not one.
const MAX_AUTHORIZATION_BYTES: usize = 1024;

/// The presented key; `None` when the request sent no `Authorization` at all.
pub fn token_from_authorization(value: Option<&[u8]>) -> Result<Option<String>, AuthError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(AuthError::MalformedAuthorization);
    }
    let text = std::str::from_utf8(value).map_err(|_| AuthError::MalformedAuthorization)?;
    let (scheme, rest) = text
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MalformedAuthorization)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::MalformedAuthorization)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::MalformedAuthorization)?;
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        let key = if password.is_empty() { user } else { password };
        return Ok(Some(key.to_owned()));
    }
    Err(AuthError::MalformedAuthorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn bearer_and_basic_yield_the_key() {
        let parse = |value: &[u8]| token_from_authorization(Some(value)).unwrap();
        assert_eq!(parse(b"Bearer skw_1"), Some("skw_1".into()));
        assert_eq!(parse(b"bearer   skw_1 "), Some("skw_1".into()));
        assert_eq!(parse(&basic("grafana:skw_2")), Some("skw_2".into()));
        assert_eq!(parse(&basic("skw_3:")), Some("skw_3".into()));
        assert_eq!(parse(&basic("skw_4")), Some("skw_4".into()));
        assert_eq!(token_from_authorization(None).unwrap(), None);
    }

    #[test]
    fn anything_else_is_malformed() {
        for value in [
            &b"Digest abc"[..],
            b"Bearer",
            b"Basic !!!notbase64",
            b"\xff\xfe",
            &[b'a'; 2000],
        ] {
            assert!(
                matches!(
                    token_from_authorization(Some(value)),
                    Err(AuthError::MalformedAuthorization)
                ),
                "{value:?}"
            );
        }
    }
}
