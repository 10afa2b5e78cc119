//! Airports and their IATA codes.

use super::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A three-letter uppercase IATA airport code such as `DEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AirportCode([u8; 3]);

impl AirportCode {
    /// Sorts before every real code; a lower bound for range scans.
    pub(crate) const MIN: Self = Self([0; 3]);

    /// Parses a code; only exactly three ASCII uppercase letters are accepted.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(ValidationError::new(
                "code",
                "must be exactly 3 uppercase letters (IATA code)",
            )),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // ok: the bytes are ASCII uppercase letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for AirportCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for AirportCode {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AirportCode> for String {
    fn from(code: AirportCode) -> Self {
        code.as_str().to_owned()
    }
}

/// An airport in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Airport {
    /// Unique IATA code.
    pub code: AirportCode,
    /// Display name.
    pub name: String,
    /// City served.
    pub city: String,
    /// Country.
    pub country: String,
}

impl Airport {
    /// Validates the parts of a new airport.
    pub fn new(code: &str, name: &str, city: &str, country: &str) -> Result<Self, ValidationError> {
        Ok(Self {
            code: AirportCode::parse(code)?,
            name: text("name", name, MAX_TEXT_CHARS)?,
            city: text("city", city, MAX_TEXT_CHARS)?,
            country: text("country", country, MAX_TEXT_CHARS)?,
        })
    }
}

/// The longest name, city or country accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 100;
/// The longest aircraft model accepted, in characters.
pub const MAX_MODEL_CHARS: usize = 50;

/// A non-empty piece of text of at most `max` characters, without control characters,
/// returned trimmed. The limits apply to the text as sent (surrounding spaces included), so
/// that they are exactly what the OpenAPI document's `maxLength` and pattern say.
pub fn text(field: &str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if raw.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_three_uppercase_letters() {
        assert!(AirportCode::parse("DEL").is_ok());
        for bad in ["del", "DE", "DELH", "D3L", "", "ÄBC"] {
            assert!(AirportCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("name", "  Indira  ", 10).as_deref(), Ok("Indira"));
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
        // The limits hold for the text as sent, as the API description's maxLength says.
        assert!(text("name", " abcdefghij", 10).is_err());
        assert!(text("name", "ab\ncd", 10).is_err());
        assert!(
            text("name", "abcd\t", 10).is_err(),
            "a control character, even at the end"
        );
    }
}
