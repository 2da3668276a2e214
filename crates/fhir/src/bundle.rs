//! `searchset` Bundles: the answer to every search, with `self` and `next` links.
//!
//! Paging is by keyset: each search orders its matches by a stable key and the `next` link
//! carries the last key of the page as `_cursor`, so a page is the same whatever was
//! booked or written since the first one was read (an offset would shift).

use serde::Serialize;

use crate::Resource;
use crate::search::Search;

/// A link of a Bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// `self` or `next`.
    pub relation: &'static str,
    pub url: String,
}

/// How an entry got into a searchset.
#[derive(Debug, Clone, Serialize)]
pub struct EntrySearch {
    /// `match`.
    pub mode: &'static str,
}

/// One entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    pub resource: Resource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<EntrySearch>,
}

/// A `searchset` Bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Bundle {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<Link>,
    pub entry: Vec<Entry>,
}

impl Bundle {
    /// The searchset answering `search` on `base/resource_type`: `resources` are the page's
    /// matches, `next_cursor` the key after which the next page starts (none on the last).
    pub fn searchset(
        base: &str,
        resource_type: &str,
        search: &Search,
        resources: Vec<Resource>,
        next_cursor: Option<String>,
    ) -> Self {
        let url = |cursor: Option<&str>| {
            let mut pairs = search.applied().to_vec();
            if let Some(cursor) = cursor {
                pairs.push(("_cursor".to_owned(), cursor.to_owned()));
            }
            let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            if query.is_empty() {
                format!("{base}/{resource_type}")
            } else {
                format!("{base}/{resource_type}?{query}")
            }
        };
        let mut link = vec![Link {
            relation: "self",
            url: url(search.cursor()),
        }];
        if let Some(cursor) = next_cursor.as_deref() {
            link.push(Link {
                relation: "next",
                url: url(Some(cursor)),
            });
        }
        Self {
            kind: "searchset",
            link,
            entry: entries(base, resources, Some("match")),
        }
    }

    /// The `searchset` an operation answers (`$find`): its matches, without paging links.
    pub fn results(base: &str, resources: Vec<Resource>) -> Self {
        Self {
            kind: "searchset",
            link: Vec::new(),
            entry: entries(base, resources, Some("match")),
        }
    }
}

fn entries(base: &str, resources: Vec<Resource>, mode: Option<&'static str>) -> Vec<Entry> {
    resources
        .into_iter()
        .map(|resource| Entry {
            full_url: resource
                .id()
                .filter(|id| !id.is_empty())
                .map(|id| format!("{base}/{}/{id}", resource.resource_type())),
            resource,
            search: mode.map(|mode| EntrySearch { mode }),
        })
        .collect()
}

/// The page of `items` (ordered by `key`) after `cursor`: at most `count`, and the key to
/// continue after when more follow. For the short lists kept whole (departments, rooms).
pub fn page_of<T>(
    items: Vec<T>,
    count: usize,
    cursor: Option<&str>,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let after: Vec<T> = items
        .into_iter()
        .filter(|item| cursor.is_none_or(|cursor| key(item).as_str() > cursor))
        .collect();
    overfetched(after, count, key)
}

/// A page from `count + 1` fetched items: the first `count`, and the key of the last one
/// kept when the extra one shows that more follow.
pub fn overfetched<T>(
    mut items: Vec<T>,
    count: usize,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if items.len() <= count {
        return (items, None);
    }
    items.truncate(count);
    let next = items.last().map(key);
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Practitioner;
    use crate::types::HumanName;

    fn practitioner(id: &str) -> Resource {
        Practitioner {
            id: id.into(),
            active: true,
            name: vec![HumanName::official("Ada", "Lovelace")],
        }
        .into()
    }

    #[test]
    fn a_page_links_to_itself_and_to_the_next_page_with_the_same_parameters() {
        let search = Search::parse(Some("name=ada&_count=1"), &["name"]).unwrap();
        let bundle = Bundle::searchset(
            "https://clinic.example/fhir",
            "Practitioner",
            &search,
            vec![practitioner("a")],
            Some("a".into()),
        );
        let json = serde_json::to_value(&bundle).unwrap();
        assert_eq!(json["type"], "searchset");
        assert_eq!(
            json["link"][0]["url"],
            "https://clinic.example/fhir/Practitioner?name=ada&_count=1"
        );
        assert_eq!(json["link"][1]["relation"], "next");
        assert_eq!(
            json["link"][1]["url"],
            "https://clinic.example/fhir/Practitioner?name=ada&_count=1&_cursor=a"
        );
        assert_eq!(
            json["entry"][0]["fullUrl"],
            "https://clinic.example/fhir/Practitioner/a"
        );
        assert_eq!(json["entry"][0]["search"]["mode"], "match");
    }

    #[test]
    fn a_kept_list_pages_after_the_cursor() {
        let items = vec!["a", "b", "c"];
        let key = |item: &&str| (*item).to_owned();
        assert_eq!(
            page_of(items.clone(), 2, None, key),
            (vec!["a", "b"], Some("b".into()))
        );
        assert_eq!(page_of(items.clone(), 2, Some("b"), key), (vec!["c"], None));
        assert_eq!(page_of(items, 3, None, key), (vec!["a", "b", "c"], None));
    }

    #[test]
    fn the_last_page_has_no_next_link() {
        let search = Search::parse(None, &[]).unwrap();
        let bundle = Bundle::searchset("https://c/fhir", "Slot", &search, Vec::new(), None);
        assert_eq!(bundle.link.len(), 1);
        assert_eq!(bundle.link[0].url, "https://c/fhir/Slot");
        assert!(bundle.entry.is_empty());
    }
}
