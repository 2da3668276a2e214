//! Users and their role profiles.

use chrono::{DateTime, NaiveDate, Utc};
use polyclinic_http::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::fields::{Address, Email, Money, PersonName, Phone, Title, Username};

/// The role of a person. Service clients are not users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserRole {
    Admin,
    Doctor,
    Nurse,
    Patient,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "ADMIN",
            UserRole::Doctor => "DOCTOR",
            UserRole::Nurse => "NURSE",
            UserRole::Patient => "PATIENT",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            UserRole::Admin,
            UserRole::Doctor,
            UserRole::Nurse,
            UserRole::Patient,
        ]
        .into_iter()
        .find(|role| role.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    Active,
    /// Cannot log in; tokens are refused. The row stays so that history keeps its id.
    Deactivated,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "ACTIVE",
            UserStatus::Deactivated => "DEACTIVATED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ACTIVE" => Some(UserStatus::Active),
            "DEACTIVATED" => Some(UserStatus::Deactivated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Gender {
    Female,
    Male,
    Other,
    Undisclosed,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "FEMALE",
            Gender::Male => "MALE",
            Gender::Other => "OTHER",
            Gender::Undisclosed => "UNDISCLOSED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Gender::Female,
            Gender::Male,
            Gender::Other,
            Gender::Undisclosed,
        ]
        .into_iter()
        .find(|gender| gender.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum BloodType {
    #[serde(rename = "A+")]
    APositive,
    #[serde(rename = "A-")]
    ANegative,
    #[serde(rename = "B+")]
    BPositive,
    #[serde(rename = "B-")]
    BNegative,
    #[serde(rename = "AB+")]
    AbPositive,
    #[serde(rename = "AB-")]
    AbNegative,
    #[serde(rename = "O+")]
    OPositive,
    #[serde(rename = "O-")]
    ONegative,
}

impl BloodType {
    const ALL: [(BloodType, &'static str); 8] = [
        (BloodType::APositive, "A+"),
        (BloodType::ANegative, "A-"),
        (BloodType::BPositive, "B+"),
        (BloodType::BNegative, "B-"),
        (BloodType::AbPositive, "AB+"),
        (BloodType::AbNegative, "AB-"),
        (BloodType::OPositive, "O+"),
        (BloodType::ONegative, "O-"),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("", |(_, name)| name)
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(kind, _)| *kind)
    }
}

/// A patient's allergy list: at most 50 entries of 1 to 100 characters, duplicates removed.
pub fn parse_allergies(items: &[String]) -> Result<Vec<String>, String> {
    if items.len() > 50 {
        return Err("at most 50 allergies".to_owned());
    }
    let mut allergies: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = Title::parse(item).map_err(|err| format!("each allergy {err}"))?;
        if !allergies
            .iter()
            .any(|known| known.eq_ignore_ascii_case(item.as_str()))
        {
            allergies.push(item.into_inner());
        }
    }
    Ok(allergies)
}

/// Years of experience: 0 to 80.
pub fn parse_experience(years: i32) -> Result<i32, String> {
    if (0..=80).contains(&years) {
        Ok(years)
    } else {
        Err("must be between 0 and 80".to_owned())
    }
}

/// A doctor's profile.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DoctorProfile {
    pub specialization: String,
    pub years_of_experience: i32,
    pub department_id: Uuid,
    pub consultation_fee: Money,
}

/// A nurse's profile.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NurseProfile {
    pub department_id: Uuid,
}

/// A patient's profile. Nothing clinical lives here: what a patient declares about their
/// health (allergies, blood type) goes to their medical record ([`Declaration`]), where the
/// prescribing check and the care team read it and administrators do not.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PatientProfile {}

/// What a patient declares about their health at registration or on their profile: handed
/// to the prescriptions service to become patient-reported facts of their record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declaration {
    pub allergies: Vec<String>,
    pub blood_type: Option<BloodType>,
}

impl Declaration {
    pub fn is_empty(&self) -> bool {
        self.allergies.is_empty() && self.blood_type.is_none()
    }
}

/// The role-specific part of a user: exactly one, matching the role.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Admin {},
    Doctor(DoctorProfile),
    Nurse(NurseProfile),
    Patient(PatientProfile),
}

impl Profile {
    pub fn role(&self) -> UserRole {
        match self {
            Profile::Admin {} => UserRole::Admin,
            Profile::Doctor(_) => UserRole::Doctor,
            Profile::Nurse(_) => UserRole::Nurse,
            Profile::Patient(_) => UserRole::Patient,
        }
    }

    /// The department of a doctor or nurse.
    pub fn department_id(&self) -> Option<Uuid> {
        match self {
            Profile::Doctor(doctor) => Some(doctor.department_id),
            Profile::Nurse(nurse) => Some(nurse.department_id),
            _ => None,
        }
    }
}

/// A user to be created, every field already valid.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: Email,
    pub username: Username,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub phone: Option<Phone>,
    pub gender: Option<Gender>,
    pub date_of_birth: Option<NaiveDate>,
    pub address: Option<Address>,
    pub profile: Profile,
}

/// A user as stored: the response body of every user route.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub role: UserRole,
    pub status: UserStatus,
    pub email: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub gender: Option<Gender>,
    pub date_of_birth: Option<NaiveDate>,
    pub address: Option<String>,
    /// One key named after the role (`doctor`, `nurse`, `patient`, `admin`) with that
    /// role's profile.
    #[serde(flatten)]
    pub profile: Profile,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a user operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no such user")]
    NotFound,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this username is taken")]
    UsernameTaken,
    #[error("no such department")]
    UnknownDepartment,
    #[error("the current password is not correct")]
    WrongPassword,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => ApiError::not_found("user_not_found", err.to_string()),
            UserError::EmailTaken => ApiError::conflict("email_taken", err.to_string()),
            UserError::UsernameTaken => ApiError::conflict("username_taken", err.to_string()),
            UserError::UnknownDepartment => {
                ApiError::not_found("unknown_department", err.to_string())
            }
            UserError::WrongPassword => {
                ApiError::forbidden("current_password_incorrect", err.to_string())
            }
            UserError::Invalid(message) => ApiError::unprocessable("validation_failed", message),
            UserError::Unexpected(source) => ApiError::internal(source),
        }
    }
}
