//! Doctors' weekly templates and unavailability.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::schedule::{DayHours, Unavailability, WeeklyTemplate};

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

/// One day of a stored template; all empty for a template without days.
type DayRow = (
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
        "select d.weekday, d.starts_at, d.ends_at, d.slot_minutes
         from doctor_templates t left join template_days d on d.doctor_id = t.doctor_id
         where t.doctor_id = $1",
    )
    .bind(doctor_id)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut days = Vec::with_capacity(rows.len());
    // A template without days (a doctor who works no day) is one row of nulls.
    for row in rows {
        let (Some(iso), Some(start), Some(end), Some(minutes)) = row else {
            continue;
        };
        let day = weekday(iso)
            .ok_or_else(|| anyhow::anyhow!("a stored weekday {iso} is out of range"))?;
        let hours = DayHours::parse(start, end, u32::try_from(minutes).unwrap_or(0))
            .map_err(|err| anyhow::anyhow!("stored hours of doctor {doctor_id}: {err}"))?;
        days.push((day, hours));
    }
    Ok(Some(WeeklyTemplate::from_days(days)))
}

/// Replaces the doctor's template with `days` (the days not listed are not worked).
pub async fn replace_template(
    pool: &PgPool,
    doctor_id: Uuid,
    days: &[(Weekday, DayHours)],
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into doctor_templates (doctor_id) values ($1)
         on conflict (doctor_id) do update set updated_at = now()",
    )
    .bind(doctor_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from template_days where doctor_id = $1")
        .bind(doctor_id)
        .execute(&mut *tx)
        .await?;
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

/// Removes one entry of the doctor's time off; false if there was none.
pub async fn delete_time_off(pool: &PgPool, doctor_id: Uuid, id: Uuid) -> anyhow::Result<bool> {
    Ok(
        sqlx::query("delete from unavailability where doctor_id = $1 and id = $2")
            .bind(doctor_id)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}
