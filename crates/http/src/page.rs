//! Cursor pagination shared by every list route.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size, clamped to 1..=100.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(50).clamp(1, 100) as usize
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
