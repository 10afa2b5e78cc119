//! Record encoding: one format byte, then postcard.
//!
//! postcard is a maintained, compact serde format (bincode's last release is a deliberate
//! compile error). The leading byte lets a later release change the encoding without guessing.

use super::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The encoding every record is written with today.
const FORMAT_V1: u8 = 1;

/// Encodes a record.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    postcard::to_io(value, &mut out).map_err(|e| StoreError::Encode {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Decodes a record, naming the key when it is unreadable.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => postcard::from_bytes(body).map_err(|e| corrupt(e.to_string())),
        Some((other, _)) => Err(corrupt(format!("unknown record format {other}"))),
        None => Err(corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_named() -> Result<(), StoreError> {
        let bytes = encode("k", &("hello", 42u32))?;
        assert_eq!(
            decode::<(String, u32)>("k", &bytes),
            Ok(("hello".into(), 42))
        );
        let err = decode::<(String, u32)>("k", &bytes[..3]);
        assert!(matches!(err, Err(StoreError::Corrupt { ref key, .. }) if key == "k"));
        assert!(decode::<u32>("k", &[9, 1]).is_err());
        assert!(decode::<u32>("k", &[]).is_err());
        Ok(())
    }
}
