//! Aircraft types and their cabin layouts: which rows and seat letters belong to which cabin.

use super::ValidationError;
use super::ids::AircraftId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The highest row number a layout may use.
pub const MAX_ROW: u16 = 999;
/// The most seats one aircraft may have (an A380 has 853).
pub const MAX_CAPACITY: usize = 1_000;

/// A travel class. Ordered from the front of the aircraft.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Cabin {
    /// First class.
    First,
    /// Business class.
    Business,
    /// Premium economy.
    PremiumEconomy,
    /// Economy.
    Economy,
}

impl Cabin {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Cabin::First => "first",
            Cabin::Business => "business",
            Cabin::PremiumEconomy => "premium_economy",
            Cabin::Economy => "economy",
        }
    }
}

impl FromStr for Cabin {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "first" => Ok(Cabin::First),
            "business" => Ok(Cabin::Business),
            "premium_economy" => Ok(Cabin::PremiumEconomy),
            "economy" => Ok(Cabin::Economy),
            _ => Err(ValidationError::new(
                "cabin",
                "must be one of first, business, premium_economy, economy",
            )),
        }
    }
}

/// A seat name: row number and letter, written `12A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SeatName {
    /// Row number, from 1.
    pub row: u16,
    /// Seat letter, `A`..=`Z`.
    pub letter: char,
}

impl SeatName {
    /// Parses `12A`: a row of 1..=999 without leading zeros, then one uppercase letter.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("seats", format!("'{raw}' is not a seat name like 12A"));
        let (split, letter) = raw.char_indices().last().ok_or_else(bad)?;
        if !letter.is_ascii_uppercase() {
            return Err(bad());
        }
        let digits = &raw[..split];
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let row: u16 = digits.parse().map_err(|_| bad())?;
        if row > MAX_ROW {
            return Err(bad());
        }
        Ok(Self { row, letter })
    }
}

impl fmt::Display for SeatName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.row, self.letter)
    }
}

impl TryFrom<String> for SeatName {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SeatName> for String {
    fn from(seat: SeatName) -> Self {
        seat.to_string()
    }
}

/// One cabin of a layout: an inclusive row range and the seat letters in every row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CabinLayout {
    /// The class of these seats.
    pub cabin: Cabin,
    /// First row of the cabin.
    pub first_row: u16,
    /// Last row of the cabin (inclusive).
    pub last_row: u16,
    /// Seat letters in each row, left to right.
    pub letters: Vec<char>,
}

impl CabinLayout {
    /// Number of seats in this cabin.
    pub fn capacity(&self) -> usize {
        usize::from(self.last_row - self.first_row + 1) * self.letters.len()
    }

    /// Every seat of the cabin, row by row.
    pub fn seats(&self) -> impl Iterator<Item = SeatName> + '_ {
        (self.first_row..=self.last_row).flat_map(move |row| {
            self.letters
                .iter()
                .map(move |&letter| SeatName { row, letter })
        })
    }
}

/// A validated seat layout: cabins whose rows do not overlap, at most [`MAX_CAPACITY`] seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    cabins: Vec<CabinLayout>,
}

impl Layout {
    /// Validates cabins given as (cabin, [first_row, last_row], letters).
    pub fn new(cabins: Vec<(Cabin, [u16; 2], String)>) -> Result<Self, ValidationError> {
        if cabins.is_empty() {
            return Err(ValidationError::new(
                "cabins",
                "at least one cabin is required",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut parsed: Vec<CabinLayout> = Vec::with_capacity(cabins.len());
        for (i, (cabin, [first_row, last_row], letters)) in cabins.into_iter().enumerate() {
            let field = |f: &str| format!("cabins[{i}].{f}");
            if !seen.insert(cabin) {
                return Err(ValidationError::new(
                    field("cabin"),
                    "each cabin may appear once",
                ));
            }
            if first_row == 0 || first_row > last_row || last_row > MAX_ROW {
                return Err(ValidationError::new(
                    field("rows"),
                    format!("must be [first, last] with 1 <= first <= last <= {MAX_ROW}"),
                ));
            }
            let letters: Vec<char> = letters.chars().collect();
            let unique: BTreeSet<char> = letters.iter().copied().collect();
            if letters.is_empty()
                || letters.len() > 12
                || unique.len() != letters.len()
                || !letters.iter().all(char::is_ascii_uppercase)
            {
                return Err(ValidationError::new(
                    field("seats"),
                    "must be 1 to 12 distinct uppercase letters, e.g. ABCDEF",
                ));
            }
            if let Some(other) = parsed
                .iter()
                .find(|c| first_row <= c.last_row && c.first_row <= last_row)
            {
                return Err(ValidationError::new(
                    field("rows"),
                    format!("overlap the rows of the {} cabin", other.cabin.as_str()),
                ));
            }
            parsed.push(CabinLayout {
                cabin,
                first_row,
                last_row,
                letters,
            });
        }
        parsed.sort_by_key(|c| c.first_row);
        let layout = Self { cabins: parsed };
        if layout.capacity() > MAX_CAPACITY {
            return Err(ValidationError::new(
                "cabins",
                format!("at most {MAX_CAPACITY} seats per aircraft"),
            ));
        }
        Ok(layout)
    }

    /// The cabins, front to back.
    pub fn cabins(&self) -> &[CabinLayout] {
        &self.cabins
    }

    /// Total number of seats.
    pub fn capacity(&self) -> usize {
        self.cabins.iter().map(CabinLayout::capacity).sum()
    }

    /// The cabin a seat belongs to, if the seat exists in this layout.
    pub fn cabin_of(&self, seat: SeatName) -> Option<Cabin> {
        self.cabins
            .iter()
            .find(|c| {
                (c.first_row..=c.last_row).contains(&seat.row) && c.letters.contains(&seat.letter)
            })
            .map(|c| c.cabin)
    }
}

/// An aircraft type in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aircraft {
    /// Its id.
    pub id: AircraftId,
    /// Model name, e.g. `A320`.
    pub model: String,
    /// Its seats.
    pub layout: Layout,
}

impl Aircraft {
    /// Validates a new aircraft type.
    pub fn new(
        model: &str,
        cabins: Vec<(Cabin, [u16; 2], String)>,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            id: AircraftId::generate(),
            model: super::airport::text("model", model, super::airport::MAX_MODEL_CHARS)?,
            layout: Layout::new(cabins)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a320() -> Layout {
        Layout::new(vec![
            (Cabin::Business, [1, 4], "ACDF".into()),
            (Cabin::Economy, [5, 30], "ABCDEF".into()),
        ])
        .expect("valid layout")
    }

    #[test]
    fn capacity_counts_rows_times_letters() {
        assert_eq!(a320().capacity(), 16 + 26 * 6);
    }

    #[test]
    fn seat_names_round_trip() {
        for s in ["1A", "12B", "999Z"] {
            assert_eq!(SeatName::parse(s).map(|x| x.to_string()).as_deref(), Ok(s));
        }
        for bad in [
            "", "A", "12", "012A", "12a", "1000A", "-1A", "1AA", "12é", "é",
        ] {
            assert!(SeatName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cabin_of_finds_the_right_cabin() {
        let l = a320();
        assert_eq!(
            l.cabin_of(SeatName::parse("2C").expect("seat")),
            Some(Cabin::Business)
        );
        assert_eq!(l.cabin_of(SeatName::parse("2B").expect("seat")), None);
        assert_eq!(
            l.cabin_of(SeatName::parse("30F").expect("seat")),
            Some(Cabin::Economy)
        );
        assert_eq!(l.cabin_of(SeatName::parse("31A").expect("seat")), None);
    }

    #[test]
    fn invalid_layouts_are_rejected() {
        let cases = vec![
            vec![],
            vec![(Cabin::Economy, [0, 3], "AB".to_string())],
            vec![(Cabin::Economy, [5, 3], "AB".to_string())],
            vec![(Cabin::Economy, [1, 3], "AA".to_string())],
            vec![(Cabin::Economy, [1, 3], "ab".to_string())],
            vec![(Cabin::Economy, [1, 3], String::new())],
            vec![
                (Cabin::Economy, [1, 3], "A".into()),
                (Cabin::Business, [3, 4], "A".into()),
            ],
            vec![
                (Cabin::Economy, [1, 3], "A".into()),
                (Cabin::Economy, [4, 5], "A".into()),
            ],
            vec![(Cabin::Economy, [1, 999], "ABCDEFGHJK".into())],
        ];
        for cabins in cases {
            assert!(Layout::new(cabins.clone()).is_err(), "{cabins:?}");
        }
    }
}
