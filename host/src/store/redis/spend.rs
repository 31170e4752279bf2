//! Model spend counters on Redis: one hash per spender and period (fields as
//! `ModelCount::fields` names them), `HINCRBY` and `PEXPIRE` in one pipeline per
//! spender. A spender's day and month hashes share a hash tag, so on a Cluster
//! each pipeline goes to one node.

use std::collections::HashMap;

use super::RedisStore;
use crate::error::StoreError;
use crate::store::spend::{DAY_KEPT, MONTH_KEPT, ModelCount, Periods, Spender};

impl RedisStore {
    pub(super) async fn add_spend(
        &self,
        spenders: &[Spender],
        periods: &Periods,
        count: &ModelCount,
    ) -> Result<(), StoreError> {
        for spender in spenders {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (period, kept) in [(&periods.day, DAY_KEPT), (&periods.month, MONTH_KEPT)] {
                let key = spender.key(period);
                for (field, value) in count.fields() {
                    if value > 0 {
                        pipe.cmd("HINCRBY").arg(&key).arg(field).arg(value).ignore();
                    }
                }
                pipe.cmd("PEXPIRE")
                    .arg(&key)
                    .arg(kept.as_millis() as u64)
                    .ignore();
            }
            let () = self.pipe(&pipe).await?;
        }
        Ok(())
    }

    pub(super) async fn read_spend(
        &self,
        spender: &Spender,
        periods: &Periods,
    ) -> Result<[ModelCount; 2], StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(spender.key(&periods.day));
        pipe.cmd("HGETALL").arg(spender.key(&periods.month));
        let (day, month): (HashMap<String, u64>, HashMap<String, u64>) = self.pipe(&pipe).await?;
        let count = |fields: &HashMap<String, u64>| {
            ModelCount::from_fields(fields.iter().map(|(k, v)| (k.as_str(), *v)))
        };
        Ok([count(&day), count(&month)])
    }
}
