//! The database itself refuses double bookings, whatever the application does.

use polyclinic_testing::{Service, TestPlatform};
use uuid::Uuid;

struct Booking {
    doctor: Uuid,
    room: Option<Uuid>,
    nurse: Option<Uuid>,
    status: &'static str,
    starts: &'static str,
    ends: &'static str,
}

async fn insert(pool: &sqlx::PgPool, booking: &Booking) -> Result<Uuid, String> {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into appointments.appointments
             (id, patient_id, doctor_id, room_id, nurse_id, status, starts_at, ends_at, fee_amount, fee_currency, created_by)
         values ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8::timestamptz, 5000, 'EUR', $2)",
    )
    .bind(id)
    .bind(Uuid::now_v7())
    .bind(booking.doctor)
    .bind(booking.room)
    .bind(booking.nurse)
    .bind(booking.status)
    .bind(booking.starts)
    .bind(booking.ends)
    .execute(pool)
    .await
    .map(|_| id)
    .map_err(|err| match &err {
        sqlx::Error::Database(db) => db.constraint().unwrap_or("unnamed").to_owned(),
        _ => err.to_string(),
    })
}

#[tokio::test]
async fn overlapping_active_appointments_of_one_doctor_room_or_nurse_are_refused_by_the_database() {
    let platform = TestPlatform::start(&[Service::Appointments]).await;
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let (doctor, other_doctor, room, nurse) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let at = |doctor, status| Booking {
        doctor,
        room: None,
        nurse: None,
        status,
        starts: "2026-03-02T09:00:00Z",
        ends: "2026-03-02T10:00:00Z",
    };

    insert(&pool, &at(doctor, "PENDING")).await.unwrap();
    assert_eq!(
        insert(&pool, &at(doctor, "PAID")).await.unwrap_err(),
        "appointment_no_overlap"
    );
    let overlapping = Booking {
        starts: "2026-03-02T09:30:00Z",
        ends: "2026-03-02T10:30:00Z",
        ..at(doctor, "PENDING")
    };
    assert_eq!(
        insert(&pool, &overlapping).await.unwrap_err(),
        "appointment_no_overlap"
    );
    let next_slot = Booking {
        starts: "2026-03-02T10:00:00Z",
        ends: "2026-03-02T11:00:00Z",
        ..at(doctor, "PENDING")
    };
    insert(&pool, &next_slot)
        .await
        .expect("back to back is fine");
    insert(&pool, &at(other_doctor, "PENDING"))
        .await
        .expect("another doctor's slot");

    // Ended appointments free the slot at once.
    let freed = Booking {
        starts: "2026-03-03T09:00:00Z",
        ends: "2026-03-03T10:00:00Z",
        ..at(doctor, "EXPIRED")
    };
    insert(&pool, &freed).await.unwrap();
    insert(
        &pool,
        &Booking {
            status: "CANCELLED",
            ..freed
        },
    )
    .await
    .unwrap();
    insert(
        &pool,
        &Booking {
            status: "PENDING",
            ..freed
        },
    )
    .await
    .expect("expired and cancelled ones do not block");

    // Rooms and nurses: no two scheduled appointments at once, whichever doctors.
    let scheduled = |doctor| Booking {
        room: Some(room),
        nurse: Some(nurse),
        starts: "2026-03-04T09:00:00Z",
        ends: "2026-03-04T10:00:00Z",
        ..at(doctor, "SCHEDULED")
    };
    insert(&pool, &scheduled(doctor)).await.unwrap();
    assert_eq!(
        insert(&pool, &scheduled(other_doctor)).await.unwrap_err(),
        "appointment_room_no_overlap"
    );
    let same_nurse = Booking {
        room: Some(Uuid::now_v7()),
        ..scheduled(other_doctor)
    };
    assert_eq!(
        insert(&pool, &same_nurse).await.unwrap_err(),
        "appointment_nurse_no_overlap"
    );
    let without_room = Booking {
        room: None,
        nurse: None,
        ..scheduled(other_doctor)
    };
    assert_eq!(
        insert(&pool, &without_room).await.unwrap_err(),
        "appointments_scheduled_check",
        "a scheduled appointment has a room and a nurse"
    );
    pool.close().await;
}
