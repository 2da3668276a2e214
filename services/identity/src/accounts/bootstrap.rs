//! The first administrator: created on start when no active admin exists.

use polyclinic_config::{Config, Environment};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::PgPool;
use uuid::Uuid;

use polyclinic_events::EventContext;

use crate::accounts::keycloak::KeycloakError;
use crate::accounts::{self, Credentials};
use crate::domain::fields::{Email, PersonName, Username};
use crate::domain::password::Password;
use crate::domain::user::{Declaration, NewUser, Profile, UserError};
use crate::repo::users;

/// Ensures an active administrator exists. Idempotent: with one present it does nothing.
/// Without `admin.password`, development generates one and prints it once; production
/// refuses to start, as it does for a weak one.
pub async fn ensure_first_admin(
    pool: &PgPool,
    credentials: &Credentials,
    config: &Config,
) -> anyhow::Result<()> {
    if users::active_admin_exists(pool).await? {
        return Ok(());
    }
    let email = Email::parse(&config.admin.email)
        .map_err(|err| anyhow::anyhow!("invalid configuration value for `admin.email`: {err}"))?;
    let username = Username::parse("admin").map_err(anyhow::Error::msg)?;
    let (password, generated) = match (&config.admin.password, config.environment) {
        (Some(password), _) => (password.clone(), false),
        (None, Environment::Development) => (generate_password()?, true),
        (None, Environment::Production) => anyhow::bail!(
            "no active administrator exists and `admin.password` (POLYCLINIC_ADMIN_PASSWORD) is not set"
        ),
    };
    let password =
        Password::parse(&password, &[email.as_str(), username.as_str()]).map_err(|err| {
            anyhow::anyhow!("invalid configuration value for `admin.password`: {err}")
        })?;

    let admin = NewUser {
        id: Uuid::now_v7(),
        email,
        username,
        first_name: PersonName::parse("Clinic").map_err(anyhow::Error::msg)?,
        last_name: PersonName::parse("Administrator").map_err(anyhow::Error::msg)?,
        phone: None,
        gender: None,
        date_of_birth: None,
        address: None,
        profile: Profile::Admin {},
    };
    match accounts::create_user(
        pool,
        credentials,
        admin.clone(),
        &password,
        &Declaration::default(),
        &EventContext::default(),
    )
    .await
    {
        Ok(user) => {
            tracing::info!(user_id = %user.id, email = %user.email, "created the first administrator");
            if generated {
                // Printed once, to the terminal, never to the log.
                eprintln!(
                    "\n  First administrator: {}\n  Generated password:  {}\n  (set POLYCLINIC_ADMIN_PASSWORD to choose it)\n",
                    user.email,
                    password.expose()
                );
            }
            Ok(())
        }
        // Another instance created it at the same moment.
        Err(UserError::EmailTaken | UserError::UsernameTaken)
            if users::active_admin_exists(pool).await? =>
        {
            Ok(())
        }
        Err(UserError::EmailTaken) => adopt_keycloak_admin(pool, credentials, admin).await,
        Err(err) => Err(anyhow::anyhow!("creating the first administrator: {err}")),
    }
}

/// In Keycloak mode the realm may already hold the admin (an earlier start whose local
/// insert failed, or a realm set up by hand): give it the role and the local row.
async fn adopt_keycloak_admin(
    pool: &PgPool,
    credentials: &Credentials,
    mut admin: NewUser,
) -> anyhow::Result<()> {
    let Credentials::Keycloak(keycloak) = credentials else {
        anyhow::bail!(
            "a user with the email in `admin.email` exists but is not an active administrator"
        );
    };
    let id = keycloak
        .find_by_email(admin.email.as_str())
        .await
        .map_err(|err| anyhow::anyhow!("looking up the administrator in Keycloak: {err}"))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Keycloak reported the administrator's email taken but has no such user"
            )
        })?;
    match keycloak.grant_role(id, "ADMIN").await {
        Ok(()) | Err(KeycloakError::Conflict) => {}
        Err(err) => anyhow::bail!("granting ADMIN in Keycloak: {err}"),
    }
    admin.id = id;
    let mut tx = pool.begin().await?;
    users::insert_user(&mut tx, &admin, None)
        .await
        .map_err(|err| anyhow::anyhow!("storing the Keycloak administrator: {err}"))?;
    tx.commit().await?;
    tracing::info!(user_id = %id, "adopted the administrator that Keycloak already had");
    Ok(())
}

fn generate_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("generating the administrator's password"))?;
    Ok(bytes
        .iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect())
}
