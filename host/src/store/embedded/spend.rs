//! Model spend counters in the embedded store: one row per spender and period,
//! named as on Redis (`Spender::key`), with the time it stops being kept. A row
//! past it reads as zero and starts again at its next addition; rows of past
//! periods stay in the file (one per spender and day, 56 bytes each).

use redb::{Database, ReadableDatabase, ReadableTable};

use super::EmbeddedStore;
use super::tables::{MODEL_USAGE, SpendRow, internal, now_ms};
use crate::error::StoreError;
use crate::store::spend::{DAY_KEPT, MONTH_KEPT, ModelCount, Periods, Spender};

type Row = SpendRow;

fn count_of(row: Row, now: u64) -> ModelCount {
    let (expires, input, output, cached, requests, estimated, cost) = row;
    if expires <= now {
        return ModelCount::default();
    }
    ModelCount::from_fields([
        ("input_tokens", input),
        ("output_tokens", output),
        ("cached_tokens", cached),
        ("requests", requests),
        ("estimated", estimated),
        ("cost_micros", cost),
    ])
}

fn row_of(count: &ModelCount, expires: u64) -> Row {
    let [input, output, cached, requests, estimated, cost] = count.fields().map(|(_, v)| v);
    (expires, input, output, cached, requests, estimated, cost)
}

impl EmbeddedStore {
    pub(super) async fn add_spend(
        &self,
        spenders: &[Spender],
        periods: &Periods,
        count: &ModelCount,
    ) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        for spender in spenders {
            keys.push((spender.key(&periods.day), DAY_KEPT));
            keys.push((spender.key(&periods.month), MONTH_KEPT));
        }
        let count = *count;
        self.blocking(move |db: &Database| {
            let txn = db.begin_write().map_err(internal)?;
            {
                let mut table = txn.open_table(MODEL_USAGE).map_err(internal)?;
                let now = now_ms();
                for (key, kept) in &keys {
                    let old = table
                        .get(key.as_str())
                        .map_err(internal)?
                        .map_or_else(ModelCount::default, |row| count_of(row.value(), now));
                    let expires = now + kept.as_millis() as u64;
                    table
                        .insert(key.as_str(), row_of(&old.plus(&count), expires))
                        .map_err(internal)?;
                }
            }
            txn.commit().map_err(internal)
        })
        .await
    }

    pub(super) async fn read_spend(
        &self,
        spender: &Spender,
        periods: &Periods,
    ) -> Result<[ModelCount; 2], StoreError> {
        let keys = [spender.key(&periods.day), spender.key(&periods.month)];
        self.blocking(move |db: &Database| {
            let txn = db.begin_read().map_err(internal)?;
            let table = txn.open_table(MODEL_USAGE).map_err(internal)?;
            let now = now_ms();
            let read = |key: &str| -> Result<ModelCount, StoreError> {
                Ok(table
                    .get(key)
                    .map_err(internal)?
                    .map_or_else(ModelCount::default, |row| count_of(row.value(), now)))
            };
            Ok([read(&keys[0])?, read(&keys[1])?])
        })
        .await
    }
}
