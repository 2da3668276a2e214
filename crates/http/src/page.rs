//! Cursor pagination shared by every list route.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;

/// One page of a list and where the next one starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `limit` and `cursor` query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items to return (1 to 100, default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size: 50 unless asked, 422 outside 1..=100.
    pub fn limit(&self) -> Result<usize, ApiError> {
        page_limit(self.limit, 50, 100)
    }
}

/// A list's page size: `default` when the client did not ask, the asked one when it is
/// within `1..=max` (the range the route documents), else 422 `invalid_query`. Refusing
/// beats clamping: a client asking for 1,000 learns it gets at most `max`.
pub fn page_limit(requested: Option<u32>, default: u32, max: u32) -> Result<usize, ApiError> {
    match requested {
        None => Ok(default as usize),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit as usize),
        Some(limit) => Err(ApiError::unprocessable(
            "invalid_query",
            format!("limit: {limit} is outside 1 to {max}"),
        )),
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra one, if present, only
    /// tells that another page exists; its cursor is `cursor_of` the last item kept.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}
