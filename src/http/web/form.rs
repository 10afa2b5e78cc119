//! Form fields and query parameters, as posted by a browser: repeated names allowed
//! (`seat=12A&seat=12B`), never a parse failure (bad percent-escapes decode lossily).

use std::collections::HashMap;
use warp::{Filter, Rejection};

/// A form body is small: at most this many bytes.
pub(super) const MAX_FORM_BYTES: usize = 32 * 1024;

/// Name-value pairs in the order sent.
#[derive(Debug, Default, Clone)]
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    /// Parses `application/x-www-form-urlencoded` text.
    pub(super) fn parse(text: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(text)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The values of `name`, trimmed, the empty ones left out.
    fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first non-empty value of `name`, trimmed.
    pub(super) fn get<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.values(name).next()
    }

    /// The first value of `name` exactly as sent (a password is not trimmed).
    pub(super) fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of `name`, trimmed.
    pub(super) fn all<'a>(&'a self, name: &str) -> Vec<&'a str> {
        self.values(name).collect()
    }

    /// The first non-empty value of each of `names`, by name.
    pub(super) fn pick(&self, names: &[&str]) -> HashMap<String, String> {
        names
            .iter()
            .filter_map(|n| self.get(n).map(|v| ((*n).to_owned(), v.to_owned())))
            .collect()
    }
}

/// The query string (empty when there is none).
pub(super) fn query() -> impl Filter<Extract = (Form,), Error = std::convert::Infallible> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .map(|q: String| Form::parse(q.as_bytes()))
}

/// A posted form body, declared or chunked (a 413 page beyond the limit).
pub(super) fn form() -> impl Filter<Extract = (Form,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .or(warp::any().map(|| None))
        .unify()
        .and(warp::body::stream())
        .and_then(|length: Option<u64>, body| async move {
            super::super::body::collect(length, body, MAX_FORM_BYTES)
                .await
                .map(|bytes| Form::parse(&bytes))
                .map_err(|e| warp::reject::custom(super::session::Refused(e)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_and_bad_escapes_parse() {
        let f = Form::parse(b"seat=12A&seat=+12B+&seat=&name=%3Cb%3E&bad=%ZZ");
        assert_eq!(f.all("seat"), ["12A", "12B"]);
        assert_eq!(f.get("name"), Some("<b>"));
        assert_eq!(f.get("bad"), Some("%ZZ"));
        assert_eq!(f.get("missing"), None);
        assert_eq!(f.pick(&["name", "missing"]).len(), 1);
    }
}
