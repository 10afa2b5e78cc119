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
    let buf = collect(length, body, MAX_BODY_BYTES).await?;
    match decode(&buf) {
        Ok(value) => Ok(value),
        // JSON does not tell `5` from `5.0` (JSON Schema's `integer` accepts both), and some
        // clients write every number as a float: retry with whole floats made integers. Only
        // bodies that failed pay for it.
        Err(first) => match whole_numbers(&buf) {
            Some(normalized) => decode(&normalized).map_err(|_| first),
            None => Err(first),
        },
    }
    .map_err(Rejection::from)
}

/// A whole body of at most `max` bytes, whether its length is declared or it comes chunked.
pub(super) async fn collect<S, B>(
    length: Option<u64>,
    body: S,
    max: usize,
) -> Result<BytesMut, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if length.is_some_and(|n| n > max as u64) {
        return Err(ApiError::PayloadTooLarge(max));
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::InvalidRequest(format!("could not read the body: {e}")))?;
        if buf.len() + chunk.remaining() > max {
            return Err(ApiError::PayloadTooLarge(max));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.put_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf)
}

fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(buf);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let message = if field == "." {
            format!("invalid JSON body: {}", e.inner())
        } else {
            format!("{field}: {}", e.inner())
        };
        ApiError::InvalidRequest(message)
    })?;
    de.end()
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// The body re-encoded with every float that is a whole number in `i64` range written as an
/// integer; `None` when it is not JSON or has no such float.
fn whole_numbers(buf: &[u8]) -> Option<Vec<u8>> {
    fn walk(value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // 2^63 is exactly representable; anything below it with no fraction fits.
                if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
                    *value = Value::from(f as i64);
                    return true;
                }
                false
            }
            Value::Array(items) => items.iter_mut().fold(false, |changed, v| walk(v) | changed),
            Value::Object(fields) => fields
                .values_mut()
                .fold(false, |changed, v| walk(v) | changed),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(buf).ok()?;
    walk(&mut value)
        .then(|| serde_json::to_vec(&value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::whole_numbers;

    #[test]
    fn whole_floats_become_integers_and_nothing_else_changes() {
        let out = whole_numbers(br#"{"a": 973.0, "b": [1.5, -2.0], "c": "7.0", "d": 1e3}"#)
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        let want = serde_json::json!({"a": 973, "b": [1.5, -2], "c": "7.0", "d": 1000});
        assert_eq!(out, Some(want));
        assert!(
            whole_numbers(br#"{"a": 1, "b": 2.5}"#).is_none(),
            "nothing to change"
        );
        assert!(
            whole_numbers(br#"{"a": 1e30}"#).is_none(),
            "out of range stays a float"
        );
        assert!(whole_numbers(b"not json").is_none());
    }
}
