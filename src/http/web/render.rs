//! Templates (compiled in, HTML-escaped by default), their filters, and errors in plain words.

use super::super::Response;
use super::super::error::ApiError;
use super::session::{Refused, Visitor};
use chrono::{DateTime, Utc};
use minijinja::{Environment, Value, context};
use std::sync::LazyLock;
use warp::Reply;
use warp::http::StatusCode;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("templates/", $name)))),*]
    };
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Every `.html` template escapes what it prints unless told otherwise (it never is).
    for (name, text) in templates!(
        "base.html",
        "search.html",
        "flight.html",
        "account.html",
        "trips.html",
        "trip.html",
        "problem.html",
        "console_catalog.html",
        "console_cluster.html",
        "console_traffic.html",
        "console_outbox.html",
    ) {
        if let Err(e) = env.add_template(name, text) {
            // A broken template is a build defect; the page shows the problem page instead.
            tracing::error!(template = name, error = %e, "template does not parse");
        }
    }
    env.add_filter("money", money);
    env.add_filter("when", when);
    env.add_filter("hm", hours_minutes);
    env.add_filter("urlencode", |text: String| {
        form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
    });
    env
});

/// `12900 | money("USD")` → `USD 129.00`.
fn money(cents: u64, currency: Option<String>) -> String {
    format!(
        "{} {}.{:02}",
        currency.as_deref().unwrap_or(""),
        cents / 100,
        cents % 100
    )
    .trim_start()
    .to_owned()
}

/// An RFC 3339 time → `Tue 1 Dec 2026, 06:00 UTC`.
fn when(time: String) -> String {
    DateTime::parse_from_rfc3339(&time).map_or(time, |t| {
        t.with_timezone(&Utc)
            .format("%a %-d %b %Y, %H:%M UTC")
            .to_string()
    })
}

/// Minutes → `2h 10m`.
fn hours_minutes(minutes: i64) -> String {
    format!("{}h {:02}m", minutes / 60, minutes % 60)
}

/// Anything serializable, for a template.
pub(super) fn to_value<T: serde::Serialize>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The page `template` with `status`, the visitor's navigation and `data`.
pub(super) fn html(
    visitor: &Visitor,
    status: StatusCode,
    template: &str,
    data: Value,
) -> Result<Response, ApiError> {
    let user = visitor.user.as_ref().map(|u| {
        context! {
            name => u.name.clone(),
            admin => u.may(crate::domain::user::Role::Admin),
            airline => u.may(crate::domain::user::Role::Airline),
        }
    });
    let page = TEMPLATES
        .get_template(template)
        .and_then(|t| {
            t.render(context! {
                user => user,
                csrf => visitor.csrf.clone(),
                here => visitor.here.clone(),
                ..data
            })
        })
        .map_err(|e| ApiError::Internal(format!("template {template}: {e:#}")))?;
    Ok(warp::reply::with_status(warp::reply::html(page), status).into_response())
}

/// 303 See Other to `to` (after a form: the browser then GETs the result).
pub(super) fn redirect(to: &str) -> Response {
    let mut response =
        warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    if let Ok(location) = warp::http::HeaderValue::from_str(to) {
        response
            .headers_mut()
            .insert(warp::http::header::LOCATION, location);
    }
    response
}

/// What went wrong, in the words a traveller or an operator needs.
pub(super) fn plain_words(error: &ApiError) -> String {
    match error {
        ApiError::Conflict { code: "seats_unavailable", message } => format!(
            "Sorry, that seat was just taken by someone else ({message}). Please pick another."
        ),
        ApiError::Conflict { code: "hold_limit_exceeded", .. } => {
            "You already hold as many seats as one traveller may; pay for or cancel a trip first."
                .into()
        }
        ApiError::Conflict { code: "order_not_payable", .. } => {
            "This trip can no longer be paid: its hold has expired or it was cancelled.".into()
        }
        ApiError::Conflict { code: "email_taken", .. } => {
            "An account with this e-mail address already exists. Sign in instead.".into()
        }
        ApiError::PaymentDeclined(_) => {
            "Your card was declined. Your seats are still held; try another card before the hold runs out."
                .into()
        }
        ApiError::PaymentTimeout => {
            "The payment service did not answer in time. Nothing was charged; please try again."
                .into()
        }
        ApiError::RateLimited { retry_after_secs } => format!(
            "Too many requests. Please wait {retry_after_secs} second(s) and try again."
        ),
        ApiError::Unavailable(_) => {
            "This part of the system cannot be reached right now. Please try again in a moment."
                .into()
        }
        ApiError::Unauthorized(why) => format!("Please sign in ({why})."),
        ApiError::AccountDisabled => "This account has been disabled.".into(),
        ApiError::Forbidden(why) => format!("Not allowed: {why}."),
        ApiError::NotFound => "We could not find that page.".into(),
        ApiError::PayloadTooLarge(_) => "That form is too large.".into(),
        ApiError::Internal(_) => "Something went wrong on our side. Please try again.".into(),
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            chars.next().map_or(text.clone(), |first| {
                format!("{}{}.", first.to_uppercase(), chars.as_str())
            })
        }
    }
}

/// The page for a failed request: sign-in for a visitor who is not signed in, the problem in
/// plain words otherwise.
pub(super) fn problem(visitor: &Visitor, error: ApiError) -> Response {
    if matches!(error, ApiError::Unauthorized(_)) && visitor.user.is_none() {
        let next = form_urlencoded::byte_serialize(visitor.here.as_bytes()).collect::<String>();
        return redirect(&format!("/signin?next={next}"));
    }
    if let ApiError::Internal(cause) = &error {
        tracing::error!(cause = %cause, "internal error on a page");
    }
    let status = error.status();
    let message = plain_words(&error);
    let page = html(
        visitor,
        status,
        "problem.html",
        context! { title => "Something went wrong", message => message.clone() },
    );
    page.unwrap_or_else(|_| {
        warp::reply::with_status(warp::reply::html(escape(&message)), status).into_response()
    })
}

/// `text` safe to put between HTML tags.
fn escape(text: &str) -> String {
    text.chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#x27;"),
                c => out.push(c),
            }
            out
        })
}

/// Turns a request refused before its page ran (rate limit, CSRF, a form too large) into a
/// page; every other rejection goes on to the API's.
pub(super) async fn refused(rejection: warp::Rejection) -> Result<Response, warp::Rejection> {
    let Some(Refused(error)) = rejection.find::<Refused>() else {
        return Err(rejection);
    };
    let error = error.clone();
    let message = plain_words(&error);
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Contrail</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"><main><p class=\"error\" role=\"alert\">{}</p>\
         <p><a href=\"/\">Back to the start</a></p></main></html>",
        escape(&message)
    );
    let mut response =
        warp::reply::with_status(warp::reply::html(page), error.status()).into_response();
    super::session::secure_headers(&mut response);
    if let ApiError::RateLimited { retry_after_secs } = error {
        response.headers_mut().insert(
            warp::http::header::RETRY_AFTER,
            warp::http::HeaderValue::from(retry_after_secs.max(1)),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_format_money_times_and_durations() {
        assert_eq!(money(12900, Some("USD".into())), "USD 129.00");
        assert_eq!(money(5, None), "0.05");
        assert_eq!(
            when("2026-12-01T06:00:00Z".into()),
            "Tue 1 Dec 2026, 06:00 UTC"
        );
        assert_eq!(when("garbage".into()), "garbage");
        assert_eq!(hours_minutes(130), "2h 10m");
    }

    #[test]
    fn every_template_parses() {
        // A template that does not parse is logged and left out of the environment.
        let loaded = TEMPLATES.templates().count();
        let files = std::fs::read_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/http/web/templates"
        ))
        .map(|dir| dir.count())
        .unwrap_or_default();
        assert_eq!(
            loaded, files,
            "every file of templates/ is loaded and parses"
        );
    }

    #[test]
    fn what_users_typed_is_escaped() {
        let out = TEMPLATES
            .render_str(
                "{{ name }}",
                context! { name => "<script>alert(1)</script>" },
            )
            .unwrap_or_default();
        assert_eq!(out, "<script>alert(1)</script>", "render_str is not .html");
        let env = &*TEMPLATES;
        let page = env
            .get_template("problem.html")
            .and_then(|t| {
                t.render(context! {
                    title => "t", message => "<script>alert(1)</script>", csrf => "x", here => "/"
                })
            })
            .unwrap_or_default();
        assert!(page.contains("&lt;script&gt;alert(1)&lt;"), "{page}");
        assert!(!page.contains("<script>alert"));
    }
}
