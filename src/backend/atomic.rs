//! Atomic writes: up to [`MAX_ATOMIC_WRITE_SIZE`] conditional actions applied
//! all-or-nothing, every Put getting the same new revision (upstream
//! `lib/backend/atomicwrite.go`).

use std::collections::HashSet;

use super::{Error, Item, Key, Result};

/// The most actions one atomic write may carry (upstream `MaxAtomicWriteSize`).
pub const MAX_ATOMIC_WRITE_SIZE: usize = 64;

/// What must hold for the write to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// No condition.
    Whatever,
    /// The key holds a live item.
    Exists,
    /// The key is absent or expired.
    NotExists,
    /// The key's stored revision equals this one.
    Revision(String),
}

/// What to do with the key when every condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Only check the condition.
    Nop,
    /// Store this item under the action's key (`Item::key` is ignored).
    Put(Item),
    /// Delete the key (a missing key is not an error).
    Delete,
}

/// One key, its condition, and its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionalAction {
    /// The key checked and written.
    pub key: Key,
    /// What must hold.
    pub condition: Condition,
    /// What to do.
    pub action: Action,
}

impl ConditionalAction {
    /// Shorthand constructor.
    pub fn new(key: impl Into<Key>, condition: Condition, action: Action) -> ConditionalAction {
        ConditionalAction { key: key.into(), condition, action }
    }
}

/// Checks an atomic write before any store sees it. All failures are
/// `BadParameter`, as upstream.
pub fn validate(actions: &[ConditionalAction]) -> Result<()> {
    if actions.is_empty() {
        return Err(Error::bad_parameter("atomic write requires at least one action"));
    }
    if actions.len() > MAX_ATOMIC_WRITE_SIZE {
        return Err(Error::bad_parameter(format!(
            "atomic write has {} actions; at most {MAX_ATOMIC_WRITE_SIZE} are allowed",
            actions.len()
        )));
    }
    let mut seen = HashSet::with_capacity(actions.len());
    let mut writes = 0;
    for a in actions {
        if a.key.is_empty() {
            return Err(Error::bad_parameter("atomic write action has an empty key"));
        }
        if !seen.insert(&a.key) {
            return Err(Error::bad_parameter(format!("atomic write names key {:?} more than once", a.key)));
        }
        match (&a.condition, &a.action) {
            (Condition::Whatever, Action::Nop) => {
                return Err(Error::bad_parameter(format!(
                    "atomic write action on {:?} neither checks nor writes anything",
                    a.key
                )));
            }
            (Condition::Revision(r), _) if r.is_empty() => {
                return Err(Error::bad_parameter(format!(
                    "atomic write revision condition on {:?} has an empty revision",
                    a.key
                )));
            }
            _ => {}
        }
        match &a.action {
            Action::Put(item) => {
                if item.value.is_empty() {
                    return Err(Error::bad_parameter(format!("atomic write put of {:?} has an empty value", a.key)));
                }
                writes += 1;
            }
            Action::Delete => writes += 1,
            Action::Nop => {}
        }
    }
    if writes == 0 {
        return Err(Error::bad_parameter("atomic write contains no put or delete"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> ConditionalAction {
        ConditionalAction::new(k, Condition::Whatever, Action::Put(Item::new(k, b"v".to_vec())))
    }

    #[test]
    fn validation() {
        assert!(validate(&[]).is_err());
        assert!(validate(&[put("/a")]).is_ok());
        assert!(validate(&[put("/a"), put("/a")]).is_err());
        let nop = ConditionalAction::new("/a", Condition::Whatever, Action::Nop);
        assert!(validate(&[nop]).is_err());
        let check = ConditionalAction::new("/a", Condition::Exists, Action::Nop);
        assert!(validate(std::slice::from_ref(&check)).is_err(), "no write");
        assert!(validate(&[check, put("/b")]).is_ok());
        let many: Vec<_> = (0..65).map(|i| put(&format!("/k{i}"))).collect();
        assert!(validate(&many).is_err());
        assert!(validate(&many[..64]).is_ok());
        let empty = ConditionalAction::new("/a", Condition::Whatever, Action::Put(Item::new("/a", vec![])));
        assert!(validate(&[empty]).is_err());
    }
}
