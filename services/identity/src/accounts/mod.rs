//! Account use cases: creating users, changing them, deactivating them, passwords.
//!
//! Credentials live with the configured provider: argon2id hashes in our own table
//! (built-in), or Keycloak through its Admin API. Every change that touches both Keycloak and
//! our tables does Keycloak first and undoes it if our write fails, so neither side keeps a
//! user the other does not know.
//!
//! This is the identity service's flow layer (routes -> flows -> domain, repo): accounts
//! here, and beside them signing in ([`login`]), issuing tokens ([`tokens`]), the first
//! admin ([`bootstrap`]), the Keycloak adapter ([`keycloak`]), the web app's sign-in
//! handoff ([`handoff`]) and SMART on FHIR's apps and authorization ([`smart`]).

pub(crate) mod bootstrap;
pub(crate) mod handoff;
pub(crate) mod keycloak;
pub(crate) mod login;
pub(crate) mod smart;
pub(crate) mod tokens;

use chrono::Utc;
use polyclinic_contracts::identity::{UserDeactivatedV1, UserRegisteredV1};
use polyclinic_events::{EventContext, outbox};
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::keycloak::{KeycloakAdmin, KeycloakError, KeycloakUser};
use crate::domain::password::{self, Password};
use crate::domain::user::{Declaration, NewUser, Profile, User, UserError, UserRole, UserStatus};
use crate::repo::{handoffs, sessions, users};

/// Where passwords are kept and checked.
pub enum Credentials {
    Builtin,
    Keycloak(KeycloakAdmin),
}

impl From<KeycloakError> for UserError {
    fn from(err: KeycloakError) -> Self {
        match err {
            KeycloakError::Conflict => UserError::EmailTaken,
            KeycloakError::NotFound => UserError::NotFound,
            KeycloakError::Unexpected(source) => UserError::Unexpected(source),
        }
    }
}

async fn hash(password: &Password) -> Result<String, UserError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || password.hash())
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?
        .map_err(UserError::Unexpected)
}

/// Checks `candidate` against a stored hash off the async threads.
pub async fn verify_password(candidate: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        password::verify(
            &candidate,
            hash.as_deref().unwrap_or(password::decoy_hash()),
        ) && hash.is_some()
    })
    .await
    .unwrap_or(false)
}

fn keycloak_fields(user: &NewUser) -> KeycloakUser {
    KeycloakUser {
        username: Some(user.username.as_str().to_owned()),
        email: Some(user.email.as_str().to_owned()),
        first_name: Some(user.first_name.as_str().to_owned()),
        last_name: Some(user.last_name.as_str().to_owned()),
    }
}

/// Creates `user` with `password`, handing what a patient declared about their health to
/// their record. In Keycloak mode the id is Keycloak's.
pub async fn create_user(
    pool: &PgPool,
    credentials: &Credentials,
    mut user: NewUser,
    password: &Password,
    declaration: &Declaration,
    context: &EventContext,
) -> Result<User, UserError> {
    let password_hash = match credentials {
        Credentials::Builtin => Some(hash(password).await?),
        Credentials::Keycloak(keycloak) => {
            let role = user.profile.role().as_str();
            user.id = keycloak
                .create_user(&keycloak_fields(&user), password.expose(), role)
                .await?;
            None
        }
    };
    let stored = insert_locally(pool, &user, password_hash.as_deref(), declaration, context).await;
    if stored.is_err()
        && let Credentials::Keycloak(keycloak) = credentials
        && let Err(undo) = keycloak.delete_user(user.id).await
    {
        tracing::error!(user_id = %user.id, error = %undo, "could not undo the Keycloak user after a failed insert");
    }
    stored
}

async fn insert_locally(
    pool: &PgPool,
    user: &NewUser,
    password_hash: Option<&str>,
    declaration: &Declaration,
    context: &EventContext,
) -> Result<User, UserError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?;
    users::insert_user(&mut tx, user, password_hash).await?;
    if !declaration.is_empty() {
        handoffs::insert(&mut tx, user.id, declaration).await?;
    }
    let created = users::find_user(&mut tx, user.id)
        .await?
        .ok_or(UserError::NotFound)?;
    let registered = UserRegisteredV1 {
        user_id: created.id,
        role: created.role.as_str().to_owned(),
        registered_at: created.created_at,
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &registered, context).await?;
    tx.commit()
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?;
    Ok(created)
}

pub async fn find_user(pool: &PgPool, id: Uuid) -> Result<User, UserError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?;
    users::find_user(&mut conn, id)
        .await?
        .ok_or(UserError::NotFound)
}

/// A change to a user: the columns of `users`, for admins a new profile or status, for a
/// patient what they declare to their record.
#[derive(Debug, Default)]
pub struct Change {
    pub fields: users::UserChanges,
    pub profile: Option<Profile>,
    pub status: Option<UserStatus>,
    pub declaration: Option<Declaration>,
}

/// Applies `change` to user `id`.
pub async fn update_user(
    pool: &PgPool,
    credentials: &Credentials,
    id: Uuid,
    change: Change,
    context: &EventContext,
) -> Result<User, UserError> {
    let before = find_user(pool, id).await?;
    // A new role, or another department (what a doctor or nurse may see follows it), ends
    // the person's logins as a deactivation does: their tokens carry what they were.
    let authority_changed = change.profile.as_ref().is_some_and(|profile| {
        profile.role() != before.role || profile.department_id() != before.profile.department_id()
    });
    if let Credentials::Keycloak(keycloak) = credentials {
        let fields = KeycloakUser {
            username: change.fields.username.clone(),
            email: change.fields.email.clone(),
            first_name: change.fields.first_name.clone(),
            last_name: change.fields.last_name.clone(),
        };
        keycloak.update_user(id, &fields).await?;
        if let Some(profile) = &change.profile
            && profile.role() != before.role
        {
            keycloak.grant_role(id, profile.role().as_str()).await?;
            keycloak.revoke_role(id, before.role.as_str()).await?;
        }
        if let Some(status) = change.status {
            keycloak
                .set_enabled(id, status == UserStatus::Active)
                .await?;
        }
        if authority_changed {
            keycloak.log_out(id).await?;
        }
    }

    let mut tx = pool
        .begin()
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?;
    users::update_user(&mut tx, id, &change.fields).await?;
    if let Some(profile) = &change.profile {
        users::replace_profile(&mut tx, id, profile).await?;
    }
    if let Some(declaration) = change.declaration.as_ref().filter(|d| !d.is_empty()) {
        handoffs::insert(&mut tx, id, declaration).await?;
    }
    if authority_changed {
        sessions::revoke_user_sessions(&mut tx, id, None, "role or department changed").await?;
        // Keycloak's access tokens carry no login of ours to revoke: void them by time.
        if let Credentials::Keycloak(_) = credentials {
            users::revoke_tokens(&mut tx, id).await?;
        }
    }
    if let Some(status) = change.status {
        users::set_status(&mut tx, id, status).await?;
        if status == UserStatus::Deactivated && before.status != UserStatus::Deactivated {
            sessions::revoke_user_sessions(&mut tx, id, None, "user deactivated").await?;
            let deactivated = UserDeactivatedV1 {
                user_id: id,
                deactivated_at: Utc::now(),
            };
            outbox::enqueue(&mut tx, crate::SERVICE, &deactivated, context).await?;
        }
    }
    let after = users::find_user(&mut tx, id)
        .await?
        .ok_or(UserError::NotFound)?;
    tx.commit()
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?;
    Ok(after)
}

/// Deactivates user `id`: logins end, tokens stop working, the row stays.
pub async fn deactivate(
    pool: &PgPool,
    credentials: &Credentials,
    id: Uuid,
    context: &EventContext,
) -> Result<User, UserError> {
    update_user(
        pool,
        credentials,
        id,
        Change {
            status: Some(UserStatus::Deactivated),
            ..Change::default()
        },
        context,
    )
    .await
}

/// Changes the caller's own password after checking the current one; every other login of
/// theirs ends.
pub async fn change_password(
    pool: &PgPool,
    credentials: &Credentials,
    id: Uuid,
    keep_session: Option<Uuid>,
    current: String,
    new: &Password,
) -> Result<(), UserError> {
    match credentials {
        Credentials::Builtin => {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|err| UserError::Unexpected(err.into()))?;
            let stored = users::password_hash(&mut conn, id).await?;
            if !verify_password(current, stored).await {
                return Err(UserError::WrongPassword);
            }
        }
        Credentials::Keycloak(_) => {
            // Keycloak checks the current password in its own account console; through this
            // API only an admin reset is offered.
            return Err(UserError::Invalid(
                "change your password in the Keycloak account console".to_owned(),
            ));
        }
    }
    set_password(pool, credentials, id, keep_session, new).await
}

/// Sets a new password (an admin reset, or after `change_password` checked the old one).
pub async fn set_password(
    pool: &PgPool,
    credentials: &Credentials,
    id: Uuid,
    keep_session: Option<Uuid>,
    new: &Password,
) -> Result<(), UserError> {
    let new_hash = match credentials {
        Credentials::Builtin => Some(hash(new).await?),
        Credentials::Keycloak(keycloak) => {
            keycloak.reset_password(id, new.expose()).await?;
            None
        }
    };
    let mut tx = pool
        .begin()
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?;
    if users::find_user(&mut tx, id).await?.is_none() {
        return Err(UserError::NotFound);
    }
    if let Some(new_hash) = new_hash {
        users::set_password_hash(&mut tx, id, &new_hash).await?;
    }
    sessions::revoke_user_sessions(&mut tx, id, keep_session, "password changed").await?;
    tx.commit()
        .await
        .map_err(|err| UserError::Unexpected(err.into()))?;
    Ok(())
}

/// Whether `role` may be created through the staff route.
pub fn is_staff_role(role: UserRole) -> bool {
    role != UserRole::Patient
}
