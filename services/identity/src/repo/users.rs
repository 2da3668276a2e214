//! Users and their profile tables.

use chrono::{DateTime, NaiveDate, Utc};
use polyclinic_db::violated_constraint;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::fields::Money;
use crate::domain::user::{
    DoctorProfile, Gender, NewUser, NurseProfile, PatientProfile, Profile, User, UserError,
    UserRole, UserStatus,
};

/// Every column a [`User`] is read from, and the joins that provide them.
const USER_COLUMNS: &str =
    "u.id, u.role, u.status, u.email, u.username, u.first_name, u.last_name, u.phone,
       u.gender, u.date_of_birth, u.address, u.created_at, u.updated_at,
       d.specialization, d.years_of_experience, d.department_id as doctor_department_id,
       d.fee_amount, d.fee_currency, n.department_id as nurse_department_id,
       p.user_id as patient_user_id";
const USER_JOINS: &str = "from users u
left join doctors d on d.user_id = u.id
left join nurses n on n.user_id = u.id
left join patients p on p.user_id = u.id";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    role: String,
    status: String,
    email: String,
    username: String,
    first_name: String,
    last_name: String,
    phone: Option<String>,
    gender: Option<String>,
    date_of_birth: Option<NaiveDate>,
    address: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    specialization: Option<String>,
    years_of_experience: Option<i32>,
    doctor_department_id: Option<Uuid>,
    fee_amount: Option<i64>,
    fee_currency: Option<String>,
    nurse_department_id: Option<Uuid>,
    patient_user_id: Option<Uuid>,
}

impl TryFrom<UserRow> for User {
    type Error = anyhow::Error;

    fn try_from(row: UserRow) -> anyhow::Result<Self> {
        let role = UserRole::parse(&row.role)
            .ok_or_else(|| anyhow::anyhow!("unknown role {} on user {}", row.role, row.id))?;
        let missing = || anyhow::anyhow!("user {} has no {} profile", row.id, row.role);
        let profile = match role {
            UserRole::Admin => Profile::Admin {},
            UserRole::Doctor => Profile::Doctor(DoctorProfile {
                specialization: row.specialization.clone().ok_or_else(missing)?,
                years_of_experience: row.years_of_experience.ok_or_else(missing)?,
                department_id: row.doctor_department_id.ok_or_else(missing)?,
                consultation_fee: Money::stored(
                    row.fee_amount.ok_or_else(missing)?,
                    row.fee_currency.clone().ok_or_else(missing)?,
                ),
            }),
            UserRole::Nurse => Profile::Nurse(NurseProfile {
                department_id: row.nurse_department_id.ok_or_else(missing)?,
            }),
            UserRole::Patient => {
                row.patient_user_id.ok_or_else(missing)?;
                Profile::Patient(PatientProfile {})
            }
        };
        Ok(User {
            id: row.id,
            role,
            status: UserStatus::parse(&row.status).unwrap_or(UserStatus::Deactivated),
            email: row.email,
            username: row.username,
            first_name: row.first_name,
            last_name: row.last_name,
            phone: row.phone,
            gender: row.gender.as_deref().and_then(Gender::parse),
            date_of_birth: row.date_of_birth,
            address: row.address,
            profile,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn map_write_error(err: sqlx::Error) -> UserError {
    match violated_constraint(&err) {
        Some("users_email_key") => UserError::EmailTaken,
        Some("users_username_key") => UserError::UsernameTaken,
        Some("doctors_department_fkey" | "nurses_department_fkey") => UserError::UnknownDepartment,
        _ => UserError::Unexpected(anyhow::Error::new(err).context("writing a user")),
    }
}

/// Inserts the user and its profile row.
pub async fn insert_user(
    conn: &mut PgConnection,
    user: &NewUser,
    password_hash: Option<&str>,
) -> Result<(), UserError> {
    sqlx::query(
        "insert into users (id, role, email, username, first_name, last_name, phone, gender,
                            date_of_birth, address, password_hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(user.id)
    .bind(user.profile.role().as_str())
    .bind(user.email.as_str())
    .bind(user.username.as_str())
    .bind(user.first_name.as_str())
    .bind(user.last_name.as_str())
    .bind(user.phone.as_ref().map(|phone| phone.as_str()))
    .bind(user.gender.map(Gender::as_str))
    .bind(user.date_of_birth)
    .bind(user.address.as_ref().map(|address| address.as_str()))
    .bind(password_hash)
    .execute(&mut *conn)
    .await
    .map_err(map_write_error)?;
    insert_profile(conn, user.id, &user.profile).await
}

async fn insert_profile(
    conn: &mut PgConnection,
    user_id: Uuid,
    profile: &Profile,
) -> Result<(), UserError> {
    let query = match profile {
        Profile::Admin {} => sqlx::query("insert into admins (user_id) values ($1)").bind(user_id),
        Profile::Doctor(doctor) => sqlx::query(
            "insert into doctors (user_id, specialization, years_of_experience, department_id,
                                  fee_amount, fee_currency)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user_id)
        .bind(&doctor.specialization)
        .bind(doctor.years_of_experience)
        .bind(doctor.department_id)
        .bind(doctor.consultation_fee.amount)
        .bind(&doctor.consultation_fee.currency),
        Profile::Nurse(nurse) => {
            sqlx::query("insert into nurses (user_id, department_id) values ($1, $2)")
                .bind(user_id)
                .bind(nurse.department_id)
        }
        Profile::Patient(PatientProfile {}) => {
            sqlx::query("insert into patients (user_id) values ($1)").bind(user_id)
        }
    };
    query.execute(&mut *conn).await.map_err(map_write_error)?;
    Ok(())
}

/// Replaces the user's profile, changing its role if the new profile is of another one.
pub async fn replace_profile(
    conn: &mut PgConnection,
    user_id: Uuid,
    profile: &Profile,
) -> Result<(), UserError> {
    for table in ["admins", "doctors", "nurses", "patients"] {
        sqlx::query(&format!("delete from {table} where user_id = $1"))
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(map_write_error)?;
    }
    sqlx::query("update users set role = $2, updated_at = now() where id = $1")
        .bind(user_id)
        .bind(profile.role().as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_write_error)?;
    insert_profile(conn, user_id, profile).await
}

/// The fields of `users` a patch may change; `None` leaves a column as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<Option<String>>,
    pub gender: Option<Option<Gender>>,
    pub date_of_birth: Option<Option<NaiveDate>>,
    pub address: Option<Option<String>>,
}

/// Applies `changes` to the `users` row.
pub async fn update_user(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &UserChanges,
) -> Result<(), UserError> {
    let updated = sqlx::query(
        "update users set
            email = coalesce($2, email),
            username = coalesce($3, username),
            first_name = coalesce($4, first_name),
            last_name = coalesce($5, last_name),
            phone = case when $6 then $7 else phone end,
            gender = case when $8 then $9 else gender end,
            date_of_birth = case when $10 then $11 else date_of_birth end,
            address = case when $12 then $13 else address end,
            updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(&changes.email)
    .bind(&changes.username)
    .bind(&changes.first_name)
    .bind(&changes.last_name)
    .bind(changes.phone.is_some())
    .bind(changes.phone.clone().flatten())
    .bind(changes.gender.is_some())
    .bind(changes.gender.flatten().map(Gender::as_str))
    .bind(changes.date_of_birth.is_some())
    .bind(changes.date_of_birth.flatten())
    .bind(changes.address.is_some())
    .bind(changes.address.clone().flatten())
    .execute(&mut *conn)
    .await
    .map_err(map_write_error)?;
    if updated.rows_affected() == 0 {
        return Err(UserError::NotFound);
    }
    Ok(())
}

/// Sets the status; deactivation records when, and voids every token issued until then.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: UserStatus,
) -> Result<(), UserError> {
    let updated = sqlx::query(
        "update users set status = $2,
            deactivated_at = case when $2 = 'DEACTIVATED' then now() else null end,
            tokens_revoked_at = case when $2 = 'DEACTIVATED' then now() else tokens_revoked_at end,
            updated_at = now()
         where id = $1 and status <> $2",
    )
    .bind(id)
    .bind(status.as_str())
    .execute(&mut *conn)
    .await
    .map_err(map_write_error)?;
    if updated.rows_affected() == 0 && find_user(&mut *conn, id).await?.is_none() {
        return Err(UserError::NotFound);
    }
    Ok(())
}

pub async fn set_password_hash(
    conn: &mut PgConnection,
    id: Uuid,
    hash: &str,
) -> Result<(), UserError> {
    sqlx::query("update users set password_hash = $2, updated_at = now() where id = $1")
        .bind(id)
        .bind(hash)
        .execute(&mut *conn)
        .await
        .map_err(map_write_error)?;
    Ok(())
}

pub async fn find_user(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, UserError> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "select {USER_COLUMNS} {USER_JOINS} where u.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|err| UserError::Unexpected(anyhow::Error::new(err).context("reading a user")))?;
    row.map(User::try_from)
        .transpose()
        .map_err(UserError::Unexpected)
}

/// The user whose email or username is `login` (case-insensitively), with its password hash.
pub async fn find_for_login(
    pool: &PgPool,
    login: &str,
) -> anyhow::Result<Option<(User, Option<String>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: Option<String>,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {USER_COLUMNS}, u.password_hash {USER_JOINS}
         where lower(u.email) = lower($1) or lower(u.username) = lower($1)
         order by (lower(u.email) = lower($1)) desc
         limit 1"
    ))
    .bind(login.trim())
    .fetch_optional(pool)
    .await?;
    row.map(|row| Ok((User::try_from(row.user)?, row.password_hash)))
        .transpose()
}

pub async fn password_hash(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("select password_hash from users where id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten(),
    )
}

/// Filters of the admin's user list.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub role: Option<UserRole>,
    pub status: Option<UserStatus>,
    pub department_id: Option<Uuid>,
    /// Matches names, email and username, case-insensitively.
    pub search: Option<String>,
    /// Only ids after this one (ids are UUIDv7, so this is creation order).
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn list_users(pool: &PgPool, filter: &UserFilter) -> anyhow::Result<Vec<User>> {
    let pattern = filter
        .search
        .as_deref()
        .map(polyclinic_db::contains_pattern);
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "select {USER_COLUMNS} {USER_JOINS}
         where ($1::text is null or u.role = $1)
           and ($2::text is null or u.status = $2)
           and ($3::uuid is null or d.department_id = $3 or n.department_id = $3)
           and ($4::text is null or u.first_name ilike $4 or u.last_name ilike $4
                or u.email ilike $4 or u.username ilike $4
                or (u.first_name || ' ' || u.last_name) ilike $4)
           and ($5::uuid is null or u.id > $5)
         order by u.id
         limit $6"
    ))
    .bind(filter.role.map(UserRole::as_str))
    .bind(filter.status.map(UserStatus::as_str))
    .bind(filter.department_id)
    .bind(pattern)
    .bind(filter.after)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(User::try_from).collect()
}

/// Filters of the FHIR practitioner searches: active doctors (and nurses, for the staff),
/// in id order.
#[derive(Debug, Default)]
pub struct PractitionerFilter {
    pub id: Option<Uuid>,
    /// Part of the first or last name, case-insensitive.
    pub name: Option<String>,
    pub department_id: Option<Uuid>,
    /// The doctor's specialization, case-insensitive (nurses have none).
    pub specialization: Option<String>,
    pub with_nurses: bool,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn list_practitioners(
    pool: &PgPool,
    filter: &PractitionerFilter,
) -> anyhow::Result<Vec<User>> {
    let pattern = filter.name.as_deref().map(polyclinic_db::contains_pattern);
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "select {USER_COLUMNS} {USER_JOINS}
         where u.status = 'ACTIVE'
           and (u.role = 'DOCTOR' or ($1 and u.role = 'NURSE'))
           and ($2::uuid is null or u.id = $2)
           and ($3::text is null or u.first_name ilike $3 or u.last_name ilike $3)
           and ($4::uuid is null or d.department_id = $4 or n.department_id = $4)
           and ($5::text is null or lower(d.specialization) = lower($5))
           and ($6::uuid is null or u.id > $6)
         order by u.id
         limit $7"
    ))
    .bind(filter.with_nurses)
    .bind(filter.id)
    .bind(pattern)
    .bind(filter.department_id)
    .bind(filter.specialization.as_deref())
    .bind(filter.after)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(User::try_from).collect()
}

/// Whether any active administrator exists.
pub async fn active_admin_exists(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from users where role = 'ADMIN' and status = 'ACTIVE')",
    )
    .fetch_one(pool)
    .await?)
}

/// Users deactivated since `since`, for the revocation feed.
/// Voids every token of user `id` issued until now (token verifiers learn it from the
/// revocation feed).
pub async fn revoke_tokens(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("update users set tokens_revoked_at = now(), updated_at = now() where id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Users whose tokens were voided since `since`, and when.
pub async fn tokens_revoked_since(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<(Uuid, DateTime<Utc>)>> {
    Ok(
        sqlx::query_as("select id, tokens_revoked_at from users where tokens_revoked_at >= $1")
            .bind(since)
            .fetch_all(pool)
            .await?,
    )
}
