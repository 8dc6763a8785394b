//! Reads shared by the rules of one evaluation round. Groups with the same interval are
//! evaluated at the same aligned time, so their rules' selectors ask for the same time spans:
//! each (tenant, metric-name matchers, span) is read from the store once, by whichever rule
//! asks first (the others wait for it), and every selector takes its series from that read
//! with its own label matchers. A thousand rules over a few metrics cost a few reads a round,
//! not a thousand. One `SharedReads` serves one round and is dropped with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use promql_parser::label::Matcher;
use skewer_query::QueryError;
use skewer_query::prometheus::StoreSource;
use skewer_query::promql::{METRIC_NAME_LABEL, Selection, Series, SeriesSource};
use skewer_storage::model::TenantId;
use tokio::sync::OnceCell;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReadKey {
    tenant: TenantId,
    names: String,
    start_ms: i64,
    end_ms: i64,
}

type Cell = Arc<OnceCell<Arc<Vec<Series>>>>;

/// The reads of the current rounds.
#[derive(Default)]
pub struct SharedReads {
    entries: Mutex<HashMap<ReadKey, Cell>>,
}

impl SharedReads {
    fn lock(&self) -> MutexGuard<'_, HashMap<ReadKey, Cell>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cell(&self, key: ReadKey) -> Cell {
        Arc::clone(self.lock().entry(key).or_default())
    }
}

/// A [`SeriesSource`] over the store that shares its reads through [`SharedReads`].
pub struct SharedSource<'a> {
    store: StoreSource<'a>,
    tenant: TenantId,
    shared: &'a SharedReads,
}

impl<'a> SharedSource<'a> {
    /// Reads `tenant`'s series through `store`, sharing them in `shared`.
    pub fn new(store: StoreSource<'a>, tenant: TenantId, shared: &'a SharedReads) -> Self {
        Self {
            store,
            tenant,
            shared,
        }
    }
}

fn name_matchers(matchers: &[Matcher]) -> Vec<Matcher> {
    matchers
        .iter()
        .filter(|m| m.name == METRIC_NAME_LABEL)
        .cloned()
        .collect()
}

impl SeriesSource for SharedSource<'_> {
    async fn select(&self, selection: &Selection) -> Result<Vec<Series>, QueryError> {
        let names = name_matchers(&selection.matchers);
        let key = ReadKey {
            tenant: self.tenant.clone(),
            names: format!("{names:?}"),
            start_ms: selection.start_ms,
            end_ms: selection.end_ms,
        };
        let cell = self.shared.cell(key);
        let all = cell
            .get_or_try_init(|| async {
                self.store
                    .select_by_name(&names, selection.start_ms, selection.end_ms)
                    .await
                    .map(Arc::new)
            })
            .await?;
        Ok(all
            .iter()
            .filter(|series| series.labels.matches(&selection.matchers))
            .cloned()
            .collect())
    }
}
