//! The seller's catalog of courses.

use sqlx::{FromRow, MySqlConnection};

use super::StoreError;
use crate::domain::course::DeliveryMode;
use crate::domain::{CourseSlug, Vnd};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCourse<'a> {
    pub slug: &'a CourseSlug,
    pub title: &'a str,
    pub price: Vnd,
    pub source: &'a str,
    pub delivery_mode: DeliveryMode,
    pub lms_course_id: Option<&'a str>,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct Course {
    pub id: u64,
    pub slug: String,
    pub title: String,
    pub price_vnd: i64,
    pub source: String,
    /// `copy` or `share`.
    pub delivery_mode: String,
    pub lms_course_id: Option<String>,
    pub active: bool,
}

const COLUMNS: &str = "id, slug, title, price_vnd, source, delivery_mode, lms_course_id, active";

pub async fn insert(conn: &mut MySqlConnection, c: &NewCourse<'_>) -> Result<u64, StoreError> {
    write(
        conn,
        "INSERT INTO courses (slug, title, price_vnd, source, delivery_mode, lms_course_id) VALUES (?, ?, ?, ?, ?, ?)",
        c,
    )
    .await
}

async fn write(conn: &mut MySqlConnection, sql: &'static str, c: &NewCourse<'_>) -> Result<u64, StoreError> {
    let done = sqlx::query(sql)
        .bind(c.slug.as_str())
        .bind(c.title)
        .bind(c.price.get())
        .bind(c.source)
        .bind(c.delivery_mode.as_str())
        .bind(c.lms_course_id)
        .execute(conn)
        .await?;
    Ok(done.last_insert_id())
}

/// Active courses, by slug.
pub async fn list_active(conn: &mut MySqlConnection) -> Result<Vec<Course>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM courses WHERE active ORDER BY slug"));
    Ok(sqlx::query_as::<_, Course>(sql).fetch_all(conn).await?)
}

pub async fn by_slug(conn: &mut MySqlConnection, slug: &CourseSlug) -> Result<Option<Course>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM courses WHERE slug = ?"));
    Ok(sqlx::query_as::<_, Course>(sql).bind(slug.as_str()).fetch_optional(conn).await?)
}

/// Inserts the course or, if the slug exists, updates it to match; returns its id.
/// Used by seeding and by the operator's `course add`, which must be safe to repeat.
pub async fn upsert(conn: &mut MySqlConnection, c: &NewCourse<'_>) -> Result<u64, StoreError> {
    // `id = LAST_INSERT_ID(id)` makes MySQL report the existing row's id on the update path.
    write(
        conn,
        "INSERT INTO courses (slug, title, price_vnd, source, delivery_mode, lms_course_id) VALUES (?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), title = VALUES(title), price_vnd = VALUES(price_vnd),
           source = VALUES(source), delivery_mode = VALUES(delivery_mode), lms_course_id = VALUES(lms_course_id),
           active = TRUE",
        c,
    )
    .await
}

/// Every course, active or not, by slug.
pub async fn all(pool: &sqlx::MySqlPool) -> Result<Vec<Course>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM courses ORDER BY slug"));
    Ok(sqlx::query_as::<_, Course>(sql).fetch_all(pool).await?)
}

/// Puts a course on sale or takes it off; `false` when nothing changed (no such course, or it
/// already was so).
pub async fn set_active(pool: &sqlx::MySqlPool, slug: &CourseSlug, active: bool) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE courses SET active = ? WHERE slug = ?")
        .bind(active)
        .bind(slug.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Changes a course's title and price; `false` when there is no such course. Orders already
/// placed keep the price they were placed at (`order_items.price_vnd`).
pub async fn edit(pool: &sqlx::MySqlPool, slug: &CourseSlug, title: &str, price: Vnd) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE courses SET title = ?, price_vnd = ? WHERE slug = ?")
        .bind(title)
        .bind(price.get())
        .bind(slug.as_str())
        .execute(pool)
        .await?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    Ok(by_slug(&mut *pool.acquire().await?, slug).await?.is_some())
}

/// Points a course at another source and delivery mode (checked by the caller).
pub async fn set_source(
    pool: &sqlx::MySqlPool,
    slug: &CourseSlug,
    source: &str,
    mode: DeliveryMode,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE courses SET source = ?, delivery_mode = ? WHERE slug = ?")
        .bind(source)
        .bind(mode.as_str())
        .bind(slug.as_str())
        .execute(pool)
        .await?;
    Ok(())
}
