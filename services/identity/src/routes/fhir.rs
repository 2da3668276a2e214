//! FHIR R4 over what the identity service owns: `Patient` (the patient themself, their care
//! team and administrators), `Practitioner` and `PractitionerRole` (doctors for anyone, as
//! the directory; nurses for the staff), `Organization` (the clinic and its departments)
//! and `Location` (rooms, for the staff). Ids are the platform's own.

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use polyclinic_auth::rules::Person;
use polyclinic_auth::{Asking, Principal, Role};
use polyclinic_fhir::bundle::{overfetched, page_of};
use polyclinic_fhir::resources::{Location, Organization, Patient, Practitioner, PractitionerRole};
use polyclinic_fhir::types::{
    Address, CodeableConcept, Coding, ContactPoint, HumanName, Reference,
};
use polyclinic_fhir::{Base, Fhir, Resource, Search, not_found, searchset};
use polyclinic_http::ApiError;
use polyclinic_http::extract::Path;
use uuid::Uuid;

use crate::AppState;
use crate::accounts;
use crate::domain::department::{Department, DepartmentError, Room};
use crate::domain::user::{Gender, Profile, User, UserError, UserRole, UserStatus};
use crate::repo::departments;
use crate::repo::users::{self, PractitionerFilter, UserFilter};

/// The clinic's own `Organization` id (departments are `partOf` it).
pub const CLINIC_ID: &str = "clinic";

const ORGANIZATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/organization-type";
const PRACTITIONER_ROLE: &str = "http://terminology.hl7.org/CodeSystem/practitioner-role";
const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

const PAGE: usize = 50;
const MAX_PAGE: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/Patient", get(search_patients))
        .route("/Patient/{id}", get(read_patient))
        .route("/Practitioner", get(search_practitioners))
        .route("/Practitioner/{id}", get(read_practitioner))
        .route("/PractitionerRole", get(search_roles))
        .route("/PractitionerRole/{id}", get(read_role))
        .route("/Organization", get(search_organizations))
        .route("/Organization/{id}", get(read_organization))
        .route("/Location", get(search_locations))
        .route("/Location/{id}", get(read_location))
}

fn name(user: &User) -> Vec<HumanName> {
    vec![HumanName::official(&user.first_name, &user.last_name)]
}

fn patient(user: &User) -> Patient {
    let telecom = std::iter::once(ContactPoint {
        system: "email",
        value: user.email.clone(),
    })
    .chain(user.phone.iter().map(|phone| ContactPoint {
        system: "phone",
        value: phone.clone(),
    }))
    .collect();
    Patient {
        id: user.id.to_string(),
        active: user.status == UserStatus::Active,
        name: name(user),
        telecom,
        gender: user.gender.map(|gender| match gender {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::Other => "other",
            Gender::Undisclosed => "unknown",
        }),
        birth_date: user.date_of_birth,
        address: user
            .address
            .iter()
            .map(|text| Address { text: text.clone() })
            .collect(),
    }
}

fn practitioner(user: &User) -> Practitioner {
    Practitioner {
        id: user.id.to_string(),
        active: user.status == UserStatus::Active,
        name: name(user),
    }
}

/// A doctor's or a nurse's role; none for anyone else.
fn role(user: &User) -> Option<PractitionerRole> {
    let (code, department_id, specialty) = match &user.profile {
        Profile::Doctor(doctor) => (
            Coding::new(PRACTITIONER_ROLE, "doctor", Some("Doctor")),
            doctor.department_id,
            vec![CodeableConcept::text(&doctor.specialization)],
        ),
        Profile::Nurse(nurse) => (
            Coding::new(PRACTITIONER_ROLE, "nurse", Some("Nurse")),
            nurse.department_id,
            Vec::new(),
        ),
        Profile::Admin {} | Profile::Patient(_) => return None,
    };
    Some(PractitionerRole {
        id: user.id.to_string(),
        active: user.status == UserStatus::Active,
        practitioner: Reference::to("Practitioner", user.id)
            .with_display(format!("{} {}", user.first_name, user.last_name)),
        organization: Reference::to("Organization", department_id),
        code: vec![CodeableConcept::coded(code)],
        specialty,
    })
}

fn clinic(state: &AppState) -> Organization {
    Organization {
        id: CLINIC_ID.to_owned(),
        active: true,
        kind: vec![CodeableConcept::coded(Coding::new(
            ORGANIZATION_TYPE,
            "prov",
            Some("Healthcare Provider"),
        ))],
        name: state.clinic_name.to_string(),
        part_of: None,
    }
}

fn department(department: &Department) -> Organization {
    Organization {
        id: department.id.to_string(),
        active: true,
        kind: vec![CodeableConcept::coded(Coding::new(
            ORGANIZATION_TYPE,
            "dept",
            Some("Hospital Department"),
        ))],
        name: department.name.clone(),
        part_of: Some(Reference::to("Organization", CLINIC_ID)),
    }
}

fn location(room: &Room) -> Location {
    Location {
        id: room.id.to_string(),
        status: "active",
        name: room.name.clone(),
        mode: "instance",
        physical_type: CodeableConcept::coded(Coding::new(PHYSICAL_TYPE, "ro", Some("Room"))),
        managing_organization: Reference::to("Organization", room.department_id),
    }
}

/// A path id that is not one of ours names nothing: 404, as for an unknown one.
fn uuid_of(id: &str, resource_type: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| not_found(resource_type))
}

fn is_staff(caller: Option<&Principal>) -> bool {
    caller.is_some_and(|caller| caller.roles.any(&[Role::Admin, Role::Doctor, Role::Nurse]))
}

/// Whether the caller may see patient `patient_id`'s profile: themself, an administrator,
/// or a doctor or nurse who cares for them (a scheduled or completed appointment, asked of
/// the appointments service with the caller's token).
async fn may_see_patient(
    state: &AppState,
    asking: &Asking<Person>,
    patient_id: Uuid,
) -> Result<bool, ApiError> {
    let caller = asking.user_id()?;
    if asking.is(Role::Admin) {
        return Ok(true);
    }
    if asking.is(Role::Patient) {
        return Ok(caller == patient_id);
    }
    if asking.roles.any(&[Role::Doctor, Role::Nurse]) {
        return state
            .care
            .cares_for(caller, patient_id, asking.call())
            .await
            .map_err(|err| {
                ApiError::dependency_unavailable(format!(
                    "Whether you care for this patient cannot be checked now: {err}"
                ))
            });
    }
    Ok(false)
}

async fn visible_patient(
    state: &AppState,
    asking: &Asking<Person>,
    patient_id: Uuid,
) -> Result<Option<User>, ApiError> {
    if !may_see_patient(state, asking, patient_id).await? {
        return Ok(None);
    }
    match accounts::find_user(&state.pool, patient_id).await {
        Ok(user) if user.role == UserRole::Patient => Ok(Some(user)),
        Ok(_) | Err(UserError::NotFound) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

async fn read_patient(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let id = uuid_of(&id, "Patient")?;
    let user = visible_patient(&state, &asking, id)
        .await?
        .ok_or_else(|| not_found("Patient"))?;
    Ok(Fhir(patient(&user).into()))
}

/// `_id` finds one patient the caller may see; without it a patient finds themself and an
/// administrator every patient. A doctor or nurse names the patient (`_id`): their patients
/// are whoever their appointments say.
async fn search_patients(
    State(state): State<AppState>,
    asking: Asking<Person>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["_id"])?;
    let count = search.count(PAGE, MAX_PAGE)?;
    let wanted = match search.token("_id")? {
        Some(id) => Some(Uuid::parse_str(id).ok()),
        None if asking.is(Role::Patient) => Some(Some(asking.user_id()?)),
        None => None,
    };
    let (users, next) = match wanted {
        // A malformed id matches nothing.
        Some(None) => (Vec::new(), None),
        Some(Some(id)) => (
            visible_patient(&state, &asking, id)
                .await?
                .into_iter()
                .collect(),
            None,
        ),
        None if asking.is(Role::Admin) => {
            let users = users::list_users(
                &state.pool,
                &UserFilter {
                    role: Some(UserRole::Patient),
                    after: search.cursor_id()?,
                    limit: count as i64 + 1,
                    ..UserFilter::default()
                },
            )
            .await?;
            overfetched(users, count, |user| user.id.to_string())
        }
        None => {
            return Err(ApiError::bad_request(
                "patient_search_needs_id",
                "Name the patient with `_id`: a doctor's or nurse's patients are those of their appointments.",
            ));
        }
    };
    let resources = users.iter().map(|user| patient(user).into()).collect();
    Ok(searchset(&base, "Patient", &search, resources, next))
}

/// A practitioner by id: a doctor for anyone, a nurse for the staff.
async fn find_practitioner(
    state: &AppState,
    caller: Option<&Principal>,
    id: &str,
    resource_type: &str,
) -> Result<User, ApiError> {
    let id = uuid_of(id, resource_type)?;
    let user = match accounts::find_user(&state.pool, id).await {
        Ok(user) => user,
        Err(UserError::NotFound) => return Err(not_found(resource_type)),
        Err(err) => return Err(err.into()),
    };
    let visible = match user.role {
        UserRole::Doctor => true,
        UserRole::Nurse => is_staff(caller),
        UserRole::Admin | UserRole::Patient => false,
    };
    if visible {
        Ok(user)
    } else {
        Err(not_found(resource_type))
    }
}

async fn read_practitioner(
    State(state): State<AppState>,
    caller: Option<Principal>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let user = find_practitioner(&state, caller.as_ref(), &id, "Practitioner").await?;
    Ok(Fhir(practitioner(&user).into()))
}

async fn read_role(
    State(state): State<AppState>,
    caller: Option<Principal>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let user = find_practitioner(&state, caller.as_ref(), &id, "PractitionerRole").await?;
    let role = role(&user).ok_or_else(|| not_found("PractitionerRole"))?;
    Ok(Fhir(role.into()))
}

async fn practitioners(
    state: &AppState,
    caller: Option<&Principal>,
    search: &Search,
    mut filter: PractitionerFilter,
) -> Result<(Vec<User>, Option<String>), ApiError> {
    let count = search.count(PAGE, MAX_PAGE)?;
    filter.with_nurses = is_staff(caller);
    filter.after = search.cursor_id()?;
    filter.limit = count as i64 + 1;
    let users = users::list_practitioners(&state.pool, &filter).await?;
    Ok(overfetched(users, count, |user| user.id.to_string()))
}

/// An id parameter that is not one of ours: a search that matches nothing.
fn matches_nothing(id: Option<&str>) -> (Option<Uuid>, bool) {
    match id {
        None => (None, false),
        Some(id) => match Uuid::parse_str(id) {
            Ok(id) => (Some(id), false),
            Err(_) => (None, true),
        },
    }
}

async fn search_practitioners(
    State(state): State<AppState>,
    caller: Option<Principal>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["_id", "name"])?;
    let (id, nothing) = matches_nothing(search.token("_id")?);
    let filter = PractitionerFilter {
        id,
        name: search.one("name")?.map(str::to_owned),
        ..PractitionerFilter::default()
    };
    let (users, next) = if nothing {
        (Vec::new(), None)
    } else {
        practitioners(&state, caller.as_ref(), &search, filter).await?
    };
    let resources = users.iter().map(|user| practitioner(user).into()).collect();
    Ok(searchset(&base, "Practitioner", &search, resources, next))
}

async fn search_roles(
    State(state): State<AppState>,
    caller: Option<Principal>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["practitioner", "specialty", "organization"])?;
    let filter = PractitionerFilter {
        id: search.reference("practitioner", "Practitioner")?,
        department_id: search.reference("organization", "Organization")?,
        specialization: search.token("specialty")?.map(str::to_owned),
        ..PractitionerFilter::default()
    };
    let (users, next) = practitioners(&state, caller.as_ref(), &search, filter).await?;
    let resources = users.iter().filter_map(role).map(Resource::from).collect();
    Ok(searchset(
        &base,
        "PractitionerRole",
        &search,
        resources,
        next,
    ))
}

async fn read_organization(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    if id == CLINIC_ID {
        return Ok(Fhir(clinic(&state).into()));
    }
    let id = uuid_of(&id, "Organization")?;
    match departments::find_department(&state.pool, id).await {
        Ok(found) => Ok(Fhir(department(&found).into())),
        Err(DepartmentError::NotFound) => Err(not_found("Organization")),
        Err(err) => Err(err.into()),
    }
}

/// The clinic first, then its departments in id order; `partof=Organization/clinic` the
/// departments alone.
async fn search_organizations(
    State(state): State<AppState>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["_id", "partof"])?;
    let count = search.count(PAGE, MAX_PAGE)?;
    let id = search.token("_id")?;
    let part_of = search.one("partof")?;
    let only_departments = match part_of {
        None => false,
        Some(value) if value == CLINIC_ID || value.ends_with("Organization/clinic") => true,
        // Departments have no parts.
        Some(_) => return Ok(searchset(&base, "Organization", &search, Vec::new(), None)),
    };
    let mut all: Vec<Organization> = Vec::new();
    if !only_departments {
        all.push(clinic(&state));
    }
    let mut found = departments::list_departments(&state.pool).await?;
    found.sort_by_key(|department| department.id);
    all.extend(found.iter().map(department));
    all.retain(|organization| id.is_none_or(|id| organization.id == id));
    // Keyed so that the clinic comes first and the departments follow by id: a page does
    // not shift when a department is added or removed.
    let keyed: Vec<(String, Organization)> = all
        .into_iter()
        .map(|organization| {
            let key = if organization.id == CLINIC_ID {
                "0".to_owned()
            } else {
                format!("1{}", organization.id)
            };
            (key, organization)
        })
        .collect();
    let (page, next) = page_of(keyed, count, search.cursor(), |(key, _)| key.clone());
    let resources = page
        .into_iter()
        .map(|(_, organization)| organization.into())
        .collect();
    Ok(searchset(&base, "Organization", &search, resources, next))
}

fn require_staff(caller: &Principal) -> Result<(), ApiError> {
    if is_staff(Some(caller)) {
        Ok(())
    } else {
        Err(not_found("Location"))
    }
}

async fn read_location(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    require_staff(&caller)?;
    let id = uuid_of(&id, "Location")?;
    match departments::find_room(&state.pool, id).await {
        Ok(room) => Ok(Fhir(location(&room).into())),
        Err(DepartmentError::RoomNotFound) => Err(not_found("Location")),
        Err(err) => Err(err.into()),
    }
}

async fn search_locations(
    State(state): State<AppState>,
    caller: Principal,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    require_staff(&caller)?;
    let search = Search::parse(uri.query(), &["organization"])?;
    let count = search.count(PAGE, MAX_PAGE)?;
    let department_id = search.reference("organization", "Organization")?;
    let mut rooms = departments::list_rooms(&state.pool, department_id).await?;
    rooms.sort_by_key(|room| room.id);
    let (page, next) = page_of(rooms, count, search.cursor(), |room| room.id.to_string());
    let resources = page.iter().map(|room| location(room).into()).collect();
    Ok(searchset(&base, "Location", &search, resources, next))
}
