//! Cursor pagination: opaque cursors, one page of an ordered list, and what a page costs.
//!
//! Cursors are keys, not offsets (`version:1.2.0`, not "the 21st"), so a page boundary stays put
//! while versions are published or unpublished between two requests. They are base64url text so
//! that clients treat them as opaque, and each names its list, so a cursor of one list is refused
//! by another instead of silently meaning something else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::reader::bad_input;

/// The page size when a query gives no `first`.
pub(super) const DEFAULT_PAGE: i32 = 20;

/// The most items one page may hold; `first` above it is refused.
pub(super) const MAX_PAGE: i32 = 100;

/// What a field that reads another artifact from the store costs, on top of its children.
pub(super) const READ_COST: usize = 5;

/// The cost of a page of `first` items: each item costs what the query asks of it.
pub(super) fn page_cost(first: i32, child_complexity: usize) -> usize {
    // `first` is validated when the field runs; costing happens before, so clamp here.
    let items = usize::try_from(first.clamp(1, MAX_PAGE)).unwrap_or(1);
    items.saturating_mul(child_complexity).saturating_add(1)
}

/// The cost of a field that reads another artifact.
pub(super) fn read_cost(child_complexity: usize) -> usize {
    READ_COST.saturating_add(child_complexity)
}

/// Which list a cursor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CursorList {
    Artifacts,
    Versions,
    Dependents,
}

impl CursorList {
    fn prefix(self) -> &'static str {
        match self {
            CursorList::Artifacts => "artifact:",
            CursorList::Versions => "version:",
            CursorList::Dependents => "dependent:",
        }
    }
}

pub(super) fn encode_cursor(list: CursorList, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}{key}", list.prefix()))
}

/// The key inside a cursor of `list`.
pub(super) fn decode_cursor(list: CursorList, cursor: &str) -> async_graphql::Result<String> {
    let invalid = || bad_input(format!("after: {cursor:?} is not a cursor of this list"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(list.prefix()).map(str::to_owned).ok_or_else(invalid)
}

/// The page size `first` asks for, when it is `0..=MAX_PAGE`.
pub(super) fn page_size(first: i32) -> async_graphql::Result<usize> {
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(bad_input(format!("first: 0 to {MAX_PAGE}, not {first}")));
    }
    usize::try_from(first).map_err(|_| bad_input("first: not a count"))
}

/// The first `size` items of `items` (already in list order) that come after the cursor, as
/// `is_after` tells, and whether more follow them.
pub(super) fn page<T>(
    items: impl IntoIterator<Item = T>,
    size: usize,
    is_after: impl Fn(&T) -> bool,
) -> (Vec<T>, bool) {
    let mut rest = items.into_iter().skip_while(|item| !is_after(item)).peekable();
    let page: Vec<T> = rest.by_ref().take(size).collect();
    let more = rest.peek().is_some();
    (page, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_one_list() {
        let cursor = encode_cursor(CursorList::Versions, "1.2.0");
        assert_eq!(decode_cursor(CursorList::Versions, &cursor).unwrap(), "1.2.0");
        assert!(decode_cursor(CursorList::Dependents, &cursor).is_err());
        assert!(decode_cursor(CursorList::Versions, "not base64!").is_err());
        assert!(decode_cursor(CursorList::Versions, "1.2.0").is_err());
    }

    #[test]
    fn a_page_starts_after_the_cursor() {
        let items = [5, 4, 3, 2, 1];
        assert_eq!(page(items, 2, |_| true), (vec![5, 4], true));
        assert_eq!(page(items, 2, |i| *i < 4), (vec![3, 2], true));
        assert_eq!(page(items, 2, |i| *i < 2), (vec![1], false));
        assert_eq!(page(items, 0, |_| true), (vec![], true));
        // A cursor key that is no longer listed still finds its place.
        assert_eq!(page([5, 3, 1], 5, |i| *i < 4), (vec![3, 1], false));
    }

    #[test]
    fn a_page_costs_its_size_times_its_items() {
        assert_eq!(page_cost(10, 3), 31);
        assert_eq!(page_cost(0, 3), 4, "an empty page still costs the field");
        assert_eq!(page_cost(i32::MAX, 3), 301, "refused later; costed at the cap");
        assert_eq!(page_cost(-5, usize::MAX), usize::MAX);
    }
}
