//! Request bodies: JSON only, at most 64 KiB (also when sent chunked), unknown fields rejected
//! by the request types themselves (`#[serde(deny_unknown_fields)]`).

use super::error::ApiError;
use bytes::{Buf, BufMut, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Extracts a JSON body of type `T`.
pub fn json<T>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone
where
    T: DeserializeOwned + Send + 'static,
{
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(parse::<T, _, _>)
}

async fn parse<T, S, B>(
    content_type: Option<String>,
    length: Option<u64>,
    body: S,
) -> Result<T, Rejection>
where
    T: DeserializeOwned,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let is_json = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType.into());
    }
    if length.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES).into());
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::InvalidRequest(format!("could not read the body: {e}")))?;
        if buf.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES).into());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.put_slice(part);
            chunk.advance(n);
        }
    }
    let mut de = serde_json::Deserializer::from_slice(&buf);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let message = if field == "." {
            format!("invalid JSON body: {}", e.inner())
        } else {
            format!("{field}: {}", e.inner())
        };
        Rejection::from(ApiError::InvalidRequest(message))
    })?;
    de.end()
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    Ok(value)
}
