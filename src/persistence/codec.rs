//! Record encoding: one format byte, then postcard.
//!
//! postcard is a maintained, compact serde format (bincode's last release is a deliberate
//! compile error). The leading byte lets a later release change the encoding without guessing.

use super::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The encoding every record is written with: postcard.
const FORMAT_V1: u8 = 1;
/// Written by releases that fenced non-replicated clusters by epoch: 8 bytes of the cluster
/// epoch that wrote the record (little endian), then postcard. Still read; never written.
const FORMAT_V2: u8 = 2;
/// Bytes before the postcard body in a V2 record.
const V2_HEADER: usize = 1 + 8;

/// Encodes a record.
pub(super) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_V1);
    postcard::to_io(value, &mut out).map_err(|e| StoreError::Encode {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Decodes a record, naming the key when it is unreadable.
pub(super) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => postcard::from_bytes(body).map_err(|e| corrupt(e.to_string())),
        Some((&FORMAT_V2, _)) if bytes.len() >= V2_HEADER => {
            postcard::from_bytes(&bytes[V2_HEADER..]).map_err(|e| corrupt(e.to_string()))
        }
        Some((&FORMAT_V2, _)) => Err(corrupt("truncated record header".into())),
        Some((other, _)) => Err(corrupt(format!("unknown record format {other}"))),
        None => Err(corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_corruption_is_named() -> Result<(), StoreError> {
        let bytes = encode("k", &("hello", 42u32))?;
        assert_eq!(
            decode::<(String, u32)>("k", &bytes),
            Ok(("hello".into(), 42))
        );
        let err = decode::<(String, u32)>("k", &bytes[..4]);
        assert!(matches!(err, Err(StoreError::Corrupt { ref key, .. }) if key == "k"));
        assert!(decode::<u32>("k", &[FORMAT_V2, 1, 2]).is_err());
        assert!(decode::<u32>("k", &[9, 1]).is_err());
        assert!(decode::<u32>("k", &[]).is_err());
        Ok(())
    }

    proptest! {
        #[test]
        fn records_round_trip_and_epoch_stamped_ones_still_read(value: (String, u64, Vec<u8>), epoch: u64) {
            let bytes = encode("k", &value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decode::<(String, u64, Vec<u8>)>("k", &bytes).ok(), Some(value.clone()));
            // The same record as an older release stamped it.
            let mut v2 = vec![FORMAT_V2];
            v2.extend_from_slice(&epoch.to_le_bytes());
            v2.extend_from_slice(&bytes[1..]);
            prop_assert_eq!(decode::<(String, u64, Vec<u8>)>("k", &v2).ok(), Some(value));
        }
    }
}
