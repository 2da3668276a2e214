//! Doctors' weekly templates and unavailability.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::schedule::{Buffers, DayHours, Unavailability, WeeklyTemplate};
use crate::repo::waitlist;

fn weekday(iso: i16) -> Option<Weekday> {
    u8::try_from(iso)
        .ok()
        .filter(|day| (1..=7).contains(day))
        .and_then(|day| Weekday::try_from(day - 1).ok())
}

/// The ISO number of `day`: 1 is Monday.
pub fn iso_weekday(day: Weekday) -> i16 {
    i16::from(u8::try_from(day.number_from_monday()).unwrap_or(1))
}

/// One day of a stored template with the template's buffers; the day all empty for a
/// template without days.
type DayRow = (
    i32,
    i32,
    Option<i16>,
    Option<NaiveTime>,
    Option<NaiveTime>,
    Option<i32>,
);

/// The doctor's own template, or `None` when the clinic's default applies (one query).
pub async fn find_template(
    pool: &PgPool,
    doctor_id: Uuid,
) -> anyhow::Result<Option<WeeklyTemplate>> {
    let rows: Vec<DayRow> = sqlx::query_as(
        "select t.buffer_before_minutes, t.buffer_after_minutes,
                d.weekday, d.starts_at, d.ends_at, d.slot_minutes
         from doctor_templates t left join template_days d on d.doctor_id = t.doctor_id
         where t.doctor_id = $1",
    )
    .bind(doctor_id)
    .fetch_all(pool)
    .await?;
    let Some(&(before, after, ..)) = rows.first() else {
        return Ok(None);
    };
    let minutes = |value: i32| u32::try_from(value).unwrap_or(0);
    let buffers = Buffers::parse(minutes(before), minutes(after))
        .map_err(|err| anyhow::anyhow!("stored buffers of doctor {doctor_id}: {err}"))?;
    let mut days = Vec::with_capacity(rows.len());
    // A template without days (a doctor who works no day) is one row of nulls.
    for row in rows {
        let (_, _, Some(iso), Some(start), Some(end), Some(minutes)) = row else {
            continue;
        };
        let day = weekday(iso)
            .ok_or_else(|| anyhow::anyhow!("a stored weekday {iso} is out of range"))?;
        let hours = DayHours::parse(start, end, u32::try_from(minutes).unwrap_or(0))
            .map_err(|err| anyhow::anyhow!("stored hours of doctor {doctor_id}: {err}"))?;
        days.push((day, hours));
    }
    WeeklyTemplate::from_days(days)
        .with_buffers(buffers)
        .map(Some)
        .map_err(|(day, err)| {
            anyhow::anyhow!("stored template of doctor {doctor_id}, {day}: {err}")
        })
}

/// Replaces the doctor's template with `days` (the days not listed are not worked) and
/// `buffers`.
pub async fn replace_template(
    pool: &PgPool,
    doctor_id: Uuid,
    days: &[(Weekday, DayHours)],
    buffers: Buffers,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into doctor_templates (doctor_id, buffer_before_minutes, buffer_after_minutes)
         values ($1, $2, $3)
         on conflict (doctor_id) do update
             set buffer_before_minutes = $2, buffer_after_minutes = $3, updated_at = now()",
    )
    .bind(doctor_id)
    .bind(i32::try_from(buffers.before).unwrap_or(0))
    .bind(i32::try_from(buffers.after).unwrap_or(0))
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from template_days where doctor_id = $1")
        .bind(doctor_id)
        .execute(&mut *tx)
        .await?;
    // New hours may free time: the waitlist's matcher looks at the coming year.
    let now = Utc::now();
    waitlist::insert_opening(&mut tx, doctor_id.into(), now, now + Duration::days(366)).await?;
    for (day, hours) in days {
        sqlx::query(
            "insert into template_days (doctor_id, weekday, starts_at, ends_at, slot_minutes)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(doctor_id)
        .bind(iso_weekday(*day))
        .bind(hours.start())
        .bind(hours.end())
        .bind(i32::try_from(hours.slot_minutes()).unwrap_or(60))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Time off as stored and shown.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct TimeOff {
    pub id: Uuid,
    pub doctor_id: Uuid,
    /// `DAY`, `SLOTS` or `WEEKDAY`.
    pub kind: String,
    /// The date of a `DAY` or `SLOTS` entry (clinic time).
    pub on_date: Option<NaiveDate>,
    /// The ISO weekday (1 is Monday) of a `WEEKDAY` entry.
    pub weekday: Option<i16>,
    /// The local start times of a `SLOTS` entry.
    #[schema(value_type = Vec<String>)]
    pub slot_starts: Vec<NaiveTime>,
    pub reason: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TimeOff {
    /// The rule this entry stands for.
    pub fn rule(&self) -> Option<Unavailability> {
        match self.kind.as_str() {
            "DAY" => self.on_date.map(Unavailability::Day),
            "SLOTS" => self.on_date.map(|date| Unavailability::Slots {
                date,
                starts: self.slot_starts.clone(),
            }),
            "WEEKDAY" => self.weekday.and_then(weekday).map(Unavailability::Weekday),
            _ => None,
        }
    }
}

const TIME_OFF: &str = "id, doctor_id, kind, on_date, weekday, slot_starts, reason, created_by, created_at, updated_at";

/// The doctor's time off, soonest first, weekly entries last.
pub async fn list_time_off(
    conn: &mut PgConnection,
    doctor_id: Uuid,
) -> anyhow::Result<Vec<TimeOff>> {
    Ok(sqlx::query_as(&format!(
        "select {TIME_OFF} from unavailability where doctor_id = $1
         order by on_date nulls last, weekday, id"
    ))
    .bind(doctor_id)
    .fetch_all(conn)
    .await?)
}

/// The doctor's template and time off: what their calendar is made of.
pub async fn calendar_parts(
    pool: &PgPool,
    doctor_id: Uuid,
) -> anyhow::Result<(WeeklyTemplate, Vec<Unavailability>)> {
    let template = find_template(pool, doctor_id)
        .await?
        .unwrap_or_else(WeeklyTemplate::clinic_default);
    let mut conn = pool.acquire().await?;
    let rules = list_time_off(&mut conn, doctor_id)
        .await?
        .iter()
        .filter_map(TimeOff::rule)
        .collect();
    Ok((template, rules))
}

/// Records time off.
pub async fn insert_time_off(
    conn: &mut PgConnection,
    doctor_id: Uuid,
    rule: &Unavailability,
    reason: &str,
    created_by: Uuid,
) -> anyhow::Result<TimeOff> {
    let (kind, on_date, weekday, starts): (&str, Option<NaiveDate>, Option<i16>, Vec<NaiveTime>) =
        match rule {
            Unavailability::Day(date) => ("DAY", Some(*date), None, Vec::new()),
            Unavailability::Slots { date, starts } => ("SLOTS", Some(*date), None, starts.clone()),
            Unavailability::Weekday(day) => ("WEEKDAY", None, Some(iso_weekday(*day)), Vec::new()),
        };
    Ok(sqlx::query_as(&format!(
        "insert into unavailability (id, doctor_id, kind, on_date, weekday, slot_starts, reason, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning {TIME_OFF}"
    ))
    .bind(Uuid::now_v7())
    .bind(doctor_id)
    .bind(kind)
    .bind(on_date)
    .bind(weekday)
    .bind(starts)
    .bind(reason)
    .bind(created_by)
    .fetch_one(conn)
    .await?)
}

/// Removes one entry of the doctor's time off; false if there was none. The time it
/// covered is free again: the waitlist's matcher looks at the coming year.
pub async fn delete_time_off(pool: &PgPool, doctor_id: Uuid, id: Uuid) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("delete from unavailability where doctor_id = $1 and id = $2")
        .bind(doctor_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if deleted {
        let now = Utc::now();
        waitlist::insert_opening(&mut tx, doctor_id.into(), now, now + Duration::days(366)).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}
