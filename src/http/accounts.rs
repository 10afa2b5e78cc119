//! `/api/v1/auth/*` and `/api/v1/users/{id}/roles`.

use super::auth::{caller, with_role};
use super::error::ApiError;
use super::{Ctx, Handled, Response, body, json, with};
use crate::actors::accounts::AccountError;
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
pub(super) struct SignupRequest {
    email: String,
    /// At least 8 characters.
    password: String,
    name: String,
}

/// Body of `POST /api/v1/auth/signin`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SigninRequest {
    email: String,
    password: String,
}

/// Body of `PUT /api/v1/users/{id}/roles`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RolesRequest {
    roles: Vec<Role>,
}

/// A user as the API shows it (never the password hash).
#[derive(Serialize, ToSchema)]
pub(super) struct UserView {
    id: String,
    email: String,
    name: String,
    roles: Vec<Role>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            name: u.name.clone(),
            roles: u.roles.iter().copied().collect(),
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
        .and(with(ctx))
        .and(body::json())
        .and_then(set_roles);
    signup.or(signin).unify().or(me).unify().or(roles).unify()
}

/// The client's address (unspecified when the transport has none).
fn client_address() -> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::addr::remote().map(|addr: Option<std::net::SocketAddr>| {
        addr.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
    })
}

/// Create an account; every signup is a customer.
#[utoipa::path(post, path = "/api/v1/auth/signup", operation_id = "signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = UserView), (status = 400), (status = 409, description = "email_taken")))]
async fn signup(ctx: Ctx, req: SignupRequest) -> Handled {
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
    Ok(json(StatusCode::CREATED, &UserView::from(&user)))
}

/// Exchange credentials for a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/signin", operation_id = "signin", tag = "auth", request_body = SigninRequest,
    responses((status = 200, body = TokenView), (status = 401), (status = 429), (status = 503)))]
async fn signin(ctx: Ctx, address: IpAddr, req: SigninRequest) -> Handled {
    ctx.limits.check_signin(address, &req.email)?;
    let user = match ctx.services.accounts.verify(&req.email, req.password).await {
        Ok(user) => user,
        Err(e @ AccountError::BadCredentials) => {
            ctx.limits.signin_failed(address, &req.email);
            return Err(ApiError::from(e).into());
        }
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let token = TokenView {
        token: ctx.tokens.issue(&user)?,
        token_type: "Bearer",
        expires_in: ctx.tokens.ttl_secs(),
    };
    Ok(json(StatusCode::OK, &token))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401)))]
#[allow(dead_code)]
fn me() {}

/// Replace a user's roles (admin only).
#[utoipa::path(put, path = "/api/v1/users/{id}/roles", operation_id = "set_roles", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RolesRequest,
    responses((status = 200, body = UserView), (status = 403), (status = 404)))]
async fn set_roles(id: String, _admin: User, ctx: Ctx, req: RolesRequest) -> Handled {
    let id = UserId::parse(&id).ok_or(ApiError::NotFound)?;
    let roles = parse_roles(req.roles).map_err(ApiError::from)?;
    let user = ctx
        .services
        .accounts
        .set_roles(id, roles)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user = %user.id, roles = ?user.roles, "roles changed");
    Ok(json(StatusCode::OK, &UserView::from(&user)))
}
