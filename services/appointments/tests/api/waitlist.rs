//! Waitlists end to end through the gateway: freed slots offered to the first in line,
//! claimed and paid like any reservation, passed on when they lapse or are declined; the
//! line's rules; and the races (several slots freed at once, two instances matching, double
//! claims, a claim against the expiry), checked against the database at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use polyclinic_appointments::AppState;
use polyclinic_appointments::booking::Booking;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_testing::{Clinic, Service, TestPlatform, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::booking::{Bus, announced, id, platform};

/// The appointments service's flows as another instance would run them: pools of its own.
pub async fn instance(platform: &TestPlatform) -> Arc<Booking> {
    let pool = polyclinic_db::pool(&platform.config, Service::Appointments).unwrap();
    let verifier = Verifier::new(VerifierSettings::from_config(
        &platform.config,
        Service::Appointments,
    ));
    AppState::new(&platform.config, pool, verifier)
        .await
        .unwrap()
        .booking
}

/// A local date `days` ahead (the test clinic runs in UTC) and the `hour`'s slot on it.
fn slot_at(days: i64, hour: u32) -> (NaiveDate, String) {
    let date = (Utc::now() + Duration::days(days)).date_naive();
    let start = date
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (date, start)
}

/// Joins `doctor`'s line as `patient` for `date` from `earliest` to `latest` o'clock.
async fn join(
    platform: &TestPlatform,
    patient: &str,
    doctor: &str,
    date: NaiveDate,
    hours: (u32, u32),
) -> polyclinic_testing::Reply {
    platform
        .book(
            Method::POST,
            "/api/waitlist",
            Some(patient),
            Some(json!({"doctor_id": doctor, "from": date, "to": date,
                        "earliest": format!("{:02}:00", hours.0), "latest": format!("{:02}:00", hours.1)})),
        )
        .await
}

async fn mine(platform: &TestPlatform, patient: &str) -> Vec<Value> {
    let reply = platform
        .book(Method::GET, "/api/waitlist/mine", Some(patient), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body.as_array().unwrap().clone()
}

async fn claim(
    platform: &TestPlatform,
    patient: &str,
    appointment: &str,
) -> polyclinic_testing::Reply {
    platform
        .book(
            Method::POST,
            &format!("/api/appointments/{appointment}/claim"),
            Some(patient),
            None,
        )
        .await
}

/// Waits until `patient`'s entry holds an offer; returns the offered appointment's id.
async fn offer_of(platform: &TestPlatform, booking: &Booking, patient: &str) -> String {
    eventually("an offer", || async {
        booking.offer_openings(Utc::now()).await.unwrap();
        let entries = mine(platform, patient).await;
        entries
            .iter()
            .find_map(|entry| entry["offer"]["appointment_id"].as_str().map(str::to_owned))
    })
    .await
}

/// A paid appointment of a patient of its own in the `hour`'s slot, `days` ahead.
async fn booked(
    platform: &TestPlatform,
    clinic: &Clinic,
    who: &str,
    days: i64,
    hour: u32,
) -> (String, Value) {
    let (_, token) = platform
        .register_patient(&format!("{who}@waitlist.example"))
        .await;
    let (_, starts) = slot_at(days, hour);
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts)
        .await;
    (token, paid)
}

async fn a_freed_slot_goes_to_the_first_in_line_who_claims_and_pays_it(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let booking = instance(&platform).await;
    let (holder, visit) = booked(&platform, &clinic, "holder", 3, 10).await;
    let (date, starts) = slot_at(3, 10);
    let (_, first) = platform.register_patient("first@waitlist.example").await;
    let (_, second) = platform.register_patient("second@waitlist.example").await;
    let (_, outsider) = platform.register_patient("outsider@waitlist.example").await;
    for patient in [&first, &second] {
        let joined = join(&platform, patient, &clinic.doctor_id, date, (10, 11)).await;
        assert_eq!(joined.status, StatusCode::CREATED, "{:?}", joined.body);
        assert_eq!(joined.body["status"], "WAITING");
    }
    assert_eq!(mine(&platform, &first).await[0]["position"], 1);
    assert_eq!(mine(&platform, &second).await[0]["position"], 2);
    let line = platform
        .book(
            Method::GET,
            &format!("/api/waitlist?doctor_id={}", clinic.doctor_id),
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(
        line.body.as_array().unwrap().len(),
        2,
        "the admin sees the line"
    );

    // The holder cancels: the slot is offered to the first in line, held from everyone else.
    let cancelled = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/cancel", id(&visit)),
            Some(&holder),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let offered = offer_of(&platform, &booking, &first).await;
    let entry = &mine(&platform, &first).await[0];
    assert_eq!(entry["status"], "OFFERED");
    assert_eq!(
        entry["offer"]["starts_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        starts.parse::<DateTime<Utc>>().unwrap()
    );
    let appointment = platform
        .appointment_becomes(&first, &offered, "OFFERED")
        .await;
    assert!(appointment["hold_expires_at"].is_string());
    assert!(mine(&platform, &second).await[0]["offer"].is_null());
    let taken = platform
        .book(
            Method::POST,
            "/api/appointments",
            Some(&outsider),
            Some(json!({"doctor_id": clinic.doctor_id, "starts_at": starts})),
        )
        .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "slot_taken")
    );
    assert_eq!(
        claim(&platform, &second, &offered).await.status,
        StatusCode::NOT_FOUND,
        "not theirs"
    );

    // Claimed, it books and pays like any reservation.
    let claimed = claim(&platform, &first, &offered).await;
    assert_eq!(claimed.status, StatusCode::OK, "{:?}", claimed.body);
    assert_eq!(claimed.body["status"], "PENDING");
    assert!(claimed.body["payment"]["client_secret"].is_string());
    let paid = platform
        .pay(
            &first,
            claimed.body["payment"]["id"].as_str().unwrap(),
            "pm_card_visa",
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK);
    platform.appointment_becomes(&first, &offered, "PAID").await;
    assert_eq!(mine(&platform, &first).await[0]["status"], "BOOKED");
    assert!(mine(&platform, &first).await[0]["position"].is_null());
    assert_eq!(
        mine(&platform, &second).await[0]["position"],
        1,
        "next in line"
    );
    assert_eq!(
        announced(&platform, &offered).await,
        ["offered", "claimed", "paid"]
    );
}

async fn an_unclaimed_offer_passes_on_and_a_declined_one_frees_the_slot(bus: Bus) {
    let platform = platform(bus).await;
    let clinic = platform.clinic().await;
    let booking = instance(&platform).await;
    let (holder, visit) = booked(&platform, &clinic, "holder", 4, 9).await;
    let (date, starts) = slot_at(4, 9);
    let (_, first) = platform.register_patient("lapse-1@waitlist.example").await;
    let (_, second) = platform.register_patient("lapse-2@waitlist.example").await;
    for patient in [&first, &second] {
        assert_eq!(
            join(&platform, patient, &clinic.doctor_id, date, (9, 10))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    platform
        .book(
            Method::POST,
            &format!("/api/appointments/{}/cancel", id(&visit)),
            Some(&holder),
            None,
        )
        .await;
    let to_first = offer_of(&platform, &booking, &first).await;

    // Sixteen minutes later the offer has lapsed: the slot passes to the next in line.
    assert!(
        booking
            .expire_offers(Utc::now() + Duration::minutes(16))
            .await
            .unwrap()
            >= 1
    );
    let to_second = offer_of(&platform, &booking, &second).await;
    assert_ne!(to_first, to_second);
    let late = claim(&platform, &first, &to_first).await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::CONFLICT, "offer_expired")
    );
    let entry = &mine(&platform, &first).await[0];
    assert_eq!(entry["status"], "WAITING", "still in line for other slots");
    assert_eq!(
        announced(&platform, &to_first).await,
        ["offered", "offer_expired"]
    );

    // The second declines: nobody else waits for it who was not offered it, so it is free.
    let declined = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{to_second}/cancel"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(declined.status, StatusCode::OK, "{:?}", declined.body);
    assert_eq!(declined.body["status"], "CANCELLED");
    booking.offer_openings(Utc::now()).await.unwrap();
    assert!(
        mine(&platform, &first).await[0]["offer"].is_null(),
        "not offered the same slot twice"
    );
    assert!(
        platform
            .free_slots(&clinic.doctor_id, Some(&date.to_string()))
            .await
            .contains(&starts)
    );
    let events = announced(&platform, &to_second).await;
    assert_eq!(events, ["offered", "offer_expired"]);
}

crate::on_both_buses!(
    a_freed_slot_goes_to_the_first_in_line_who_claims_and_pays_it,
    an_unclaimed_offer_passes_on_and_a_declined_one_frees_the_slot,
);

#[tokio::test]
async fn a_patients_line_keeps_its_rules() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let booking = instance(&platform).await;
    let (_, ada) = platform.register_patient("rules@waitlist.example").await;
    let (date, _) = slot_at(5, 0);
    let doctor = clinic.doctor_id.clone();
    let first = join(&platform, &ada, &doctor, date, (8, 9)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = join(&platform, &ada, &doctor, date, (8, 12)).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "already_waiting")
    );
    for hours in [(12, 13), (14, 15)] {
        assert_eq!(
            join(&platform, &ada, &doctor, date, hours).await.status,
            StatusCode::CREATED
        );
    }
    let fourth = join(&platform, &ada, &doctor, date, (16, 17)).await;
    assert_eq!(
        (fourth.status, fourth.code()),
        (StatusCode::CONFLICT, "waitlist_limit_reached")
    );
    let past = join(
        &platform,
        &ada,
        &doctor,
        date - Duration::days(10),
        (16, 17),
    )
    .await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    let nobody = join(&platform, &ada, &Uuid::now_v7().to_string(), date, (16, 17)).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    let unknown = platform
        .book(Method::POST, "/api/waitlist", Some(&ada),
            Some(json!({"specialization": "astrology", "from": date, "to": date, "earliest": "08:00", "latest": "09:00"})))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "unknown_specialization")
    );

    // Free slots in a window are offered at once; leaving withdraws the offer.
    let offered = offer_of(&platform, &booking, &ada).await;
    let entry = mine(&platform, &ada)
        .await
        .into_iter()
        .find(|entry| entry["offer"]["appointment_id"] == offered)
        .unwrap();
    let left = platform
        .book(
            Method::DELETE,
            &format!("/api/waitlist/{}", id(&entry)),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT);
    platform
        .appointment_becomes(&ada, &offered, "CANCELLED")
        .await;
    let gone = platform
        .book(
            Method::DELETE,
            &format!("/api/waitlist/{}", id(&entry)),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::CONFLICT, "waitlist_entry_closed")
    );

    // Entries end with their range: a week on, open offers lapse with their entries, and
    // waiting entries end.
    let week_on = Utc::now() + Duration::days(7);
    booking.expire_offers(week_on).await.unwrap();
    booking.end_lapsed_entries(week_on).await.unwrap();
    let statuses: BTreeSet<String> = mine(&platform, &ada)
        .await
        .iter()
        .map(|entry| entry["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["ENDED", "LEFT"].map(str::to_owned).into_iter().collect(),
        "out of line once their range is over"
    );
}

#[tokio::test]
async fn a_specialization_line_is_offered_any_of_its_doctors_free_slots() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let booking = instance(&platform).await;
    let (_, ada) = platform.register_patient("special@waitlist.example").await;
    let directory = platform
        .call(
            Method::GET,
            &format!("/api/doctors/{}", clinic.doctor_id),
            None,
            None,
        )
        .await;
    let name = directory.body["specialization"]
        .as_str()
        .unwrap()
        .to_owned();
    let (date, _) = slot_at(6, 0);
    let joined = platform
        .book(Method::POST, "/api/waitlist", Some(&ada),
            Some(json!({"specialization": name.to_uppercase(), "from": date, "to": date, "earliest": "07:00", "latest": "08:00"})))
        .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{:?}", joined.body);
    let offered = offer_of(&platform, &booking, &ada).await;
    let appointment = platform
        .appointment_becomes(&ada, &offered, "OFFERED")
        .await;
    assert_eq!(appointment["doctor_id"], clinic.doctor_id);
}

/// Many patients in one line, three slots freed at once, two instances matching, double
/// claims and a claim racing the expiry: each slot ends with at most one patient, every
/// offer is accounted for, and offers went down the line in the order patients joined.
#[tokio::test]
async fn racing_frees_claims_and_expiries_on_two_instances_give_each_slot_to_one_patient_in_order()
{
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (one, two) = (instance(&platform).await, instance(&platform).await);
    let days = 8;
    let mut holders = Vec::new();
    for hour in [13, 14, 15] {
        holders.push(
            booked(
                &platform,
                &clinic,
                &format!("racing-holder-{hour}"),
                days,
                hour,
            )
            .await,
        );
    }
    let (date, _) = slot_at(days, 13);
    let mut waiting = Vec::new();
    for n in 0..12 {
        let (user, token) = platform
            .register_patient(&format!("racing-{n}@waitlist.example"))
            .await;
        let joined = join(&platform, &token, &clinic.doctor_id, date, (13, 16)).await;
        assert_eq!(joined.status, StatusCode::CREATED, "{:?}", joined.body);
        waiting.push((user["id"].as_str().unwrap().to_owned(), token));
    }

    // The three holders cancel at once; both instances match at once.
    let mut cancels = tokio::task::JoinSet::new();
    for (token, visit) in &holders {
        let url = platform.url(
            Service::Gateway,
            &format!("/api/appointments/{}/cancel", id(visit)),
        );
        let (client, token) = (platform.client().clone(), token.clone());
        cancels.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    assert!(
        cancels
            .join_all()
            .await
            .iter()
            .all(|status| status.is_success())
    );
    let now = Utc::now();
    let (a, b) = tokio::join!(one.offer_openings(now), two.offer_openings(now));
    a.unwrap();
    b.unwrap();
    let offered = |n: usize| {
        let platform = &platform;
        let token = waiting[n].1.clone();
        async move {
            mine(platform, &token).await[0]["offer"]["appointment_id"]
                .as_str()
                .map(str::to_owned)
        }
    };
    let mut offers = Vec::new();
    for n in 0..12 {
        offers.push(offered(n).await);
    }
    assert!(
        offers[..3].iter().all(Option::is_some),
        "the first three: {offers:?}"
    );
    assert!(
        offers[3..].iter().all(Option::is_none),
        "nobody else: {offers:?}"
    );

    // The first claims twice at once: one reservation.
    let first = offers[0].clone().unwrap();
    let (x, y) = tokio::join!(
        claim(&platform, &waiting[0].1, &first),
        claim(&platform, &waiting[0].1, &first)
    );
    let statuses = [x.status, y.status];
    assert!(
        statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::CONFLICT),
        "{statuses:?}"
    );

    // The second claims while both instances expire offers as if 16 minutes had passed:
    // either the claim or the expiry wins, never both.
    let second = offers[1].clone().unwrap();
    let later = Utc::now() + Duration::minutes(16);
    let (claimed, expired_one, expired_two) = tokio::join!(
        claim(&platform, &waiting[1].1, &second),
        one.expire_offers(later),
        two.expire_offers(later)
    );
    let expired = expired_one.unwrap() + expired_two.unwrap();
    let second_status = platform
        .appointment_becomes(
            &waiting[1].1,
            &second,
            if claimed.status == StatusCode::OK {
                "PENDING"
            } else {
                "EXPIRED"
            },
        )
        .await;
    assert_eq!(
        expired,
        if claimed.status == StatusCode::OK {
            1
        } else {
            2
        },
        "the third's offer lapsed, and the second's unless claimed first: {second_status}"
    );
    // The lapsed slots go down the line, in order, to those not offered them yet.
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let open = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from appointments.waitlist_offers where status = 'OPEN'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    eventually("the lapsed slots offered again", || async {
        let (a, b) = tokio::join!(one.offer_openings(later), two.offer_openings(later));
        a.unwrap();
        b.unwrap();
        (open(pool.clone()).await == expired as i64).then_some(())
    })
    .await;

    // What the database holds: one active appointment per slot at most, every offer closed
    // or open on an OFFERED appointment, first offers in the order of joining, and no
    // entry offered one slot twice.
    let active: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "select starts_at, count(*) from appointments.appointments
         where doctor_id = $1::uuid and status in ('OFFERED', 'PENDING', 'PAID', 'SCHEDULED')
         group by starts_at",
    )
    .bind(&clinic.doctor_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(active.iter().all(|(_, count)| *count == 1), "{active:?}");
    let offers: Vec<(Uuid, Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "select o.entry_id, e.patient_id, o.status, a.status, o.starts_at
         from appointments.waitlist_offers o
         join appointments.waitlist_entries e on e.id = o.entry_id
         join appointments.appointments a on a.id = o.appointment_id
         order by o.created_at, o.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (_, _, offer, appointment, _) in &offers {
        let consistent = matches!(
            (offer.as_str(), appointment.as_str()),
            ("OPEN", "OFFERED")
                | ("CLAIMED", "PENDING" | "PAID")
                | ("EXPIRED", "EXPIRED")
                | ("DECLINED" | "WITHDRAWN", "CANCELLED")
        );
        assert!(consistent, "offer {offer} with appointment {appointment}");
    }
    let order: Vec<String> = waiting.iter().map(|(user, _)| user.clone()).collect();
    let mut first_offered: Vec<String> = Vec::new();
    for (_, patient, _, _, _) in &offers {
        let patient = patient.to_string();
        if !first_offered.contains(&patient) {
            first_offered.push(patient);
        }
    }
    assert_eq!(
        first_offered,
        order[..first_offered.len()],
        "offers went down the line in the order patients joined"
    );
    let mut slots_per_entry: BTreeMap<Uuid, BTreeSet<DateTime<Utc>>> = BTreeMap::new();
    for (entry, _, _, _, starts_at) in &offers {
        assert!(
            slots_per_entry
                .entry(*entry)
                .or_default()
                .insert(*starts_at),
            "{entry} was offered {starts_at} twice"
        );
    }
    assert_eq!(offers.len(), 3 + expired, "{offers:?}");
}

#[tokio::test]
async fn a_slot_that_freed_while_the_patient_held_another_offer_is_offered_once_they_are_back_in_line()
 {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let booking = instance(&platform).await;
    let (first_holder, first) = booked(&platform, &clinic, "twice-holder-1", 6, 9).await;
    let (second_holder, second) = booked(&platform, &clinic, "twice-holder-2", 6, 10).await;
    let (date, _) = slot_at(6, 9);
    let (_, ada) = platform.register_patient("twice@waitlist.example").await;
    assert_eq!(
        join(&platform, &ada, &clinic.doctor_id, date, (9, 11))
            .await
            .status,
        StatusCode::CREATED
    );
    let cancel = |token: String, visit: Value| {
        let platform = &platform;
        async move {
            let reply = platform
                .book(
                    Method::POST,
                    &format!("/api/appointments/{}/cancel", id(&visit)),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK);
        }
    };
    cancel(first_holder, first).await;
    let nine = offer_of(&platform, &booking, &ada).await;
    // The ten o'clock slot frees while Ada holds the nine o'clock one: nobody else waits.
    cancel(second_holder, second).await;
    booking.offer_openings(Utc::now()).await.unwrap();
    // She turns nine o'clock down: back in line, she is offered ten o'clock.
    let declined = platform
        .book(
            Method::POST,
            &format!("/api/appointments/{nine}/cancel"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(declined.status, StatusCode::OK);
    let ten = offer_of(&platform, &booking, &ada).await;
    assert_ne!(ten, nine);
    let offer = platform.appointment_becomes(&ada, &ten, "OFFERED").await;
    assert_eq!(
        offer["starts_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        slot_at(6, 10).1.parse::<DateTime<Utc>>().unwrap()
    );
}
