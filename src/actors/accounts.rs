//! Accounts: the AccountsActor (single writer of users and the email index, so an email is
//! taken at most once) and the [`Accounts`] handle the HTTP layer calls.
//!
//! Password hashing (argon2id, default parameters, a random salt per user) is deliberately
//! slow, so it runs on the blocking pool before the actor is asked, never inside its mailbox.

use super::root::Slot;
use super::router::{RouterRef, operation};
use super::stateless::Stateless;
use super::{CallError, answer};
use crate::domain::ValidationError;
use crate::domain::flight::Carrier;
use crate::domain::ids::UserId;
use crate::domain::user::{Email, Password, Role, User, UserV1};
use crate::persistence::{Durable, Store, StoreError, WriteBatch, keys};
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::Utc;
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Why an account operation failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum AccountError {
    /// The email belongs to another account.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// Unknown email or wrong password (deliberately not saying which).
    #[error("invalid email or password")]
    BadCredentials,
    /// The request broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The accounts actor did not answer.
    #[error(transparent)]
    Unavailable(#[from] CallError),
    /// Too many signins and signups are waiting for a password-hashing slot.
    #[error("too many sign-ins are being checked right now; retry")]
    Busy,
    /// Hashing failed (should not happen with valid parameters).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

type Reply<T> = RpcReplyPort<Result<T, AccountError>>;

/// A change to an existing account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AccountChange {
    /// New roles, and the carrier an airline account manages flights of.
    Roles {
        /// The roles.
        roles: BTreeSet<Role>,
        /// The carrier (kept only with the airline role).
        carrier: Option<Carrier>,
    },
    /// A new password hash; tokens issued before now stop working.
    Password(String),
    /// Disabled (neither sign-in nor any token works) or enabled again.
    Disabled(bool),
    /// The configured first admin: the admin role and the configured password (earlier
    /// tokens of the account stop working: it may have been someone else's).
    Admin(String),
}

impl AccountChange {
    fn apply(self, user: &mut User) {
        match self {
            AccountChange::Roles { roles, carrier } => {
                user.carrier = carrier.filter(|_| roles.contains(&Role::Airline));
                user.roles = roles;
            }
            AccountChange::Password(hash) => {
                user.password_hash = hash;
                user.tokens_not_before = Utc::now().timestamp_millis();
            }
            AccountChange::Disabled(disabled) => user.disabled = disabled,
            AccountChange::Admin(hash) => {
                user.roles.insert(Role::Admin);
                user.password_hash = hash;
                user.disabled = false;
                user.tokens_not_before = Utc::now().timestamp_millis();
            }
        }
    }
}

/// Reads a user record, upgrading one stored by an earlier release.
fn read_user(store: &Store, id: &UserId) -> Result<Option<User>, StoreError> {
    let key = keys::user(id);
    match store.get::<User>(&key) {
        Err(StoreError::Corrupt { .. }) => Ok(store.get::<UserV1>(&key)?.map(User::from)),
        read => read,
    }
}

/// Messages the accounts actor handles.
pub enum AccountsMessage {
    /// Store a new user unless the email is taken.
    Create(User, Reply<User>),
    /// Change an account.
    Change(UserId, AccountChange, Reply<User>),
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for AccountsMessage {}

/// The actor.
#[derive(Clone)]
pub struct AccountsActor {
    /// The node's store.
    pub store: Store,
}

impl AccountsActor {
    /// Writes the user unless the email is taken (checked and written atomically).
    async fn create(&self, user: User) -> Result<(Durable, User), AccountError> {
        let mut batch = WriteBatch::new();
        batch.put(&keys::user(&user.id), &user)?;
        match self
            .store
            .commit_if_absent(&keys::email(&user.email), &user.id, batch)
            .await?
        {
            Ok(durable) => Ok((durable, user)),
            Err(_) => Err(AccountError::EmailTaken),
        }
    }

    /// Applies `change` to a stored user.
    async fn update(
        &self,
        id: &UserId,
        change: AccountChange,
    ) -> Result<(Durable, User), AccountError> {
        // This actor's previous update may not have reached the engine yet: read after it.
        self.store.caught_up().await?;
        let mut user = read_user(&self.store, id)?.ok_or(AccountError::NotFound)?;
        change.apply(&mut user);
        let mut batch = WriteBatch::new();
        batch.put(&keys::user(id), &user)?;
        Ok((self.store.commit(batch)?, user))
    }
}

impl Stateless for AccountsActor {
    type Msg = AccountsMessage;

    async fn handle(&self, message: AccountsMessage) {
        match message {
            AccountsMessage::InjectPanic => panic!("injected fault in the accounts actor"),
            AccountsMessage::Create(user, reply) => answer(self.create(user).await, reply),
            AccountsMessage::Change(id, change, reply) => {
                answer(self.update(&id, change).await, reply)
            }
        }
    }
}

/// What the HTTP layer uses for users.
#[derive(Clone)]
pub struct Accounts {
    actor: Slot<AccountsMessage>,
    store: Store,
    timeout: Duration,
    router: RouterRef,
    /// A hash of nothing, verified against when the email is unknown so that a miss takes as
    /// long as a wrong password (no user enumeration by timing).
    decoy_hash: Arc<String>,
    hasher: Hasher,
}

/// Password hashing, bounded twice: one hash per CPU at a time (argon2 is CPU-bound by design;
/// unbounded, a burst fills the blocking pool with threads that starve the async workers), and
/// at most `queue` more waiting. Beyond that a signin or signup is refused at once
/// ([`AccountError::Busy`], 503 + Retry-After) instead of queueing without bound: a flood of
/// bad signins must not make everyone else's wait for seconds.
#[derive(Clone)]
struct Hasher {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl Hasher {
    fn new(queue: usize) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            running: Arc::new(Semaphore::new(cpus)),
            admitted: Arc::new(Semaphore::new(cpus.saturating_add(queue))),
        }
    }

    /// Runs a hashing job on the blocking pool when a CPU slot is free.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let _admitted = self
            .admitted
            .try_acquire()
            .map_err(|_| AccountError::Busy)?;
        let _running = self
            .running
            .acquire()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))
    }

    async fn hash(&self, password: Password) -> Result<String, AccountError> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.expose())
                .map(|h: PasswordHash| h.to_string())
                .map_err(|e| AccountError::Hashing(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches the stored hash.
    async fn matches(&self, password: Vec<u8>, stored: String) -> Result<bool, AccountError> {
        self.run(move || {
            Argon2::default()
                .verify_password(&password, stored.as_str())
                .is_ok()
        })
        .await
    }
}

impl Accounts {
    /// A handle over the running actor; at most `hashing_queue` signins and signups wait for
    /// a hashing slot.
    pub async fn new(
        actor: Slot<AccountsMessage>,
        store: Store,
        timeout: Duration,
        router: RouterRef,
        hashing_queue: usize,
    ) -> Result<Self, AccountError> {
        let hasher = Hasher::new(hashing_queue);
        let decoy = hasher
            .hash(Password::parse("decoy-password-never-matches".into())?)
            .await?;
        Ok(Self {
            actor,
            store,
            timeout,
            router,
            decoy_hash: Arc::new(decoy),
            hasher,
        })
    }

    /// Creates an account with `roles`. The password is hashed here; the account is stored on
    /// the node that owns its email, which keeps the email unique cluster-wide.
    pub async fn create(
        &self,
        email: Email,
        password: Password,
        name: String,
        roles: BTreeSet<Role>,
    ) -> Result<User, AccountError> {
        let user = User {
            id: UserId::generate_in(&email.tag()),
            email,
            name,
            roles,
            password_hash: self.hasher.hash(password).await?,
            created_at: Utc::now(),
            disabled: false,
            tokens_not_before: 0,
            carrier: None,
        };
        self.router.call(CreateUser(user), self).await
    }

    /// The user with this email and password. The record comes from the email's owner; the
    /// password is verified here (it never crosses the cluster).
    pub async fn verify(&self, email: &str, password: String) -> Result<User, AccountError> {
        let user: Option<User> = match Email::parse(email.trim()) {
            Ok(email) => self.router.call(UserByEmail(email), self).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().map_or_else(
            || self.decoy_hash.as_str().to_owned(),
            |u| u.password_hash.clone(),
        );
        let matches = self.hasher.matches(password.into_bytes(), stored).await?;
        match user {
            Some(user) if matches => Ok(user),
            _ => Err(AccountError::BadCredentials),
        }
    }

    /// The user with this email, stored on this node.
    fn stored_by_email(&self, email: &Email) -> Result<Option<User>, AccountError> {
        Ok(match self.store.get::<UserId>(&keys::email(email))? {
            Some(id) => read_user(&self.store, &id)?,
            None => None,
        })
    }

    /// A user by id (from the user's node).
    pub async fn get(&self, id: &UserId) -> Result<Option<User>, AccountError> {
        self.router.call(GetUser(id.clone()), self).await
    }

    /// Changes an account (on the user's node).
    pub async fn change(&self, id: UserId, change: AccountChange) -> Result<User, AccountError> {
        self.router.call(ChangeAccount(id, change), self).await
    }

    /// Replaces the caller's password after checking the current one; every token issued
    /// before stops working.
    pub async fn change_password(
        &self,
        user: &User,
        current: String,
        new: Password,
    ) -> Result<User, AccountError> {
        let stored = user.password_hash.clone();
        if !self.hasher.matches(current.into_bytes(), stored).await? {
            return Err(AccountError::BadCredentials);
        }
        let hash = self.hasher.hash(new).await?;
        self.change(user.id.clone(), AccountChange::Password(hash))
            .await
    }

    /// Makes the configured first admin exist with the configured password and the admin role,
    /// if this node owns the admin's email (the owner does it from its own configuration, so
    /// every node of a cluster should carry the same `auth.admin_*`).
    ///
    /// The configuration is authoritative: if someone signed up with that email first, the
    /// account's password is reset to the configured one (so a squatter cannot become admin),
    /// and changing the password in the configuration takes effect at the next start.
    pub async fn ensure_admin(&self, email: &str, password: String) -> Result<(), AccountError> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        if !self.router.owns(&email.tag()) {
            return Ok(());
        }
        match self.stored_by_email(&email)? {
            None => {
                let roles = [Role::Admin].into_iter().collect();
                match self
                    .create(email, password, "Administrator".into(), roles)
                    .await
                {
                    Ok(user) => tracing::info!(user = %user.id, "created the first admin"),
                    // A recovery running beside this one created it (a replicated node
                    // activates its partitions side by side); the next one checks it.
                    Err(AccountError::EmailTaken) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(user) => {
                let id = user.id.clone();
                let stored = user.password_hash.clone();
                let plain = password.expose().to_vec();
                let same = self.hasher.matches(plain, stored).await?;
                if same && user.roles.contains(&Role::Admin) && !user.disabled {
                    return Ok(());
                }
                let hash = self.hasher.hash(password).await?;
                self.actor
                    .ask(
                        |port| {
                            AccountsMessage::Change(id.clone(), AccountChange::Admin(hash), port)
                        },
                        self.timeout,
                    )
                    .await??;
                tracing::warn!(user = %id, "the configured admin account was given the configured password and the admin role");
            }
        }
        Ok(())
    }
}

/// Store a new account (on the node that owns its email, which keeps the email unique).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateUser(pub User);
operation!(CreateUser => Result<User, AccountError>, by accounts: Accounts,
    tag |r| r.0.id.tag(),
    |r| accounts.actor.ask(|port| AccountsMessage::Create(r.0, port), accounts.timeout).await?);

/// The account with this email.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserByEmail(pub Email);
operation!(UserByEmail => Result<Option<User>, AccountError>, by accounts: Accounts,
    tag |r| r.0.tag(), |r| accounts.stored_by_email(&r.0));

/// The account with this id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetUser(pub UserId);
operation!(GetUser => Result<Option<User>, AccountError>, by accounts: Accounts,
    tag |r| r.0.tag(), |r| Ok(read_user(&accounts.store, &r.0)?));

/// Change an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeAccount(pub UserId, pub AccountChange);
operation!(ChangeAccount => Result<User, AccountError>, by accounts: Accounts,
    tag |r| r.0.tag(),
    |r| accounts.actor.ask(|port| AccountsMessage::Change(r.0, r.1, port), accounts.timeout).await?);

impl super::root::InjectPanic for AccountsMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}
