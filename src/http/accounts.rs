//! `/api/v1/auth/*` and `/api/v1/users/{id}/roles`.

use super::auth::{caller, with_role};
use super::error::ApiError;
use super::openapi::Text;
use super::{Ctx, Handled, Response, body, json, with};
use crate::actors::accounts::{AccountChange, AccountError};
use crate::domain::flight::Carrier;
use crate::domain::ids::UserId;
use crate::domain::user::{Email, Password, Role, User, parse_name, parse_roles};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// Body of `POST /api/v1/auth/signup`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada Lovelace"}))]
pub(super) struct SignupRequest {
    /// An address with one `@` and a dotted domain; stored lowercased.
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[^@.\s\x00-\x1f\x7f-\x9f]+(\.[^@.\s\x00-\x1f\x7f-\x9f]+)+$"
    )]
    pub(super) email: String,
    /// 10 to 256 characters, and not a common or easily guessed password (zxcvbn score 2 or
    /// more: a phrase of unrelated words passes, `password123` does not).
    #[schema(min_length = 10, max_length = 256)]
    pub(super) password: String,
    #[schema(value_type = Text)]
    pub(super) name: String,
}

/// Body of `POST /api/v1/auth/signin`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery"}))]
pub(super) struct SigninRequest {
    pub(super) email: String,
    pub(super) password: String,
}

/// Body of `PUT /api/v1/users/{id}/roles`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"roles": ["customer", "airline"], "carrier": "AI"}))]
pub(super) struct RolesRequest {
    #[schema(min_items = 1, max_items = 3)]
    roles: Vec<Role>,
    /// With the `airline` role (and only with it): the two-character IATA code of the airline
    /// whose flights the account manages, e.g. `AI`.
    #[serde(default)]
    #[schema(pattern = r"^([A-Z][A-Z0-9]|[0-9][A-Z])$")]
    carrier: Option<String>,
}

/// Body of `PUT /api/v1/users/{id}/disabled`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"disabled": true}))]
pub(super) struct DisabledRequest {
    disabled: bool,
}

/// Body of `POST /api/v1/auth/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "correct horse battery", "new_password": "staple orbit lantern"}))]
pub(super) struct PasswordRequest {
    current_password: String,
    /// The same rules as at sign-up: 10 to 256 characters, not a common password.
    #[schema(min_length = 10, max_length = 256)]
    new_password: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Serialize, ToSchema)]
pub(super) struct UserView {
    id: String,
    email: String,
    name: String,
    roles: Vec<Role>,
    /// The airline an `airline` account manages flights of.
    carrier: Option<String>,
    /// Disabled by an admin: no sign-in, no token works.
    disabled: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            name: u.name.clone(),
            roles: u.roles.iter().copied().collect(),
            carrier: u.carrier.as_ref().map(|c| c.as_str().to_owned()),
            disabled: u.disabled,
        }
    }
}

/// A signed-in session.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenView {
    token: String,
    token_type: &'static str,
    expires_in: u64,
}

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let signup = warp::path!("api" / "v1" / "auth" / "signup")
        .and(warp::post())
        .and(with(ctx.clone()))
        .and(body::json())
        .and_then(signup);
    let signin = warp::path!("api" / "v1" / "auth" / "signin")
        .and(warp::post())
        .and(with(ctx.clone()))
        .and(client_address())
        .and(body::json())
        .and_then(signin);
    let me = warp::path!("api" / "v1" / "auth" / "me")
        .and(warp::get())
        .and(caller(ctx.clone()))
        .map(|user: User| json(StatusCode::OK, &UserView::from(&user)));
    let roles = warp::path!("api" / "v1" / "users" / String / "roles")
        .and(warp::put())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx.clone()))
        .and(body::json())
        .and_then(set_roles);
    let disabled = warp::path!("api" / "v1" / "users" / String / "disabled")
        .and(warp::put())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx.clone()))
        .and(body::json())
        .and_then(set_disabled);
    let password = warp::path!("api" / "v1" / "auth" / "password")
        .and(warp::post())
        .and(caller(ctx.clone()))
        .and(with(ctx))
        .and(body::json())
        .and_then(change_password);
    signup
        .or(signin)
        .unify()
        .or(me)
        .unify()
        .or(roles)
        .unify()
        .or(disabled)
        .unify()
        .or(password)
        .unify()
}

/// The client's address (unspecified when the transport has none).
pub(super) fn client_address()
-> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::addr::remote().map(|addr: Option<std::net::SocketAddr>| {
        addr.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
    })
}

/// Create an account; every signup is a customer.
#[utoipa::path(post, path = "/api/v1/auth/signup", operation_id = "signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = UserView), (status = 400), (status = 409, description = "email_taken")))]
async fn signup(ctx: Ctx, req: SignupRequest) -> Handled {
    let user = create_account(&ctx, req).await?;
    Ok(json(StatusCode::CREATED, &UserView::from(&user)))
}

/// Opens a customer account.
pub(super) async fn create_account(ctx: &Ctx, req: SignupRequest) -> Result<User, ApiError> {
    let email = Email::parse(&req.email).map_err(ApiError::from)?;
    let password = Password::parse(req.password).map_err(ApiError::from)?;
    let name = parse_name(&req.name).map_err(ApiError::from)?;
    let roles = [Role::Customer].into_iter().collect();
    let user = ctx
        .services
        .accounts
        .create(email, password, name, roles)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user = %user.id, "signed up");
    Ok(user)
}

/// Exchange credentials for a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/signin", operation_id = "signin", tag = "auth", request_body = SigninRequest,
    responses((status = 200, body = TokenView), (status = 401), (status = 403, description = "account_disabled"), (status = 429), (status = 503)))]
async fn signin(ctx: Ctx, address: IpAddr, req: SigninRequest) -> Handled {
    let user = sign_in(&ctx, address, req).await?;
    Ok(json(StatusCode::OK, &session(&ctx, &user)?))
}

/// The account these credentials open, within the sign-in rate limits.
pub(super) async fn sign_in(
    ctx: &Ctx,
    address: IpAddr,
    req: SigninRequest,
) -> Result<User, ApiError> {
    ctx.limits.check_signin(address, &req.email)?;
    let user = match ctx.services.accounts.verify(&req.email, req.password).await {
        Ok(user) => user,
        Err(e @ AccountError::BadCredentials) => {
            ctx.limits.signin_failed(address, &req.email);
            return Err(ApiError::from(e));
        }
        Err(e) => return Err(ApiError::from(e)),
    };
    if user.disabled {
        return Err(ApiError::AccountDisabled);
    }
    Ok(user)
}

fn session(ctx: &Ctx, user: &User) -> Result<TokenView, ApiError> {
    Ok(TokenView {
        token: ctx.tokens.issue(user)?,
        token_type: "Bearer",
        expires_in: ctx.tokens.ttl_secs(),
    })
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401)))]
#[allow(dead_code)]
fn me() {}

/// Replace a user's roles (admin only); an airline account names its carrier.
#[utoipa::path(put, path = "/api/v1/users/{id}/roles", operation_id = "set_roles", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RolesRequest,
    responses((status = 200, body = UserView), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn set_roles(id: String, admin: User, ctx: Ctx, req: RolesRequest) -> Handled {
    let id = UserId::parse(&id).ok_or(ApiError::NotFound)?;
    let roles = parse_roles(req.roles).map_err(ApiError::from)?;
    if id == admin.id && !roles.contains(&Role::Admin) {
        // Another admin can do it; this way the last admin cannot lock everyone out.
        return Err(
            ApiError::Forbidden("an admin cannot take away their own admin role".into()).into(),
        );
    }
    let carrier = req
        .carrier
        .as_deref()
        .map(Carrier::parse)
        .transpose()
        .map_err(ApiError::from)?;
    if carrier.is_some() && !roles.contains(&Role::Airline) {
        return Err(
            ApiError::InvalidRequest("carrier: only an airline account has one".into()).into(),
        );
    }
    let user = ctx
        .services
        .accounts
        .change(id, AccountChange::Roles { roles, carrier })
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user = %user.id, roles = ?user.roles, carrier = ?user.carrier, "roles changed");
    Ok(json(StatusCode::OK, &UserView::from(&user)))
}

/// Disable an account (its tokens stop working at once) or enable it again (admin only).
#[utoipa::path(put, path = "/api/v1/users/{id}/disabled", operation_id = "set_disabled", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = DisabledRequest,
    responses((status = 200, body = UserView), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn set_disabled(id: String, admin: User, ctx: Ctx, req: DisabledRequest) -> Handled {
    let id = UserId::parse(&id).ok_or(ApiError::NotFound)?;
    if id == admin.id && req.disabled {
        return Err(ApiError::Forbidden("an admin cannot disable their own account".into()).into());
    }
    let user = ctx
        .services
        .accounts
        .change(id, AccountChange::Disabled(req.disabled))
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user = %user.id, by = %admin.id, disabled = user.disabled, "account status changed");
    Ok(json(StatusCode::OK, &UserView::from(&user)))
}

/// Change the caller's password; every token issued before stops working, and a new one is
/// returned.
#[utoipa::path(post, path = "/api/v1/auth/password", operation_id = "change_password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordRequest,
    responses((status = 200, body = TokenView), (status = 400), (status = 401), (status = 503)))]
async fn change_password(user: User, ctx: Ctx, req: PasswordRequest) -> Handled {
    let new = Password::parse(req.new_password).map_err(ApiError::from)?;
    let user = ctx
        .services
        .accounts
        .change_password(&user, req.current_password, new)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user = %user.id, "password changed");
    Ok(json(StatusCode::OK, &session(&ctx, &user)?))
}
