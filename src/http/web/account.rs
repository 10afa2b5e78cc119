//! Sign up, sign in, sign out.

use super::super::accounts::{SigninRequest, SignupRequest, create_account, sign_in};
use super::super::error::ApiError;
use super::super::{Ctx, Response};
use super::form::Form;
use super::render::{html, plain_words, redirect};
use super::session::{self, Visitor, check_csrf, local};
use super::{finish, page, post};
use minijinja::context;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let show = warp::path!(String)
        .and_then(|mode: String| async move {
            if mode == "signin" || mode == "signup" {
                Ok(mode)
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(page(ctx.clone()))
        .and(super::form::query())
        .then(
            |mode: String, v: Visitor, _ctx: Ctx, query: Form| async move {
                let next = local(query.get("next"));
                let outcome = form_page(&v, &mode, &next, &Form::default(), None);
                finish(&v, outcome)
            },
        );
    let submit = warp::path!(String)
        .and_then(|mode: String| async move {
            if mode == "signin" || mode == "signup" || mode == "signout" {
                Ok(mode)
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(post(ctx))
        .and_then(
            |mode: String, v: Visitor, ctx: Ctx, form: Form| async move {
                check_csrf(&v, form.get("csrf"))?;
                Ok::<Response, Rejection>(submit(mode, v, ctx, form).await)
            },
        );
    show.or(submit).unify()
}

fn form_page(
    v: &Visitor,
    mode: &str,
    next: &str,
    typed: &Form,
    error: Option<ApiError>,
) -> Result<Response, ApiError> {
    let status = error.as_ref().map_or(StatusCode::OK, |e| match e {
        // A wrong password re-shows the form; it is not an error of the page.
        ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        other => other.status(),
    });
    let error = error.map(|e| match e {
        ApiError::Unauthorized(_) => "That e-mail address and password do not match.".to_owned(),
        other => plain_words(&other),
    });
    html(
        v,
        status,
        "account.html",
        context! {
            title => if mode == "signup" { "Create an account" } else { "Sign in" },
            mode => mode,
            next => next,
            email => typed.get("email"),
            name => typed.get("name"),
            error => error,
        },
    )
}

async fn submit(mode: String, v: Visitor, ctx: Ctx, form: Form) -> Response {
    let next = local(form.get("next"));
    if mode == "signout" {
        return v.seal(session::end(&ctx, redirect("/")));
    }
    let email = form.get("email").unwrap_or_default().to_owned();
    let password = form.raw("password").unwrap_or_default().to_owned();
    let user = if mode == "signup" {
        let request = SignupRequest {
            email,
            password,
            name: form.get("name").unwrap_or_default().to_owned(),
        };
        create_account(&ctx, request).await
    } else {
        sign_in(&ctx, v.address, SigninRequest { email, password }).await
    };
    let outcome = match user {
        Ok(user) => session::begin(&ctx, &user, redirect(&next)),
        Err(error) => form_page(&v, &mode, &next, &form, Some(error)),
    };
    finish(&v, outcome)
}
