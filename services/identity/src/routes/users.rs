//! `/api/users`: registration, staff accounts, own profile, the admin's user management.

use axum::http::StatusCode;
use chrono::{NaiveDate, Utc};
use polyclinic_auth::rules::{Admin, Person};
use polyclinic_auth::scopes::UsersRead;
use polyclinic_auth::{Principal, Require, Role, Scope};
use polyclinic_events::EventContext;
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, Page, PageQuery, ProblemDetails, RequestId, Violations};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::accounts::{self, Change};
use crate::domain::fields::{
    Address, AddressOrBlank, BirthDate, Email, Money, PersonName, Phone, PhoneOrBlank, Title,
    Username, parse_birth_date,
};
use crate::domain::password::Password;
use crate::domain::user::{
    BloodType, Declaration, DoctorProfile, Gender, NewUser, NurseProfile, PatientProfile, Profile,
    User, UserError, UserRole, UserStatus, parse_allergies, parse_experience,
};
use crate::repo::users::{self as repo, UserChanges, UserFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_patient))
        .routes(routes!(create_staff))
        .routes(routes!(get_me, patch_me))
        .routes(routes!(change_my_password))
        .routes(routes!(list_users))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(reset_password))
}

/// Declares a request body that carries every account's fields and `$extra` ones, with
/// unknown fields refused (422 `invalid_body`) and said so in its schema
/// (`additionalProperties: false`), and `account()` to read the common part.
macro_rules! account_request {
    ($(#[$meta:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[schema(value_type = PersonName)]
            pub first_name: String,
            #[schema(value_type = PersonName)]
            pub last_name: String,
            #[schema(value_type = Email)]
            pub email: String,
            /// Defaults to the email address.
            #[schema(value_type = Option<Username>)]
            pub username: Option<String>,
            /// 10 to 128 characters; not a well-known password, not the email or username,
            /// not one character repeated.
            #[schema(min_length = 10, max_length = 128, pattern = r"^(?!([\s\S])\1*$)[^\u0000]*$")]
            pub password: String,
            #[schema(value_type = Option<Phone>)]
            pub phone: Option<String>,
            pub gender: Option<Gender>,
            #[schema(value_type = Option<BirthDate>)]
            pub date_of_birth: Option<NaiveDate>,
            #[schema(value_type = Option<Address>)]
            pub address: Option<String>,
            $($extra)*
        }

        impl $name {
            fn account(&self) -> AccountFields {
                AccountFields {
                    first_name: self.first_name.clone(),
                    last_name: self.last_name.clone(),
                    email: self.email.clone(),
                    username: self.username.clone(),
                    password: self.password.clone(),
                    phone: self.phone.clone(),
                    gender: self.gender,
                    date_of_birth: self.date_of_birth,
                    address: self.address.clone(),
                }
            }
        }
    };
}

/// Fields every account has, as a request carried them.
#[derive(Debug)]
struct AccountFields {
    first_name: String,
    last_name: String,
    email: String,
    username: Option<String>,
    password: String,
    phone: Option<String>,
    gender: Option<Gender>,
    date_of_birth: Option<NaiveDate>,
    address: Option<String>,
}

impl AccountFields {
    /// Parses the common fields; `profile` is checked by the caller into the same
    /// `violations`.
    fn parse(&self, violations: &mut Violations) -> Option<(NewUser, Password)> {
        let email = violations.check("email", Email::parse(&self.email));
        let username = violations.check(
            "username",
            Username::parse(self.username.as_deref().unwrap_or(&self.email)),
        );
        let first_name = violations.check("first_name", PersonName::parse(&self.first_name));
        let last_name = violations.check("last_name", PersonName::parse(&self.last_name));
        let phone = violations.check_opt("phone", self.phone.as_deref().map(Phone::parse));
        let address = violations.check_opt("address", self.address.as_deref().map(Address::parse));
        let today = Utc::now().date_naive();
        let date_of_birth = violations.check_opt(
            "date_of_birth",
            self.date_of_birth.map(|date| parse_birth_date(date, today)),
        );
        let identifiers = [self.email.as_str(), self.username.as_deref().unwrap_or("")];
        let password = violations.check("password", Password::parse(&self.password, &identifiers));
        let (
            Some(email),
            Some(username),
            Some(first_name),
            Some(last_name),
            Some(phone),
            Some(address),
            Some(date_of_birth),
            Some(password),
        ) = (
            email,
            username,
            first_name,
            last_name,
            phone,
            address,
            date_of_birth,
            password,
        )
        else {
            return None;
        };
        let user = NewUser {
            id: Uuid::now_v7(),
            email,
            username,
            first_name,
            last_name,
            phone,
            gender: self.gender,
            date_of_birth,
            address,
            profile: Profile::Admin {},
        };
        Some((user, password))
    }
}

account_request!(
    /// A patient's self-registration. Any other field (`role`, `status`, `id`, ...) is
    /// refused: the result is always an active patient.
    pub struct RegisterPatient {
        /// Declared to your medical record (the care team reads it; the clinic's
        /// administrators do not), not kept with your account.
        pub blood_type: Option<BloodType>,
        /// Declared to your medical record as patient-reported allergies, which the
        /// prescribing check sees: at most 50, each 1 to 100 characters.
        #[serde(default)]
        #[schema(value_type = Vec<Title>, max_items = 50)]
        pub allergies: Vec<String>,
    }
);

/// Register as a patient.
#[utoipa::path(post, path = "/api/users/patients", tag = "users", request_body = RegisterPatient,
    responses((status = 201, body = User), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn register_patient(
    axum::extract::State(state): axum::extract::State<AppState>,
    request_id: RequestId,
    Json(body): Json<RegisterPatient>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let mut violations = Violations::new();
    let account = body.account().parse(&mut violations);
    let allergies = violations.check("allergies", parse_allergies(&body.allergies));
    let (Some((mut user, password)), Some(allergies)) = (account, allergies) else {
        return Err(violations.into_error());
    };
    user.profile = Profile::Patient(PatientProfile {});
    let declaration = Declaration {
        allergies,
        blood_type: body.blood_type,
    };
    let created = accounts::create_user(
        &state.pool,
        &state.credentials,
        user,
        &password,
        &declaration,
        &context(&request_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The event context of a request: its id correlates everything it causes.
fn context(request_id: &RequestId) -> EventContext {
    EventContext {
        correlation_id: Some(request_id.as_str().to_owned()),
        trace: Default::default(),
    }
}

account_request!(
    /// A staff account, created by an admin.
    pub struct CreateStaff {
        /// `ADMIN`, `DOCTOR` or `NURSE`.
        pub role: UserRole,
        /// Doctors and nurses.
        pub department_id: Option<Uuid>,
        /// Doctors.
        #[schema(value_type = Option<Title>)]
        pub specialization: Option<String>,
        /// Doctors.
        #[schema(minimum = 0, maximum = 80)]
        pub years_of_experience: Option<i32>,
        /// Doctors: what a consultation costs.
        pub consultation_fee: Option<Money>,
    }
);

/// [`CreateStaff`] as documented: which fields each role needs, said with `if`/`then`.
pub struct CreateStaffRequest;

impl utoipa::PartialSchema for CreateStaffRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use serde_json::json;
        let mut schema = serde_json::to_value(<CreateStaff as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        let needs = |role: &str, fields: serde_json::Value| {
            let required: Vec<String> = fields
                .as_object()
                .map(|fields| fields.keys().cloned().collect())
                .unwrap_or_default();
            json!({
                "if": {"properties": {"role": {"const": role}}, "required": ["role"]},
                "then": {"required": required, "properties": fields}
            })
        };
        // Staff are administrators, doctors and nurses; patients register themselves.
        schema["properties"]["role"] = json!({
            "type": "string",
            "enum": ["ADMIN", "DOCTOR", "NURSE"],
            "description": "Patients register themselves at `/api/users/patients`."
        });
        schema["allOf"] = json!([
            needs(
                "DOCTOR",
                json!({
                    "department_id": {"type": "string"},
                    "specialization": {"type": "string"},
                    "years_of_experience": {"type": "integer"},
                    "consultation_fee": {"type": "object"},
                })
            ),
            needs("NURSE", json!({"department_id": {"type": "string"}})),
        ]);
        serde_json::from_value(schema).unwrap_or_default()
    }
}

impl utoipa::ToSchema for CreateStaffRequest {}

/// Builds the profile of `role` from optional request fields, recording what is missing.
fn staff_profile(
    role: UserRole,
    department_id: Option<Uuid>,
    specialization: Option<&str>,
    years_of_experience: Option<i32>,
    fee: Option<&Money>,
    violations: &mut Violations,
) -> Option<Profile> {
    // Each field given is checked whatever the role, as the document describes it; the role
    // then says which it needs.
    let given = (
        specialization.is_some(),
        years_of_experience.is_some(),
        fee.is_some(),
    );
    let specialization = violations.check_opt("specialization", specialization.map(Title::parse));
    let years = violations.check_opt(
        "years_of_experience",
        years_of_experience.map(parse_experience),
    );
    let fee = violations.check_opt(
        "consultation_fee",
        fee.map(|fee| Money::parse(fee.amount, &fee.currency)),
    );
    let mut required = |field: &str, present: bool| {
        if !present {
            violations.add(field, format!("is required for {}", role.as_str()));
        }
    };
    match role {
        UserRole::Admin => Some(Profile::Admin {}),
        UserRole::Patient => Some(Profile::Patient(PatientProfile {})),
        UserRole::Nurse => {
            required("department_id", department_id.is_some());
            Some(Profile::Nurse(NurseProfile {
                department_id: department_id?,
            }))
        }
        UserRole::Doctor => {
            required("department_id", department_id.is_some());
            required("specialization", given.0);
            required("years_of_experience", given.1);
            required("consultation_fee", given.2);
            Some(Profile::Doctor(DoctorProfile {
                specialization: specialization??.into_inner(),
                years_of_experience: years??,
                department_id: department_id?,
                consultation_fee: fee??,
            }))
        }
    }
}

/// Create a doctor, nurse or admin account.
#[utoipa::path(post, path = "/api/users/staff", tag = "users", request_body = CreateStaffRequest,
    security(("bearer" = [])),
    responses((status = 201, body = User), (status = 403, body = ProblemDetails), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn create_staff(
    axum::extract::State(state): axum::extract::State<AppState>,
    _admin: Require<Admin>,
    request_id: RequestId,
    Json(body): Json<CreateStaff>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let mut violations = Violations::new();
    if !accounts::is_staff_role(body.role) {
        violations.add(
            "role",
            "patients register themselves at /api/users/patients",
        );
    }
    let account = body.account().parse(&mut violations);
    let profile = staff_profile(
        body.role,
        body.department_id,
        body.specialization.as_deref(),
        body.years_of_experience,
        body.consultation_fee.as_ref(),
        &mut violations,
    );
    let (Some((mut user, password)), Some(profile), true) =
        (account, profile, violations.is_empty())
    else {
        return Err(violations.into_error());
    };
    user.profile = profile;
    let created = accounts::create_user(
        &state.pool,
        &state.credentials,
        user,
        &password,
        &Declaration::default(),
        &context(&request_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ProblemDetails)))]
async fn get_me(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Require<Person>,
) -> Result<Json<User>, ApiError> {
    let user = accounts::find_user(&state.pool, caller.user_id()?).await?;
    if user.status != UserStatus::Active {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "This account is deactivated.",
        ));
    }
    Ok(Json(user))
}

/// What a user may change of their own profile. Role, status and department are the
/// admin's to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[schema(value_type = Option<PersonName>)]
    pub first_name: Option<String>,
    #[schema(value_type = Option<PersonName>)]
    pub last_name: Option<String>,
    #[schema(value_type = Option<Email>)]
    pub email: Option<String>,
    #[schema(value_type = Option<Username>)]
    pub username: Option<String>,
    /// An empty string clears it.
    #[schema(value_type = Option<PhoneOrBlank>)]
    pub phone: Option<String>,
    pub gender: Option<Gender>,
    #[schema(value_type = Option<BirthDate>)]
    pub date_of_birth: Option<NaiveDate>,
    /// An empty string clears it.
    #[schema(value_type = Option<AddressOrBlank>)]
    pub address: Option<String>,
    /// Patients only: declared to your medical record, not kept with your account.
    pub blood_type: Option<BloodType>,
    /// Patients only: declared to your medical record as patient-reported allergies (the
    /// ones it has already are kept; your care team corrects the record). At most 50, each
    /// 1 to 100 characters.
    #[schema(value_type = Option<Vec<Title>>, max_items = 50)]
    pub allergies: Option<Vec<String>>,
}

/// A field of a change where a blank value removes it: `blank` checks the value as sent
/// (what the document says of it), then it is removed or parsed.
fn optional_text<T>(
    violations: &mut Violations,
    field: &str,
    value: Option<&str>,
    blank: impl Fn(&str) -> Result<(), String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Option<Option<T>>> {
    let Some(text) = value else {
        return Some(None);
    };
    violations.check(field, blank(text))?;
    if text.trim().is_empty() {
        Some(Some(None))
    } else {
        violations
            .check(field, parse(text))
            .map(|value| Some(Some(value)))
    }
}

impl ProfilePatch {
    fn parse(&self, current: &User, violations: &mut Violations) -> Option<Change> {
        let email = violations.check_opt("email", self.email.as_deref().map(Email::parse));
        let username =
            violations.check_opt("username", self.username.as_deref().map(Username::parse));
        let first_name = violations.check_opt(
            "first_name",
            self.first_name.as_deref().map(PersonName::parse),
        );
        let last_name = violations.check_opt(
            "last_name",
            self.last_name.as_deref().map(PersonName::parse),
        );
        let phone = optional_text(
            violations,
            "phone",
            self.phone.as_deref(),
            PhoneOrBlank::check,
            Phone::parse,
        );
        let address = optional_text(
            violations,
            "address",
            self.address.as_deref(),
            |text| AddressOrBlank::parse(text).map(drop),
            Address::parse,
        );
        let today = Utc::now().date_naive();
        let date_of_birth = violations.check_opt(
            "date_of_birth",
            self.date_of_birth.map(|date| parse_birth_date(date, today)),
        );
        let allergies = self.allergies.as_ref().filter(|list| !list.is_empty());
        let declaration = match (&current.profile, &self.blood_type, allergies) {
            (_, None, None) => None,
            (Profile::Patient(_), blood_type, allergies) => Some(Declaration {
                allergies: match allergies {
                    Some(list) => violations.check("allergies", parse_allergies(list))?,
                    None => Vec::new(),
                },
                blood_type: *blood_type,
            }),
            _ => {
                violations.add(
                    "blood_type",
                    "only patients declare a blood type and allergies",
                );
                None
            }
        };
        let fields = UserChanges {
            email: email?.map(|email| email.as_str().to_owned()),
            username: username?.map(|username| username.as_str().to_owned()),
            first_name: first_name?.map(PersonName::into_inner),
            last_name: last_name?.map(PersonName::into_inner),
            phone: phone?.map(|phone| phone.map(|phone| phone.as_str().to_owned())),
            gender: self.gender.map(Some),
            date_of_birth: date_of_birth?.map(Some),
            address: address?.map(|address| address.map(Address::into_inner)),
        };
        Some(Change {
            fields,
            declaration,
            ..Change::default()
        })
    }
}

/// Change your own profile.
#[utoipa::path(patch, path = "/api/users/me", tag = "users", request_body = ProfilePatch,
    security(("bearer" = [])),
    responses((status = 200, body = User), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn patch_me(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Require<Person>,
    request_id: RequestId,
    Json(body): Json<ProfilePatch>,
) -> Result<Json<User>, ApiError> {
    let current = accounts::find_user(&state.pool, caller.user_id()?).await?;
    let declares =
        body.blood_type.is_some() || body.allergies.as_ref().is_some_and(|list| !list.is_empty());
    if declares && !matches!(current.profile, Profile::Patient(_)) {
        return Err(ApiError::forbidden(
            "not_a_patient",
            "Only patients declare a blood type and allergies.",
        ));
    }
    let mut violations = Violations::new();
    let change = body.parse(&current, &mut violations);
    let (Some(change), true) = (change, violations.is_empty()) else {
        return Err(violations.into_error());
    };
    Ok(Json(
        accounts::update_user(
            &state.pool,
            &state.credentials,
            current.id,
            change,
            &context(&request_id),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// 10 to 128 characters; not a well-known password, not the email or username.
    #[schema(
        min_length = 10,
        max_length = 128,
        pattern = r"^(?!([\s\S])\1*$)[^\u0000]*$"
    )]
    pub new_password: String,
}

/// Change your own password; your other logins end.
#[utoipa::path(post, path = "/api/users/me/password", tag = "users", request_body = PasswordChange,
    security(("bearer" = [])),
    responses((status = 204), (status = 422, body = ProblemDetails)))]
async fn change_my_password(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Require<Person>,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let current = accounts::find_user(&state.pool, caller.user_id()?).await?;
    let new = Password::parse(&body.new_password, &[&current.email, &current.username]).map_err(
        |err| ApiError::unprocessable("validation_failed", format!("new_password: {err}")),
    )?;
    let session = caller
        .session_id
        .as_deref()
        .and_then(|sid| Uuid::parse_str(sid).ok());
    accounts::change_password(
        &state.pool,
        &state.credentials,
        current.id,
        session,
        body.current_password,
        &new,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    pub role: Option<UserRole>,
    pub status: Option<UserStatus>,
    pub department_id: Option<Uuid>,
    /// Part of a name, email or username.
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<Uuid>)]
    pub cursor: Option<String>,
}

/// List and search users.
#[utoipa::path(get, path = "/api/users", tag = "users", params(UserQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<User>), (status = 403, body = ProblemDetails)))]
async fn list_users(
    axum::extract::State(state): axum::extract::State<AppState>,
    _admin: Require<Admin>,
    Query(query): Query<UserQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = page.limit()?;
    let after = match page.cursor.as_deref() {
        Some(cursor) => Some(
            Uuid::parse_str(cursor)
                .map_err(|_| ApiError::bad_request("invalid_cursor", "Unknown cursor."))?,
        ),
        None => None,
    };
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q: at most 100 characters",
        ));
    }
    let filter = UserFilter {
        role: query.role,
        status: query.status,
        department_id: query.department_id,
        search: search.map(str::to_owned),
        after,
        limit: i64::try_from(limit + 1).unwrap_or(101),
    };
    let users = repo::list_users(&state.pool, &filter).await?;
    Ok(Json(Page::from_overfetch(users, limit, |user| {
        user.id.to_string()
    })))
}

/// Whether `caller` may read user `id`: admins and services granted `users:read` read
/// anyone, people themselves.
fn may_read(caller: &Principal, id: Uuid) -> bool {
    caller.is(Role::Admin)
        || caller.is_service_with(UsersRead::NAME)
        || caller.user_id().is_ok_and(|own| own == id)
}

/// A user by id: admins and platform services read anyone, everyone else only themselves.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 404, body = ProblemDetails)))]
async fn get_user(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<User>, ApiError> {
    if !may_read(&caller, id) {
        return Err(UserError::NotFound.into());
    }
    Ok(Json(accounts::find_user(&state.pool, id).await?))
}

/// An admin's change to a user: what a user may change of themselves but nothing clinical
/// (no allergies, no blood type: administrators handle no health data), plus role,
/// status, department and the doctor's profile.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminPatch {
    #[schema(value_type = Option<PersonName>)]
    pub first_name: Option<String>,
    #[schema(value_type = Option<PersonName>)]
    pub last_name: Option<String>,
    #[schema(value_type = Option<Email>)]
    pub email: Option<String>,
    #[schema(value_type = Option<Username>)]
    pub username: Option<String>,
    /// An empty string clears it.
    #[schema(value_type = Option<PhoneOrBlank>)]
    pub phone: Option<String>,
    pub gender: Option<Gender>,
    #[schema(value_type = Option<BirthDate>)]
    pub date_of_birth: Option<NaiveDate>,
    /// An empty string clears it.
    #[schema(value_type = Option<AddressOrBlank>)]
    pub address: Option<String>,
    pub status: Option<UserStatus>,
    pub role: Option<UserRole>,
    pub department_id: Option<Uuid>,
    #[schema(value_type = Option<Title>)]
    pub specialization: Option<String>,
    #[schema(minimum = 0, maximum = 80)]
    pub years_of_experience: Option<i32>,
    pub consultation_fee: Option<Money>,
}

impl AdminPatch {
    fn parse(self, current: &User, violations: &mut Violations) -> Option<Change> {
        let own = ProfilePatch {
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email,
            username: self.username,
            phone: self.phone,
            gender: self.gender,
            date_of_birth: self.date_of_birth,
            address: self.address,
            blood_type: None,
            allergies: None,
        };
        let mut change = own.parse(current, violations)?;
        change.status = self.status;
        let staff_fields = self.department_id.is_some()
            || self.specialization.is_some()
            || self.years_of_experience.is_some()
            || self.consultation_fee.is_some();
        if self.role.is_some() || staff_fields {
            let role = self.role.unwrap_or(current.role);
            if role == UserRole::Patient && current.role == UserRole::Patient {
                return Some(change);
            }
            // Fields not given keep their current values; the department survives a change
            // between doctor and nurse.
            let department = current.profile.department_id();
            let (specialization, years, fee) = match &current.profile {
                Profile::Doctor(doctor) => (
                    Some(doctor.specialization.clone()),
                    Some(doctor.years_of_experience),
                    Some(doctor.consultation_fee.clone()),
                ),
                _ => (None, None, None),
            };
            let profile = staff_profile(
                role,
                self.department_id.or(department),
                self.specialization.or(specialization).as_deref(),
                self.years_of_experience.or(years),
                self.consultation_fee.or(fee).as_ref(),
                violations,
            )?;
            change.profile = Some(profile);
        }
        Some(change)
    }
}

/// Change a user (admin).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", request_body = AdminPatch,
    security(("bearer" = [])),
    responses((status = 200, body = User), (status = 404, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn patch_user(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Principal,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    Json(body): Json<AdminPatch>,
) -> Result<Json<User>, ApiError> {
    if !caller.is(Role::Admin) {
        return Err(if may_read(&caller, id) {
            ApiError::forbidden("forbidden", "Change your own profile at /api/users/me.")
        } else {
            UserError::NotFound.into()
        });
    }
    let current = accounts::find_user(&state.pool, id).await?;
    let mut violations = Violations::new();
    let change = body.parse(&current, &mut violations);
    let (Some(change), true) = (change, violations.is_empty()) else {
        return Err(violations.into_error());
    };
    let deactivating = change.status == Some(UserStatus::Deactivated);
    let updated = accounts::update_user(
        &state.pool,
        &state.credentials,
        id,
        change,
        &context(&request_id),
    )
    .await?;
    if deactivating {
        state
            .verifier
            .revoke_subject(&id.to_string(), Utc::now().timestamp());
    }
    Ok(Json(updated))
}

/// Deactivate a user (admin): logins end and tokens are refused; history keeps the id.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ProblemDetails)))]
async fn delete_user(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Principal,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if !caller.is(Role::Admin) {
        return Err(if may_read(&caller, id) {
            ApiError::forbidden("forbidden", "Only an administrator deactivates accounts.")
        } else {
            UserError::NotFound.into()
        });
    }
    if caller.user_id().is_ok_and(|own| own == id) {
        return Err(ApiError::conflict(
            "cannot_deactivate_self",
            "You cannot deactivate your own account.",
        ));
    }
    accounts::deactivate(&state.pool, &state.credentials, id, &context(&request_id)).await?;
    state
        .verifier
        .revoke_subject(&id.to_string(), Utc::now().timestamp());
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// 10 to 128 characters; not a well-known password, not the email or username.
    #[schema(
        min_length = 10,
        max_length = 128,
        pattern = r"^(?!([\s\S])\1*$)[^\u0000]*$"
    )]
    pub new_password: String,
}

/// Set a user's password (admin); their logins end.
#[utoipa::path(post, path = "/api/users/{id}/password", tag = "users", request_body = PasswordReset,
    security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn reset_password(
    axum::extract::State(state): axum::extract::State<AppState>,
    _admin: Require<Admin>,
    Path(id): Path<Uuid>,
    Json(body): Json<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    let user = accounts::find_user(&state.pool, id).await?;
    let new =
        Password::parse(&body.new_password, &[&user.email, &user.username]).map_err(|err| {
            ApiError::unprocessable("validation_failed", format!("new_password: {err}"))
        })?;
    accounts::set_password(&state.pool, &state.credentials, id, None, &new).await?;
    Ok(StatusCode::NO_CONTENT)
}
