//! `/activity`: the signed-in user's own last seven days and projects, so a person can see that
//! their editor's heartbeats arrive.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use jiff::tz::TimeZone;

use super::{fmt_time, render};
use crate::app::AppState;
use crate::http::{Ctx, PageError};

pub fn router() -> Router<AppState> {
    Router::new().route("/activity", get(page))
}

/// Seconds as `3 h 05 min`.
pub(crate) fn fmt_duration(us: i64) -> String {
    let minutes = us / 60_000_000;
    format!("{} h {:02} min", minutes / 60, minutes % 60)
}

struct DayRow {
    date: String,
    total: String,
}

struct ProjectRow {
    name: String,
    total: String,
    last: String,
    languages: String,
    archived: bool,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    ctx: Ctx,
    days: Vec<DayRow>,
    week_total: String,
    projects: Vec<ProjectRow>,
    timezone: String,
}

async fn page(State(state): State<AppState>, ctx: Ctx) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    let tz = TimeZone::get(&user.timezone).unwrap_or(TimeZone::UTC);
    let today = jiff::Timestamp::now().to_zoned(tz.clone()).date();
    let start_of = |d: jiff::civil::Date| -> Result<i64, PageError> {
        let z = d.to_zoned(tz.clone()).map_err(|_| PageError::BadRequest)?;
        Ok(z.start_of_day()
            .map_err(|_| PageError::BadRequest)?
            .timestamp()
            .as_microsecond())
    };
    let mut days = Vec::new();
    let mut day = today;
    for _ in 0..7 {
        let next = day.tomorrow().map_err(|_| PageError::BadRequest)?;
        let total = state
            .store
            .coding_time(&user.id, start_of(day)?, start_of(next)?, false)
            .await?;
        days.push(DayRow {
            date: day.to_string(),
            total: fmt_duration(total),
        });
        day = day.yesterday().map_err(|_| PageError::BadRequest)?;
    }
    let week_start = start_of(day.tomorrow().map_err(|_| PageError::BadRequest)?)?;
    let week_end = start_of(today.tomorrow().map_err(|_| PageError::BadRequest)?)?;
    let week_total = fmt_duration(
        state
            .store
            .coding_time(&user.id, week_start, week_end, false)
            .await?,
    );
    let projects = state
        .store
        .projects(&user.id)
        .await?
        .into_iter()
        .map(|p| ProjectRow {
            total: fmt_duration(p.total_us),
            last: fmt_time(p.most_recent_us.div_euclid(1_000_000)),
            languages: p.languages.join(", "),
            archived: p.archived,
            name: p.name,
        })
        .collect();
    render(ActivityPage {
        ctx,
        days,
        week_total,
        projects,
        timezone: user.timezone.clone(),
    })
}
