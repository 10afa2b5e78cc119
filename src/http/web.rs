//! The web site the node serves: the traveller's pages (search, seat map, sign-in, hold, pay,
//! e-tickets, trips) and the operator console (catalog, cluster, traffic, outbox).
//!
//! Pages are rendered on the server (minijinja templates compiled into the binary) from the same
//! operations as the JSON API, and every change is an HTML form posted back to the node: no
//! build step, no toolchain besides cargo, usable without scripts. `assets/app.js` only adds
//! what needs a script: the hold countdown, the live seat map (server-sent events) and the
//! console's live figures. A browser session is a JWT in an HttpOnly, SameSite=Strict cookie;
//! every form that changes state carries a CSRF token (see `session.rs`).

mod account;
mod console;
mod form;
pub(super) mod live;
mod render;
mod session;
mod traveller;
mod trips;

use super::error::ApiError;
use super::{Ctx, Response, with};
use session::Visitor;
use warp::{Filter, Rejection, Reply};

/// The site's route templates and their methods (metric labels, `Allow`).
pub(super) const PAGES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/assets/{name}", &["GET"]),
    ("/signin", &["GET", "POST"]),
    ("/signup", &["GET", "POST"]),
    ("/signout", &["POST"]),
    ("/flights/{id}", &["GET"]),
    ("/flights/{id}/hold", &["POST"]),
    ("/flights/{id}/seats/live", &["GET"]),
    ("/trips", &["GET"]),
    ("/trips/{id}", &["GET"]),
    ("/trips/{id}/pay", &["POST"]),
    ("/trips/{id}/cancel", &["POST"]),
    ("/admin", &["GET"]),
    ("/admin/catalog", &["GET"]),
    ("/admin/airports", &["POST"]),
    ("/admin/aircraft", &["POST"]),
    ("/admin/flights", &["POST"]),
    ("/admin/flights/{id}/cancel", &["POST"]),
    ("/admin/cluster", &["GET"]),
    ("/admin/cluster/drain", &["POST"]),
    ("/admin/cluster.json", &["GET"]),
    ("/admin/traffic.json", &["GET"]),
    ("/admin/outbox", &["GET"]),
    ("/admin/outbox/{id}/retry", &["POST"]),
];

/// Every page and asset of the site.
pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    assets()
        .or(traveller::routes(ctx.clone()))
        .unify()
        .or(trips::routes(ctx.clone()))
        .unify()
        .or(account::routes(ctx.clone()))
        .unify()
        .or(console::routes(ctx.clone()))
        .unify()
        .or(live::routes(ctx))
        .unify()
        .recover(render::refused)
        .unify()
}

const APP_CSS: &str = include_str!("web/assets/app.css");
const APP_JS: &str = include_str!("web/assets/app.js");

/// The stylesheet and the script, compiled in.
fn assets() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("assets" / String)
        .and(warp::get())
        .and_then(|name: String| async move {
            let (body, kind) = match name.as_str() {
                "app.css" => (APP_CSS, "text/css; charset=utf-8"),
                "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
                _ => return Err(warp::reject::not_found()),
            };
            let reply = warp::reply::with_header(body, "content-type", kind);
            let reply = warp::reply::with_header(reply, "cache-control", "public, max-age=300");
            Ok::<Response, Rejection>(reply.into_response())
        })
}

/// A GET page: the visitor (session, CSRF token, rate limit) and the context.
fn page(ctx: Ctx) -> impl Filter<Extract = (Visitor, Ctx), Error = Rejection> + Clone {
    warp::get()
        .and(session::visitor(ctx.clone()))
        .and(with(ctx))
}

/// A POST form: the visitor, the context and the form, once its CSRF token is checked.
fn post(ctx: Ctx) -> impl Filter<Extract = (Visitor, Ctx, form::Form), Error = Rejection> + Clone {
    warp::post()
        .and(session::visitor(ctx.clone()))
        .and(with(ctx))
        .and(form::form())
}

/// The response for a page handler's outcome: the page, or the error in plain words.
fn finish(visitor: &Visitor, outcome: Result<Response, ApiError>) -> Response {
    match outcome {
        Ok(response) => visitor.seal(response),
        Err(e) => visitor.seal(render::problem(visitor, e)),
    }
}

/// The signed-in user, or `Unauthorized` (which `finish` turns into the sign-in page).
fn signed_in(visitor: &Visitor) -> Result<&crate::domain::user::User, ApiError> {
    visitor
        .user
        .as_ref()
        .ok_or_else(|| ApiError::Unauthorized("sign in first".into()))
}
