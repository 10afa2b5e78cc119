//! The OpenAPI 3 document, generated from the handlers' annotations and the request and
//! response types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "Contrail", description = "Flight and ticket booking API", license(name = "Proprietary")),
    paths(
        super::accounts::signup, super::accounts::signin, super::accounts::me, super::accounts::set_roles,
        super::accounts::set_disabled, super::accounts::change_password,
        super::airports::create, super::airports::list,
        super::aircraft::create,
        super::flights::create, super::flights::search, super::flights::get, super::flights::seats,
        super::flights::cancel,
        super::orders::create, super::orders::list, super::orders::get, super::orders::pay,
        super::orders::cancel, super::orders::tickets, super::orders::ticket, super::orders::notifications,
        super::ops::healthz, super::ops::readyz, super::ops::metrics_doc, super::ops::openapi_doc,
        super::cluster::view, super::cluster::drain, super::cluster::remove, super::cluster::faults,
        super::outbox::list, super::outbox::retry,
    ),
    components(schemas(SortOrder)),
    modifiers(&BearerAuth, &ErrorResponses)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every error response documented the same way: a description (the specification requires
/// one), the error body `{"error":{"code","message"}}` as a shared `Error` schema, and the
/// statuses every operation of its kind can answer — 401 where a token is required, 400, 413
/// and 415 where a body is read, 429 and 503 on the API — so that a generated client knows them
/// all without each handler repeating them.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let detail = ObjectBuilder::new()
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "Stable machine-readable code, e.g. `seats_unavailable`.",
                    )),
            )
            .property(
                "message",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("What went wrong, in words.")),
            )
            .required("code")
            .required("message");
        let error = ObjectBuilder::new()
            .property("error", detail)
            .required("error");
        openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .insert("Error".into(), error.into());
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let mut statuses: Vec<&str> = Vec::new();
                if operation.security.is_some() {
                    statuses.push("401");
                }
                if operation.request_body.is_some() {
                    statuses.extend(["400", "413", "415"]);
                }
                if api {
                    statuses.extend(["429", "503"]);
                }
                let responses = &mut operation.responses.responses;
                for status in statuses {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| Response::new("").into());
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        describe(status, response);
                    }
                }
            }
        }
    }
}

/// Fills in a response's description, and the error body of a 4xx or 5xx.
fn describe(status: &str, response: &mut Response) {
    if response.description.is_empty() {
        response.description = match status {
            "200" => "OK",
            "201" => "Created",
            "204" => "No content",
            "400" => "`invalid_request`: malformed JSON, an unknown field, or a rule broken (the message names it)",
            "401" => "`unauthorized`: no token, or an invalid, expired or revoked one; or bad credentials",
            "402" => "`payment_declined`",
            "403" => "`forbidden`: your role or carrier does not allow this",
            "404" => "`not_found`",
            "405" => "`method_not_allowed`, with `Allow`",
            "409" => "a conflict with the current state (the code says which)",
            "413" => "`payload_too_large`",
            "415" => "`unsupported_media_type`: the body must be application/json",
            "422" => "`idempotency_key_reused` with a different request",
            "429" => "`rate_limited`, with `Retry-After`",
            "503" => "`unavailable`: try again after `Retry-After`",
            _ => "See the error code",
        }
        .to_owned();
    }
    let error = status.starts_with('4') || status.starts_with('5');
    if error && response.content.is_empty() {
        response.content.insert(
            "application/json".into(),
            Content::new(Some(Ref::from_schema_name("Error"))).into(),
        );
    }
}

/// A fare in minor units, 0 to `MAX_FARE_CENTS` (a name for the rule in the API description).
pub(super) struct FareCents;

impl utoipa::PartialSchema for FareCents {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(crate::domain::flight::MAX_FARE_CENTS as f64))
            .into()
    }
}

impl ToSchema for FareCents {}

/// What `domain::airport::text` accepts, as a pattern: at least one character that is not a
/// space, and no control characters.
const TEXT_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

fn text_schema(max: usize) -> RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max))
        .pattern(Some(TEXT_PATTERN))
        .description(Some(
            "Not all spaces, no control characters; surrounding spaces are trimmed when stored.",
        ))
        .into()
}

/// A name, city or country: 1 to `MAX_TEXT_CHARS` characters as sent.
pub(super) struct Text;

impl utoipa::PartialSchema for Text {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        text_schema(crate::domain::airport::MAX_TEXT_CHARS)
    }
}

impl ToSchema for Text {}

/// An aircraft model: 1 to `MAX_MODEL_CHARS` characters as sent.
pub(super) struct ModelText;

impl utoipa::PartialSchema for ModelText {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        text_schema(crate::domain::airport::MAX_MODEL_CHARS)
    }
}

impl ToSchema for ModelText {}

/// A seat name as text: a row from 1 to `MAX_ROW` (999) and an uppercase letter, e.g. `12A`.
pub(super) struct SeatNameText;

impl utoipa::PartialSchema for SeatNameText {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^[1-9][0-9]{0,2}[A-Z]$"))
            .examples([serde_json::json!("12A")])
            .into()
    }
}

impl ToSchema for SeatNameText {}

/// How search results are ordered: cheapest fare, earliest departure or shortest flight first.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(super) enum SortOrder {
    Price,
    Departure,
    Duration,
}

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
