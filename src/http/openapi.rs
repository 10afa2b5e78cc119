//! The OpenAPI 3 document, generated from the handlers' annotations and the request and
//! response types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        super::cluster::view, super::cluster::drain, super::cluster::faults,
    ),
    modifiers(&BearerAuth)
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

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
