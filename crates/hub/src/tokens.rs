//! Upload tokens: parsed from `KV_HUB_TOKENS` (comma separated) and a tokens file (one per line,
//! `#` comments), checked against `Authorization: Bearer <token>`.
//!
//! Only sha256 digests of the tokens are kept, and a presented token is compared with every
//! configured digest without an early exit, so the time a check takes tells nothing about how
//! much of a token matched (nor its length).

use crate::error::{Error, Result};
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

/// The configured upload tokens (empty: uploads disabled).
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print a secret, not even hashed
        f.debug_struct("Tokens").field("count", &self.digests.len()).finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Tokens from a list; blank entries are ignored.
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Tokens {
        let mut digests: Vec<[u8; 32]> = tokens.into_iter().map(str::trim).filter(|t| !t.is_empty()).map(digest).collect();
        digests.sort_unstable();
        digests.dedup();
        Tokens { digests }
    }

    /// Tokens from the `KV_HUB_TOKENS` value (comma separated) and a tokens file's text (one per
    /// line, `#` starts a comment).
    pub fn parse(env: Option<&str>, file: Option<&str>) -> Tokens {
        let from_env = env.into_iter().flat_map(|s| s.split(','));
        let from_file = file.into_iter().flat_map(str::lines).map(|l| l.split('#').next().unwrap_or(""));
        Tokens::new(from_env.chain(from_file))
    }

    /// Whether uploads are possible at all.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// How many distinct tokens are configured.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Checks the request's bearer token: 403 when uploads are disabled, 401 when the token is
    /// missing, malformed or unknown.
    pub fn check(&self, headers: &HeaderMap) -> Result<()> {
        if !self.enabled() {
            return Err(Error::UploadsDisabled);
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Error::Unauthorized { reason: "missing `Authorization: Bearer <token>` header: uploads need a token".into() });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(Error::Unauthorized { reason: "the Authorization header is not `Bearer <token>`".into() });
        };
        let presented = digest(token);
        let mut matched = 0u8;
        for d in &self.digests {
            let diff = d.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            matched |= u8::from(diff == 0);
        }
        if matched == 1 {
            Ok(())
        } else {
            Err(Error::Unauthorized { reason: "the upload token is not accepted by this kv-hub".into() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn env_and_file_are_merged_comments_and_blanks_ignored() {
        let t = Tokens::parse(Some(" a, b ,,"), Some("# ops team\nc\n\n  d  # laptop\nb\n"));
        assert_eq!(t.len(), 4);
        for ok in ["Bearer a", "Bearer b", "bearer c", "Bearer d"] {
            assert!(t.check(&headers(Some(ok))).is_ok(), "{ok}");
        }
        assert!(matches!(t.check(&headers(Some("Bearer e"))), Err(Error::Unauthorized { .. })));
        assert!(matches!(t.check(&headers(Some("Basic a"))), Err(Error::Unauthorized { .. })));
        assert!(matches!(t.check(&headers(None)), Err(Error::Unauthorized { .. })));
    }

    #[test]
    fn no_tokens_means_uploads_disabled() {
        let t = Tokens::parse(None, Some("# nothing\n"));
        assert!(!t.enabled());
        assert!(matches!(t.check(&headers(Some("Bearer a"))), Err(Error::UploadsDisabled)));
        assert_eq!(format!("{t:?}"), "Tokens { count: 0 }");
    }
}
