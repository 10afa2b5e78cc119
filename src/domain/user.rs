//! Users, their roles, and the rules for emails, names and passwords.

use super::ValidationError;
use super::airport::text;
use super::flight::{Carrier, FlightNumber};
use super::ids::UserId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Lowest zxcvbn score accepted (0 "too guessable" … 4 "very unguessable"): 2 refuses common
/// passwords, keyboard walks, repeats and dictionary words with obvious decorations.
pub const MIN_PASSWORD_SCORE: u8 = 2;
/// Longest password accepted, in characters, so hashing cost stays bounded.
pub const MAX_PASSWORD_LEN: usize = 256;

/// What a user may do.
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
pub enum Role {
    /// Books and manages their own orders (every signup).
    Customer,
    /// Manages the catalog: airports, aircraft, flights.
    Airline,
    /// Everything, including roles.
    Admin,
}

/// A normalized (trimmed, lowercased) email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Parses an address: one `@`, a local part of 1 to 64 characters, a dotted domain, at
    /// most 254 characters, no spaces or control characters (`EMAIL_PATTERN` in the API
    /// description says the same); stored lowercased.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("email", "must be an email address like ada@example.com");
        let (local, domain) = raw.split_once('@').ok_or_else(bad)?;
        let label_ok = |label: &str| !label.is_empty();
        let domain_ok = domain.contains('.') && domain.split('.').all(label_ok);
        if local.is_empty()
            || local.chars().count() > 64
            || raw.chars().count() > 254
            || !domain_ok
            || domain.contains('@')
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        Ok(Self(raw.to_lowercase()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The placement tag of the account with this address (see `domain::ids`).
    pub fn tag(&self) -> String {
        crate::domain::ids::tag_for(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that met the length rules; never printed.
pub struct Password(String);

impl Password {
    /// Checks the length rules, and that the password is not a common or easily guessed one
    /// (zxcvbn, a maintained estimator with lists of common passwords, words and names).
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        let n = raw.chars().count();
        if n < MIN_PASSWORD_LEN {
            return Err(ValidationError::new(
                "password",
                format!("must be at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        if n > MAX_PASSWORD_LEN {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {MAX_PASSWORD_LEN} characters"),
            ));
        }
        let score = u8::from(zxcvbn::zxcvbn(&raw, &[]).score());
        if score < MIN_PASSWORD_SCORE {
            return Err(ValidationError::new(
                "password",
                "is too common or too easy to guess; use a longer phrase of unrelated words",
            ));
        }
        Ok(Self(raw))
    }

    /// The password's bytes, for hashing.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A person's display name.
pub fn parse_name(raw: &str) -> Result<String, ValidationError> {
    text("name", raw, super::airport::MAX_TEXT_CHARS)
}

/// A non-empty set of roles.
pub fn parse_roles(roles: Vec<Role>) -> Result<BTreeSet<Role>, ValidationError> {
    let set: BTreeSet<Role> = roles.into_iter().collect();
    if set.is_empty() {
        return Err(ValidationError::new(
            "roles",
            "at least one role is required",
        ));
    }
    Ok(set)
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id (the token subject).
    pub id: UserId,
    /// Unique, normalized email.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Current roles; checked on every request, so changes take effect at once.
    pub roles: BTreeSet<Role>,
    /// argon2id PHC string (algorithm, parameters, per-user salt, hash).
    pub password_hash: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Set by an admin: the account can neither sign in nor use a token it already holds.
    pub disabled: bool,
    /// Tokens issued before this are refused; moved forward when the password changes. In
    /// milliseconds since the epoch (records written before held seconds: read it through
    /// [`User::tokens_not_before_ms`]).
    pub tokens_not_before: i64,
    /// An airline account's carrier: it manages the flights whose number starts with it.
    pub carrier: Option<Carrier>,
}

impl User {
    /// [`User::tokens_not_before`] in milliseconds. Records written before it moved to
    /// milliseconds hold seconds: any value below 10^11 (the year 5138 in seconds, March 1973
    /// in milliseconds) is seconds.
    pub fn tokens_not_before_ms(&self) -> i64 {
        if self.tokens_not_before < 100_000_000_000 {
            self.tokens_not_before.saturating_mul(1000)
        } else {
            self.tokens_not_before
        }
    }

    /// Whether the user has `role`, or is an admin (who may do everything).
    pub fn may(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// Whether the user may create or cancel the flight numbered `number`: an admin may
    /// manage every flight, an airline account only its own carrier's.
    pub fn manages(&self, number: &FlightNumber) -> bool {
        self.roles.contains(&Role::Admin)
            || (self.roles.contains(&Role::Airline)
                && self
                    .carrier
                    .as_ref()
                    .is_some_and(|c| c.as_str() == number.carrier()))
    }
}

/// A user record as releases before accounts could be disabled or tied to a carrier stored
/// it; read and upgraded (postcard records carry no field names, so the shape is versioned by
/// type).
#[derive(Debug, Deserialize)]
pub struct UserV1 {
    id: UserId,
    email: Email,
    name: String,
    roles: BTreeSet<Role>,
    password_hash: String,
    created_at: DateTime<Utc>,
}

impl From<UserV1> for User {
    fn from(old: UserV1) -> Self {
        Self {
            id: old.id,
            email: old.email,
            name: old.name,
            roles: old.roles,
            password_hash: old.password_hash,
            created_at: old.created_at,
            disabled: false,
            tokens_not_before: 0,
            carrier: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            Email::parse("Ada@Example.COM").map(|e| e.0),
            Ok("ada@example.com".into())
        );
        let longest_local = format!("{}@x.io", "a".repeat(64));
        assert!(Email::parse(&longest_local).is_ok());
        // Exactly what the API description's pattern says: no surrounding spaces either.
        for bad in [
            "",
            "ada",
            "@x.io",
            "ada@",
            "ada@io",
            "ada@.io",
            "a b@x.io",
            "a@x..io",
            "a@b@x.io",
            " ada@x.io",
            "ada@x.io\n",
            "ada@x.io.",
            &format!("{}@x.io", "a".repeat(65)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revocation_times_in_seconds_and_in_milliseconds_both_read_as_milliseconds() {
        let mut user = User {
            id: UserId::generate(),
            email: Email::parse("ada@example.com").expect("email"),
            name: "Ada".into(),
            roles: BTreeSet::new(),
            password_hash: String::new(),
            created_at: Utc::now(),
            disabled: false,
            tokens_not_before: 1_764_522_000,
            carrier: None,
        };
        assert_eq!(user.tokens_not_before_ms(), 1_764_522_000_000);
        user.tokens_not_before = 1_764_522_000_123;
        assert_eq!(user.tokens_not_before_ms(), 1_764_522_000_123);
        user.tokens_not_before = 0;
        assert_eq!(user.tokens_not_before_ms(), 0);
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        let p = Password::parse("correct horse".into()).expect("long enough");
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn common_passwords_are_refused_even_when_long_enough() {
        for common in [
            "password1234",
            "1234567890",
            "qwertyuiop",
            "Password123!",
            "aaaaaaaaaaaa",
        ] {
            assert!(Password::parse(common.into()).is_err(), "{common}");
        }
        for fine in [
            "correct horse battery",
            "customer-password",
            "tangerine-otter-42",
        ] {
            assert!(Password::parse(fine.into()).is_ok(), "{fine}");
        }
        assert!(
            Password::parse("nine-char".into()).is_err(),
            "shorter than 10"
        );
    }

    #[test]
    fn roles_must_not_be_empty() {
        assert!(parse_roles(vec![]).is_err());
        assert_eq!(
            parse_roles(vec![Role::Airline, Role::Airline]).map(|r| r.len()),
            Ok(1)
        );
    }
}
