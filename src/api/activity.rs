//! The coding-activity API: WakaTime-compatible heartbeat ingestion (API key) and the
//! Hackatime endpoints under `/api/v1/authenticated/` (OAuth access token or personal access
//! token).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::clients::rfc3339;
use crate::app::AppState;
use crate::domain::activity::{Heartbeat, HeartbeatInput};
use crate::domain::user::User;
use crate::http::api::ApiError;
use crate::http::ratelimit::spend_quota;
use crate::http::resource::ResourceUser;
use crate::store::activity::StoredHeartbeat;
use crate::store::now;

/// At most this many heartbeats in one bulk request.
const MAX_BULK: usize = 5000;
/// A day counts toward a streak with this much `coding` time.
const STREAK_DAY_US: i64 = 15 * 60 * 1_000_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest_one))
        .routes(routes!(ingest_bulk))
        .routes(routes!(hackatime_ingest_one))
        .routes(routes!(hackatime_ingest_bulk))
        .routes(routes!(me))
        .routes(routes!(hours))
        .routes(routes!(streak))
        .routes(routes!(projects))
        .routes(routes!(latest))
        .routes(routes!(api_keys))
}

/// One heartbeat as WakaTime plugins send it. Unknown fields are ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
struct HeartbeatBody {
    /// Unix seconds, with a fraction.
    #[schema(example = 1763900000.5)]
    time: f64,
    /// The file, app or domain being worked on.
    #[schema(example = "src/main.rs")]
    entity: String,
    /// `file`, `app` or `domain`.
    r#type: Option<String>,
    /// `coding` (default), `building`, `debugging`, `browsing`…
    category: Option<String>,
    project: Option<String>,
    branch: Option<String>,
    language: Option<String>,
    is_write: Option<bool>,
    lines: Option<i64>,
    lineno: Option<i64>,
    cursorpos: Option<i64>,
    dependencies: Option<Vec<String>>,
    user_agent: Option<String>,
}

/// A stored heartbeat.
#[derive(ToSchema)]
#[allow(dead_code)]
struct StoredBeat {
    id: String,
    /// RFC 3339.
    created_at: String,
    time: f64,
    entity: String,
    r#type: String,
    category: String,
    project: String,
    branch: String,
    language: String,
    is_write: bool,
    lines: Option<i64>,
    lineno: Option<i64>,
    cursorpos: Option<i64>,
    editor: String,
    operating_system: String,
    machine: String,
    user_agent: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Ingested {
    data: StoredBeat,
}

/// One answer per heartbeat sent, in order: `[{"data": …}, 201]` or `[{"error": "…"}, 400]`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct BulkIngested {
    responses: Vec<Vec<serde_json::Value>>,
}

/// The API key of an ingest request: `Authorization: Basic base64(key)` (WakaTime's form, with
/// or without a trailing `:`), `Bearer key`, or `?api_key=`.
fn api_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = value.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.to_owned());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            return Some(text.split(':').next().unwrap_or("").to_owned());
        }
        return None;
    }
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v.into_owned())
}

/// The user behind an ingest request; `{user}` must be `current` or their own id.
async fn ingest_user(state: &AppState, path_user: &str, parts: &Parts) -> Result<User, ApiError> {
    let key = api_key(&parts.headers, parts.uri.query())
        .filter(|k| uuid::Uuid::parse_str(k.trim()).is_ok())
        .ok_or(ApiError::InvalidToken)?;
    let user = state
        .store
        .user_by_api_key(&key)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    if path_user != "current" && path_user != user.id {
        return Err(ApiError::Forbidden(
            "heartbeats can only be sent for your own account",
        ));
    }
    spend_quota(state, parts, &format!("heartbeats:{}", user.id)).await?;
    Ok(user)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn heartbeat_json(id: &str, hb: &Heartbeat, created_at: i64) -> Value {
    json!({
        "id": id,
        "created_at": rfc3339(created_at),
        "time": hb.time_us as f64 / 1_000_000.0,
        "entity": hb.entity,
        "type": hb.kind,
        "category": hb.category,
        "project": hb.project,
        "branch": hb.branch,
        "language": hb.language,
        "is_write": hb.is_write,
        "lines": hb.lines,
        "lineno": hb.lineno,
        "cursorpos": hb.cursorpos,
        "editor": hb.editor,
        "operating_system": hb.operating_system,
        "machine": hb.machine,
        "user_agent": hb.user_agent,
    })
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the JSON body is not valid: {e}")))
}

fn check(item: Value, headers: &HeaderMap) -> Result<Heartbeat, String> {
    let input: HeartbeatInput =
        serde_json::from_value(item).map_err(|_| "a heartbeat must be a JSON object".to_owned())?;
    input.check(
        header_text(headers, "user-agent"),
        header_text(headers, "x-machine-name"),
    )
}

/// Send one heartbeat with the user's API key (WakaTime's API).
#[utoipa::path(post, path = "/api/v1/users/{user}/heartbeats", tag = "activity",
    params(("user" = String, Path, description = "`current`, or the user's own ID")),
    request_body = HeartbeatBody,
    security(("api_key" = []), ("bearer" = []), ("api_key_query" = [])),
    responses((status = 201, description = "Stored", body = Ingested), crate::api::openapi::ApiErrors))]
async fn ingest_one(
    State(state): State<AppState>,
    Path(path_user): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = ingest_user(&state, &path_user, &parts).await?;
    let headers = &parts.headers;
    let hb = check(parse_body(&body)?, headers).map_err(ApiError::BadRequest)?;
    let t = now();
    state.store.ingest(&user.id, &[&hb], t).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"data": heartbeat_json(&hb.id(&user.id), &hb, t)})),
    )
        .into_response())
}

/// Send up to 5000 heartbeats at once (WakaTime's API).
#[utoipa::path(post, path = "/api/v1/users/{user}/heartbeats.bulk", tag = "activity",
    params(("user" = String, Path, description = "`current`, or the user's own ID")),
    request_body = Vec<HeartbeatBody>,
    security(("api_key" = []), ("bearer" = []), ("api_key_query" = [])),
    responses((status = 201, description = "Each heartbeat's own answer (at most 5000 per request)", body = BulkIngested), crate::api::openapi::ApiErrors))]
async fn ingest_bulk(
    State(state): State<AppState>,
    Path(path_user): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = ingest_user(&state, &path_user, &parts).await?;
    let headers = &parts.headers;
    let parsed = parse_body(&body)?;
    // A bulk request may wait for the database's writer: hold only what the answer needs.
    drop(body);
    let items = match parsed {
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::BadRequest(
                "send a JSON array of heartbeats".into(),
            ));
        }
    };
    if items.len() > MAX_BULK {
        return Err(ApiError::BadRequest(format!(
            "send at most {MAX_BULK} heartbeats at a time"
        )));
    }
    let checked: Vec<Result<Heartbeat, String>> =
        items.into_iter().map(|item| check(item, headers)).collect();
    let good: Vec<&Heartbeat> = checked.iter().filter_map(|c| c.as_ref().ok()).collect();
    let t = now();
    state.store.ingest(&user.id, &good, t).await?;
    let responses: Vec<Value> = checked
        .iter()
        .map(|c| match c {
            Ok(hb) => json!([{"data": heartbeat_json(&hb.id(&user.id), hb, t)}, 201]),
            Err(e) => json!([{"error": e}, 400]),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "responses": responses })),
    )
        .into_response())
}

/// `POST /api/v1/users/{user}/heartbeats` under Hackatime's prefix.
#[utoipa::path(post, path = "/api/hackatime/v1/users/{user}/heartbeats", tag = "activity",
    params(("user" = String, Path, description = "`current`, or the user's own ID")),
    request_body = HeartbeatBody,
    security(("api_key" = []), ("bearer" = []), ("api_key_query" = [])),
    responses((status = 201, description = "Stored", body = Ingested), crate::api::openapi::ApiErrors))]
async fn hackatime_ingest_one(
    state: State<AppState>,
    user: Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    ingest_one(state, user, parts, body).await
}

/// `POST /api/v1/users/{user}/heartbeats.bulk` under Hackatime's prefix.
#[utoipa::path(post, path = "/api/hackatime/v1/users/{user}/heartbeats.bulk", tag = "activity",
    params(("user" = String, Path, description = "`current`, or the user's own ID")),
    request_body = Vec<HeartbeatBody>,
    security(("api_key" = []), ("bearer" = []), ("api_key_query" = [])),
    responses((status = 201, description = "Each heartbeat's own answer (at most 5000 per request)", body = BulkIngested), crate::api::openapi::ApiErrors))]
async fn hackatime_ingest_bulk(
    state: State<AppState>,
    user: Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    ingest_bulk(state, user, parts, body).await
}

fn user_tz(user: &User) -> TimeZone {
    TimeZone::get(&user.timezone).unwrap_or(TimeZone::UTC)
}

/// The instant (µs) a local date starts in `tz`.
fn day_start_us(date: Date, tz: &TimeZone) -> Result<i64, ApiError> {
    let zoned = date
        .to_zoned(tz.clone())
        .map_err(|_| ApiError::BadRequest("that date cannot be represented".into()))?;
    let start = zoned
        .start_of_day()
        .map_err(|_| ApiError::BadRequest("that date cannot be represented".into()))?;
    Ok(start.timestamp().as_microsecond())
}

fn today(tz: &TimeZone) -> Date {
    jiff::Timestamp::now().to_zoned(tz.clone()).date()
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Me {
    /// The user's stable UUID.
    id: String,
    emails: Vec<String>,
    slack_id: String,
    github_username: String,
    trust_factor: TrustFactor,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct TrustFactor {
    /// `blue`, `red`, `green` or `yellow`.
    trust_level: String,
    trust_value: i64,
}

/// The user behind the token (scope `profile`).
#[utoipa::path(get, path = "/api/v1/authenticated/me", tag = "activity",
    security(("bearer" = []), ("oauth2" = ["profile"])),
    responses((status = 200, description = "The user", body = Me), crate::api::openapi::ApiErrors))]
async fn me(State(_state): State<AppState>, caller: ResourceUser) -> Result<Response, ApiError> {
    caller.require_any(&["profile"])?;
    let u = &caller.user;
    Ok(axum::Json(json!({
        "id": u.id,
        "emails": [u.email],
        "slack_id": u.slack_id,
        "github_username": u.github_username,
        "trust_factor": {"trust_level": u.trust_level.as_str(), "trust_value": u.trust_level.value()},
    }))
    .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HoursQuery {
    /// First day, `YYYY-MM-DD` in the user's time zone (default: a week before `end_date`).
    start_date: Option<String>,
    /// Last day, included (default: today).
    end_date: Option<String>,
}

fn parse_date(text: &str, field: &str) -> Result<Date, ApiError> {
    let bad = || ApiError::BadRequest(format!("{field} must be a date as YYYY-MM-DD"));
    if text.len() != 10 {
        return Err(bad());
    }
    text.parse::<Date>().map_err(|_| bad())
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Hours {
    start_date: String,
    end_date: String,
    /// Coding time in the range.
    total_seconds: f64,
}

/// Coding time between two days (scope `read`).
#[utoipa::path(get, path = "/api/v1/authenticated/hours", tag = "activity", params(HoursQuery),
    security(("bearer" = []), ("oauth2" = ["read"])),
    responses((status = 200, description = "Coding time", body = Hours), crate::api::openapi::ApiErrors))]
async fn hours(
    State(state): State<AppState>,
    caller: ResourceUser,
    Query(q): Query<HoursQuery>,
) -> Result<Response, ApiError> {
    caller.require_any(&["read"])?;
    let tz = user_tz(&caller.user);
    let end = match q.end_date.as_deref() {
        Some(text) => parse_date(text, "end_date")?,
        None => today(&tz),
    };
    let start = match q.start_date.as_deref() {
        Some(text) => parse_date(text, "start_date")?,
        None => end
            .checked_sub(jiff::Span::new().days(7))
            .map_err(|_| ApiError::BadRequest("end_date is out of range".into()))?,
    };
    if start > end {
        return Err(ApiError::BadRequest(
            "start_date must not be after end_date".into(),
        ));
    }
    let next = end
        .tomorrow()
        .map_err(|_| ApiError::BadRequest("end_date is out of range".into()))?;
    let total = state
        .store
        .coding_time(
            &caller.user.id,
            day_start_us(start, &tz)?,
            day_start_us(next, &tz)?,
            false,
        )
        .await?;
    Ok(axum::Json(json!({
        "start_date": start.to_string(),
        "end_date": end.to_string(),
        "total_seconds": total as f64 / 1_000_000.0,
    }))
    .into_response())
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Streak {
    streak_days: i64,
}

/// Consecutive days with at least 15 minutes of `coding`, ending today (when today already
/// has that much) or yesterday (scope `read`).
#[utoipa::path(get, path = "/api/v1/authenticated/streak", tag = "activity",
    security(("bearer" = []), ("oauth2" = ["read"])),
    responses((status = 200, description = "The streak", body = Streak), crate::api::openapi::ApiErrors))]
async fn streak(State(state): State<AppState>, caller: ResourceUser) -> Result<Response, ApiError> {
    caller.require_any(&["read"])?;
    let tz = user_tz(&caller.user);
    let out_of_range = || ApiError::BadRequest("date out of range".into());
    let mut day = today(&tz);
    let mut days = 0_i64;
    let mut counting_today = true;
    loop {
        let start = day_start_us(day, &tz)?;
        let end = day_start_us(day.tomorrow().map_err(|_| out_of_range())?, &tz)?;
        let enough = state
            .store
            .coding_time(&caller.user.id, start, end, true)
            .await?
            >= STREAK_DAY_US;
        if enough {
            days += 1;
        } else if !counting_today {
            break;
        }
        counting_today = false;
        day = match day.yesterday() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    Ok(axum::Json(json!({ "streak_days": days })).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ProjectsQuery {
    /// `true` to list archived projects too.
    include_archived: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Project {
    name: String,
    total_seconds: f64,
    /// RFC 3339.
    most_recent_heartbeat: String,
    languages: Vec<String>,
    archived: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Projects {
    projects: Vec<Project>,
}

/// The user's projects with their coding time (scope `read` or `project:read`).
#[utoipa::path(get, path = "/api/v1/authenticated/projects", tag = "activity", params(ProjectsQuery),
    security(("bearer" = []), ("oauth2" = ["project:read"])),
    responses((status = 200, description = "Projects", body = Projects), crate::api::openapi::ApiErrors))]
async fn projects(
    State(state): State<AppState>,
    caller: ResourceUser,
    Query(q): Query<ProjectsQuery>,
) -> Result<Response, ApiError> {
    caller.require_any(&["read", "project:read"])?;
    let include_archived = match q.include_archived.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "include_archived must be true or false".into(),
            ));
        }
    };
    let list: Vec<Value> = state
        .store
        .projects(&caller.user.id)
        .await?
        .into_iter()
        .filter(|p| include_archived || !p.archived)
        .map(|p| {
            json!({
                "name": p.name,
                "total_seconds": p.total_us as f64 / 1_000_000.0,
                "most_recent_heartbeat": rfc3339(p.most_recent_us.div_euclid(1_000_000)),
                "languages": p.languages,
                "archived": p.archived,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "projects": list })).into_response())
}

fn latest_json(s: &StoredHeartbeat) -> Value {
    json!({
        "id": s.id,
        "created_at": rfc3339(s.created_at),
        "time": s.hb.time_us as f64 / 1_000_000.0,
        "category": s.hb.category,
        "project": s.hb.project,
        "language": s.hb.language,
        "editor": s.hb.editor,
        "operating_system": s.hb.operating_system,
        "machine": s.hb.machine,
        "entity": s.hb.entity,
    })
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Latest {
    id: String,
    created_at: String,
    time: f64,
    category: String,
    project: String,
    language: String,
    editor: String,
    operating_system: String,
    machine: String,
    entity: String,
}

/// The most recent heartbeat (scope `read`); 404 when there is none.
#[utoipa::path(get, path = "/api/v1/authenticated/heartbeats/latest", tag = "activity",
    security(("bearer" = []), ("oauth2" = ["read"])),
    responses((status = 200, description = "The latest heartbeat", body = Latest), crate::api::openapi::ApiErrors))]
async fn latest(State(state): State<AppState>, caller: ResourceUser) -> Result<Response, ApiError> {
    caller.require_any(&["read"])?;
    let latest = state
        .store
        .latest_heartbeat(&caller.user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(latest_json(&latest)).into_response())
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ApiKey {
    /// The WakaTime API key for the editor plugins.
    token: String,
}

/// The user's API key for heartbeats (scope `read`).
#[utoipa::path(get, path = "/api/v1/authenticated/api_keys", tag = "activity",
    security(("bearer" = []), ("oauth2" = ["read"])),
    responses((status = 200, description = "The API key", body = ApiKey), crate::api::openapi::ApiErrors))]
async fn api_keys(
    State(state): State<AppState>,
    caller: ResourceUser,
) -> Result<Response, ApiError> {
    caller.require_any(&["read"])?;
    let token = state.store.api_key(&caller.user.id).await?;
    Ok(axum::Json(json!({ "token": token })).into_response())
}
