//! The API's route templates, read once from the OpenAPI document, so that metric labels and
//! `Allow` headers come from the same list as the documentation.
//!
//! A request's `route` label is the template it matched (`/api/v1/flights/{id}/seats`) or
//! `unmatched`, and its `method` label a standard method or `OTHER`: whatever a client sends,
//! the number of label values stays fixed (an unauthenticated client cannot grow `/metrics`).

use std::sync::LazyLock;
use utoipa::openapi::PathItem;

/// The `route` label of a request that matched no route.
pub(super) const UNMATCHED: &str = "unmatched";

/// One documented route.
struct Template {
    /// As documented, e.g. `/api/v1/orders/{id}/pay`.
    text: String,
    /// Its segments; `None` stands for a path parameter.
    segments: Vec<Option<String>>,
    /// The methods it serves, for `Allow`.
    methods: Vec<&'static str>,
}

static TEMPLATES: LazyLock<Vec<Template>> = LazyLock::new(|| {
    super::openapi::document()
        .paths
        .paths
        .iter()
        .map(|(text, item)| Template {
            text: text.clone(),
            segments: segments_of(text),
            methods: methods_of(item),
        })
        .chain(super::web::PAGES.iter().map(|(text, methods)| Template {
            text: (*text).to_owned(),
            segments: segments_of(text),
            methods: methods.to_vec(),
        }))
        .collect()
});

fn segments_of(text: &str) -> Vec<Option<String>> {
    text.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
        .collect()
}

fn methods_of(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", item.get.is_some()),
        ("POST", item.post.is_some()),
        ("PUT", item.put.is_some()),
        ("PATCH", item.patch.is_some()),
        ("DELETE", item.delete.is_some()),
    ]
    .into_iter()
    .filter_map(|(method, served)| served.then_some(method))
    .collect()
}

fn matching(path: &str) -> Option<&'static Template> {
    // Runs twice per request (span and metrics): no allocation.
    let segments = || path.split('/').filter(|s| !s.is_empty());
    let count = segments().count();
    TEMPLATES.iter().find(|t| {
        t.segments.len() == count
            && t.segments
                .iter()
                .zip(segments())
                .all(|(want, got)| want.as_deref().is_none_or(|w| w == got))
    })
}

/// The `route` label of a request path.
pub(super) fn route_label(path: &str) -> &'static str {
    matching(path).map_or(UNMATCHED, |t| t.text.as_str())
}

/// The `method` label: a standard method, or `OTHER`.
pub(super) fn method_label(method: &warp::http::Method) -> &'static str {
    use warp::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The `Allow` header of a documented path (`GET, POST`), for a 405.
pub(super) fn allowed(path: &str) -> Option<String> {
    matching(path).map(|t| t.methods.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fold_into_their_documented_templates() {
        assert_eq!(
            route_label("/api/v1/flights/flt_0123abc/seats"),
            "/api/v1/flights/{id}/seats"
        );
        assert_eq!(
            route_label("/api/v1/users/usr_1/roles"),
            "/api/v1/users/{id}/roles"
        );
        assert_eq!(route_label("/api/v1/flights"), "/api/v1/flights");
        assert_eq!(route_label("/healthz"), "/healthz");
        for stray in [
            "/nowhere/at/all",
            "/admin/elsewhere/x",
            "/api/v1/flights/a/b/c",
            "/Some-Random-Thing/..%2F",
        ] {
            assert_eq!(route_label(stray), UNMATCHED, "{stray}");
        }
    }

    #[test]
    fn allow_lists_the_documented_methods() {
        assert_eq!(allowed("/api/v1/flights").as_deref(), Some("GET, POST"));
        assert_eq!(allowed("/api/v1/orders/ord_1/pay").as_deref(), Some("POST"));
        assert_eq!(allowed("/nowhere"), None);
        assert_eq!(allowed("/trips/ord_1/pay").as_deref(), Some("POST"));
        assert_eq!(route_label("/flights/flt_1"), "/flights/{id}");
        assert_eq!(route_label("/"), "/");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let custom = warp::http::Method::from_bytes(b"BREW").expect("method"); // ok: a unit test
        assert_eq!(method_label(&custom), "OTHER");
        assert_eq!(method_label(&warp::http::Method::DELETE), "DELETE");
    }
}
