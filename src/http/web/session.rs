//! Who is asking: the browser session, the CSRF token, the request rate.
//!
//! The session is the same signed JWT the API hands out, kept in an `HttpOnly`,
//! `SameSite=Strict` cookie that scripts on the page cannot read. CSRF protection is a signed
//! double submit: a token in its own `HttpOnly`, `SameSite=Strict` cookie, repeated in a hidden
//! field of every form; a POST whose field does not match its cookie is refused. The token is a
//! random nonce and an HMAC (keyed from the node's secret) of that nonce and the account it was
//! issued to ("-" before signing in), so a pair planted by someone who can set cookies for this
//! host (a sibling subdomain) fails for anyone else's session, and signing in or out issues a new
//! one: a token seen before the session began is worthless after it.

use super::super::auth::user_of;
use super::super::error::ApiError;
use super::super::{Ctx, Response, with};
use crate::domain::user::{Role, User};
use aws_lc_rs::hmac;
use std::net::{IpAddr, SocketAddr};
use warp::http::HeaderValue;
use warp::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, SET_COOKIE};
use warp::{Filter, Rejection};

/// The session cookie (a JWT).
pub(super) const SESSION_COOKIE: &str = "contrail_session";
/// The CSRF token's cookie.
const CSRF_COOKIE: &str = "contrail_csrf";

/// No inline script or style, nothing from elsewhere, no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A request refused before its handler ran (rate limit, CSRF), shown as a page by
/// `render::refused`.
#[derive(Debug)]
pub(super) struct Refused(pub(super) ApiError);

impl warp::reject::Reject for Refused {}

/// The person behind a request.
pub(super) struct Visitor {
    /// The signed-in account, if the session cookie holds a valid token.
    pub(super) user: Option<User>,
    /// The CSRF token every form of the page carries.
    pub(super) csrf: String,
    /// The token is new: its cookie goes out with the response.
    fresh_csrf: bool,
    /// The path and query of this request (where to come back to after signing in).
    pub(super) here: String,
    /// The client's address (sign-in limits).
    pub(super) address: IpAddr,
    /// Cookies are marked `Secure` (`http.secure_cookies`).
    secure: bool,
}

impl Visitor {
    /// Whether the visitor may use the console's pages for `role`.
    pub(super) fn may(&self, role: Role) -> bool {
        self.user.as_ref().is_some_and(|u| u.may(role))
    }

    /// Adds the headers every page carries, and the CSRF cookie when it is new.
    pub(super) fn seal(&self, mut response: Response) -> Response {
        secure_headers(&mut response);
        let headers = response.headers_mut();
        let sets_csrf = headers
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(CSRF_COOKIE.as_bytes()));
        if self.fresh_csrf
            && !sets_csrf
            && let Ok(cookie) = HeaderValue::from_str(&csrf_cookie(&self.csrf, self.secure))
        {
            headers.append(SET_COOKIE, cookie);
        }
        response
    }
}

/// The headers every page carries: its CSP, no framing, no referrer elsewhere, no caching.
pub(super) fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The key CSRF tokens are signed with: derived from the node's secret, for this use only.
fn csrf_key(ctx: &Ctx) -> hmac::Key {
    use secrecy::ExposeSecret;
    let secret = ctx
        .settings
        .auth
        .jwt_secret
        .as_ref()
        .map(|s| s.expose_secret().as_bytes().to_vec())
        .unwrap_or_default();
    let derived = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        b"contrail web csrf v1",
    );
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// Who a CSRF token is issued to.
fn issued_to(user: Option<&User>) -> String {
    user.map_or_else(|| "-".to_owned(), |u| u.id.to_string())
}

/// A new CSRF token for `subject`: `nonce.hmac(nonce|subject)`, hex.
fn csrf_token(ctx: &Ctx, subject: &str) -> String {
    let nonce = new_token();
    let tag = hmac::sign(&csrf_key(ctx), format!("{nonce}|{subject}").as_bytes());
    format!("{nonce}.{}", hex(tag.as_ref()))
}

/// Whether `token` was issued by this node to `subject`.
fn csrf_valid(ctx: &Ctx, token: &str, subject: &str) -> bool {
    let Some((nonce, tag)) = token.split_once('.') else {
        return false;
    };
    let Some(tag) = unhex(tag) else {
        return false;
    };
    nonce.len() == 64
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
        && hmac::verify(
            &csrf_key(ctx),
            format!("{nonce}|{subject}").as_bytes(),
            &tag,
        )
        .is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.len()
        .is_multiple_of(2)
        .then(|| {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

/// A new random token (256 bits, hex).
pub(super) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Never expected; a fastrand token still differs per visitor, and the cookie stays
        // HttpOnly and SameSite=Strict.
        bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
    hex(&bytes)
}

fn csrf_cookie(token: &str, secure: bool) -> String {
    format!("{CSRF_COOKIE}={token}; {}", attributes(secure))
}

/// The attributes of every cookie of the site.
fn attributes(secure: bool) -> &'static str {
    if secure {
        "Path=/; HttpOnly; SameSite=Strict; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Strict"
    }
}

/// Starts a browser session for `user` on `response`: the session cookie and a new CSRF token.
pub(super) fn begin(ctx: &Ctx, user: &User, mut response: Response) -> Result<Response, ApiError> {
    let token = ctx.tokens.issue(user)?;
    let secure = ctx.settings.http.secure_cookies;
    let session = format!(
        "{SESSION_COOKIE}={token}; {}; Max-Age={}",
        attributes(secure),
        ctx.tokens.ttl_secs()
    );
    let csrf = csrf_token(ctx, &issued_to(Some(user)));
    for cookie in [session, csrf_cookie(&csrf, secure)] {
        let value = HeaderValue::from_str(&cookie)
            .map_err(|e| ApiError::Internal(format!("session cookie: {e}")))?;
        response.headers_mut().append(SET_COOKIE, value);
    }
    Ok(response)
}

/// Ends the browser session on `response`.
pub(super) fn end(ctx: &Ctx, mut response: Response) -> Response {
    let secure = ctx.settings.http.secure_cookies;
    let gone = format!("{SESSION_COOKIE}=; {}; Max-Age=0", attributes(secure));
    for cookie in [
        gone,
        csrf_cookie(&csrf_token(ctx, &issued_to(None)), secure),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The visitor, after the request rate check (refused with a page beyond it).
pub(super) fn visitor(ctx: Ctx) -> impl Filter<Extract = (Visitor,), Error = Rejection> + Clone {
    warp::header::optional::<String>("cookie")
        .and(warp::addr::remote())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::method())
        .and(with(ctx))
        .and_then(
            |cookies: Option<String>,
             address: Option<SocketAddr>,
             path: warp::path::FullPath,
             query: String,
             method: warp::http::Method,
             ctx: Ctx| async move {
                let cookies = cookies.as_deref();
                let token = cookie(cookies, SESSION_COOKIE).filter(|t| !t.is_empty());
                // The limit first (keyed by the token's subject: a cached signature check),
                // then the account.
                let subject = token
                    .and_then(|t| ctx.tokens.verify(t).ok())
                    .map(|v| v.user);
                let address = address.map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
                ctx.limits
                    .check_request(subject.map(|s| s.to_string()), Some(address))
                    .map_err(|e| warp::reject::custom(Refused(e)))?;
                let user = match token {
                    // An expired or revoked session is simply signed out.
                    Some(token) => user_of(&ctx, token).await.ok(),
                    None => None,
                };
                // A token issued to someone else (or before this session) is no token.
                let owner = issued_to(user.as_ref());
                let known = cookie(cookies, CSRF_COOKIE).filter(|t| csrf_valid(&ctx, t, &owner));
                let here = if method != warp::http::Method::GET {
                    // A form's action is no page to come back to: its page is.
                    origin_page(path.as_str())
                } else if query.is_empty() {
                    path.as_str().to_owned()
                } else {
                    format!("{}?{query}", path.as_str())
                };
                Ok::<Visitor, Rejection>(Visitor {
                    user,
                    csrf: known.map_or_else(|| csrf_token(&ctx, &owner), str::to_owned),
                    fresh_csrf: known.is_none(),
                    here,
                    address,
                    secure: ctx.settings.http.secure_cookies,
                })
            },
        )
}

/// The page a form at `action` is posted from (`/trips/x/pay` → `/trips/x`).
fn origin_page(action: &str) -> String {
    match action.rsplit_once('/') {
        Some(("/admin", _)) => "/admin/catalog".to_owned(),
        Some((parent, _)) if !parent.is_empty() => parent.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Refuses a form whose CSRF field does not match the visitor's cookie.
pub(super) fn check_csrf(visitor: &Visitor, field: Option<&str>) -> Result<(), Rejection> {
    let matches = !visitor.fresh_csrf
        && field.is_some_and(|f| {
            f.len() == visitor.csrf.len()
                && f.bytes()
                    .zip(visitor.csrf.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
    if matches {
        Ok(())
    } else {
        Err(warp::reject::custom(Refused(ApiError::Forbidden(
            "this form has expired or did not come from this site; reload the page and try again"
                .into(),
        ))))
    }
}

/// A local path to come back to (`next`), never another site.
pub(super) fn local(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = Some("a=1; contrail_session=tok; contrail_session_x=no");
        assert_eq!(cookie(header, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(header, "contrail"), None);
        assert_eq!(cookie(None, SESSION_COOKIE), None);
    }

    #[test]
    fn next_is_only_ever_a_path_of_this_site() {
        assert_eq!(local(Some("/trips/ord_1?x=1")), "/trips/ord_1?x=1");
        for evil in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "/a b",
            "",
        ] {
            assert_eq!(local(Some(evil)), "/", "{evil}");
        }
        assert_eq!(local(None), "/");
    }

    #[test]
    fn a_form_comes_back_to_its_page() {
        assert_eq!(origin_page("/trips/ord_1/pay"), "/trips/ord_1");
        assert_eq!(origin_page("/flights/flt_1/hold"), "/flights/flt_1");
        assert_eq!(origin_page("/admin/airports"), "/admin/catalog");
        assert_eq!(origin_page("/signin"), "/");
    }

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
