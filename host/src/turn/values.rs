//! A turn's plugin-wide values: read once, staged, committed with the turn.

use std::collections::HashSet;
use std::time::Duration;

use super::Turn;
use crate::error::{StateError, StoreError};
use crate::store::keys::Name;
use crate::store::{Expiry, ValueChange};

pub(super) struct ValueStage {
    pub(super) name: Name,
    pub(super) base: Option<Vec<u8>>,
    pub(super) change: Option<ValueChange>,
    /// The turn's writes rely on `base` (a `wasi:keyvalue` swap): the commit
    /// applies only if the value is still `base`.
    pub(super) expect_base: bool,
}

impl Turn {
    pub(super) async fn value(&mut self, key: &Name) -> Result<&mut ValueStage, StateError> {
        if !self.values.contains_key(key.as_str()) {
            let fetched = self.store.get(&self.scope.ns, key).await;
            let base = self.check(fetched)?;
            self.values
                .insert(key.as_str().to_owned(), ValueStage::read(key.clone(), base));
        }
        Ok(self.values.get_mut(key.as_str()).expect("inserted above"))
    }

    /// Reads the values of `keys` the turn has not read yet, in one store call.
    pub(crate) async fn read_values(&mut self, keys: &[Name]) -> Result<(), StateError> {
        let mut seen = HashSet::new();
        let unread: Vec<Name> = keys
            .iter()
            .filter(|k| !self.values.contains_key(k.as_str()) && seen.insert(k.as_str()))
            .cloned()
            .collect();
        if unread.is_empty() {
            return Ok(());
        }
        let fetched = self.store.get_many(&self.scope.ns, &unread).await;
        for (name, base) in unread.into_iter().zip(self.check(fetched)?) {
            self.values
                .insert(name.as_str().to_owned(), ValueStage::read(name, base));
        }
        Ok(())
    }

    /// Stages `change` for `key` unless the plugin would then hold more values than
    /// its limit.
    async fn stage_value(&mut self, key: &Name, change: ValueChange) -> Result<(), StateError> {
        let stage = &self.values[key.as_str()];
        let creates = stage.base.is_none() && !matches!(change, ValueChange::Remove);
        if creates && self.values_live.is_none() {
            let live = self.store.count_values(&self.scope.ns).await;
            self.values_live = Some(self.check(live)?);
        }
        let stage = self.values.get_mut(key.as_str()).expect("present");
        let previous = stage.change.replace(change);
        let max = self.scope.config.limits.max_values;
        let staged: i64 = self
            .values
            .values()
            .map(|v| v.exists_after() as i64 - v.base.is_some() as i64)
            .sum();
        if self.values_live.unwrap_or(0) as i64 + staged > max as i64 {
            self.values.get_mut(key.as_str()).expect("present").change = previous;
            return Err(StateError::QuotaExceeded(format!(
                "at most {max} plugin-wide values"
            )));
        }
        Ok(())
    }

    /// Whether `key` holds a value, without copying it.
    pub(crate) async fn exists(&mut self, key: &Name) -> Result<bool, StateError> {
        Ok(self.value(key).await?.exists_after())
    }

    pub(crate) async fn get(&mut self, key: &Name) -> Result<Option<Vec<u8>>, StateError> {
        let stage = self.value(key).await?;
        stage.current()
    }

    pub(crate) async fn set(
        &mut self,
        key: &Name,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        self.charge(value.len())?;
        self.value(key).await?;
        self.stage_value(key, ValueChange::Set(value, Expiry::from_ttl(ttl)))
            .await
    }

    pub(crate) async fn remove(&mut self, key: &Name) -> Result<bool, StateError> {
        let stage = self.value(key).await?;
        let existed = stage.current()?.is_some();
        stage.change = Some(ValueChange::Remove);
        Ok(existed)
    }

    pub(crate) async fn increment(&mut self, key: &Name, delta: i64) -> Result<i64, StateError> {
        self.add(key, delta, None).await
    }

    /// Adds `delta` to the integer at `key` (0 when absent); returns the sum. With
    /// `refresh` the value then expires that long from now; without, it keeps its
    /// expiry (a new one never expires).
    pub(super) async fn add(
        &mut self,
        key: &Name,
        delta: i64,
        refresh: Option<Duration>,
    ) -> Result<i64, StateError> {
        let stage = self.value(key).await?;
        let current = match stage.current()? {
            None => 0,
            Some(bytes) => parse_integer(&bytes)?,
        };
        let new = current
            .checked_add(delta)
            .ok_or(StateError::Store(StoreError::Overflow))?;
        let change = match &stage.change {
            // The turn knows the whole value: store the result.
            Some(ValueChange::Set(_, expiry)) => ValueChange::Set(
                new.to_string().into_bytes(),
                refresh.map_or(*expiry, Expiry::After),
            ),
            Some(ValueChange::Remove) => {
                ValueChange::Set(new.to_string().into_bytes(), Expiry::from_ttl(refresh))
            }
            // Otherwise add at commit time, so concurrent increments all count.
            Some(ValueChange::Add(d, _)) => ValueChange::Add(
                d.checked_add(delta)
                    .ok_or(StateError::Store(StoreError::Overflow))?,
                refresh,
            ),
            None => ValueChange::Add(delta, refresh),
        };
        self.stage_value(key, change).await?;
        Ok(new)
    }
}

impl ValueStage {
    /// A value as the store holds it, not yet changed by the turn.
    fn read(name: Name, base: Option<Vec<u8>>) -> Self {
        Self {
            name,
            base,
            change: None,
            expect_base: false,
        }
    }

    /// Whether the value exists once the staged change is applied.
    fn exists_after(&self) -> bool {
        match &self.change {
            None => self.base.is_some(),
            Some(ValueChange::Remove) => false,
            Some(_) => true,
        }
    }

    pub(super) fn current(&self) -> Result<Option<Vec<u8>>, StateError> {
        let base = || self.base.clone();
        Ok(match &self.change {
            None => base(),
            Some(ValueChange::Set(v, _)) => Some(v.clone()),
            Some(ValueChange::Remove) => None,
            Some(ValueChange::Add(d, _)) => {
                let current = base().map_or(Ok(0), |b| parse_integer(&b))?;
                let sum = current
                    .checked_add(*d)
                    .ok_or(StateError::Store(StoreError::Overflow))?;
                Some(sum.to_string().into_bytes())
            }
        })
    }
}

pub(super) fn parse_integer(bytes: &[u8]) -> Result<i64, StateError> {
    crate::store::parse_integer(bytes).ok_or(StateError::Store(StoreError::NotAnInteger))
}
