//! Record encoding: one format byte, the epoch that wrote the record, then postcard.
//!
//! postcard is a maintained, compact serde format (bincode's last release is a deliberate
//! compile error). The leading byte lets a later release change the encoding without guessing.
//! The epoch (8 bytes, little endian) is the cluster epoch under which the writing node owned
//! the record; the store stamps it when the record is committed (see [`super::Fence`]).

use super::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first encoding: postcard without an epoch (records written before epochs were stamped;
/// read as epoch 0).
const FORMAT_V1: u8 = 1;
/// The encoding every record is written with today: the epoch, then postcard.
const FORMAT_V2: u8 = 2;
/// Bytes before the postcard body in a V2 record.
const V2_HEADER: usize = 1 + 8;

/// Encodes a record (stamped with epoch 0 until the store commits it).
pub(super) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_V2);
    out.extend_from_slice(&0u64.to_le_bytes());
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

/// The epoch that wrote an encoded record (0 for records from before epochs, or unreadable).
pub(super) fn epoch_of(bytes: &[u8]) -> u64 {
    match bytes.get(..V2_HEADER) {
        Some([FORMAT_V2, epoch @ ..]) => {
            let mut le = [0u8; 8];
            le.copy_from_slice(epoch);
            u64::from_le_bytes(le)
        }
        _ => 0,
    }
}

/// Stamps an encoded record with the epoch that writes it (a V1 record gains the V2 header;
/// anything unreadable is left as it is, for `decode` to report).
pub(super) fn stamp(bytes: &mut Vec<u8>, epoch: u64) {
    match bytes.first() {
        Some(&FORMAT_V2) if bytes.len() >= V2_HEADER => {
            bytes[1..V2_HEADER].copy_from_slice(&epoch.to_le_bytes());
        }
        Some(&FORMAT_V1) => {
            let mut header = Vec::with_capacity(V2_HEADER);
            header.push(FORMAT_V2);
            header.extend_from_slice(&epoch.to_le_bytes());
            bytes.splice(..1, header);
        }
        _ => {}
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
        let err = decode::<(String, u32)>("k", &bytes[..V2_HEADER + 3]);
        assert!(matches!(err, Err(StoreError::Corrupt { ref key, .. }) if key == "k"));
        assert!(decode::<u32>("k", &bytes[..4]).is_err());
        assert!(decode::<u32>("k", &[9, 1]).is_err());
        assert!(decode::<u32>("k", &[]).is_err());
        Ok(())
    }

    #[test]
    fn records_from_before_epochs_read_as_epoch_zero_and_can_be_stamped() -> Result<(), StoreError>
    {
        let mut v1 = vec![FORMAT_V1];
        v1.extend(postcard::to_allocvec(&7u32).map_err(|e| StoreError::Io(e.to_string()))?);
        assert_eq!((decode::<u32>("k", &v1)?, epoch_of(&v1)), (7, 0));
        stamp(&mut v1, 5);
        assert_eq!((decode::<u32>("k", &v1)?, epoch_of(&v1)), (7, 5));
        let mut junk = vec![9, 9];
        stamp(&mut junk, 3);
        assert_eq!((junk, epoch_of(&[])), (vec![9, 9], 0));
        Ok(())
    }

    proptest! {
        #[test]
        fn stamping_keeps_the_value_and_records_the_epoch(value: (String, u64, Vec<u8>), epoch: u64, again: u64) {
            let mut bytes = encode("k", &value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(epoch_of(&bytes), 0);
            stamp(&mut bytes, epoch);
            prop_assert_eq!(epoch_of(&bytes), epoch);
            stamp(&mut bytes, again);
            prop_assert_eq!(epoch_of(&bytes), again);
            prop_assert_eq!(decode::<(String, u64, Vec<u8>)>("k", &bytes).ok(), Some(value));
        }
    }
}
