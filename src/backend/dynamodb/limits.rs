//! DynamoDB's service limits that shape this store, as named constants with
//! the AWS page that states each, and the [`Limits`] the store reports.
//! Batching, pre-flight checks and the compliance suite read these numbers.

use crate::backend::{Limits, MAX_ATOMIC_WRITE_SIZE};

/// Items per `BatchWriteItem` request.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;

/// Bytes per `BatchWriteItem` request.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>
pub const MAX_BATCH_WRITE_BYTES: usize = 16 * 1024 * 1024;

/// Bytes per item: attribute names plus values.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items>
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Bytes of a sort key value (our `FullPath`, "teleport" + key).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-partition-sort-keys>
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// Actions per `TransactWriteItems` request (our atomic writes stay at
/// [`MAX_ATOMIC_WRITE_SIZE`] = 64, upstream's limit).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>
pub const MAX_TRANSACT_ITEMS: usize = 100;

/// Bytes per `TransactWriteItems` request (the items' aggregate size).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-dynamodb-transactions>
pub const MAX_TRANSACT_BYTES: usize = 4 * 1024 * 1024;

/// Bytes per `Query` response page; larger results continue from
/// `LastEvaluatedKey`.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html>
pub const MAX_QUERY_PAGE_BYTES: usize = 1024 * 1024;

/// Records per `GetRecords` call on a stream shard (the API's maximum).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html>
pub const MAX_GET_RECORDS: i32 = 1000;

/// What an item costs beyond its key and value: the attribute names
/// (`HashKey`, `FullPath`, `Value`, `Expires`, `Timestamp`, `Revision`: 44
/// bytes), the partition key value and the "teleport" prefix of the sort key
/// (16), two numbers (at most 21 each) and a revision (36), rounded up.
pub const ITEM_OVERHEAD_BYTES: usize = 160;

/// The "teleport" prefix every sort key carries.
pub const SORT_KEY_PREFIX_BYTES: usize = 8;

// A batch of the largest items always fits one BatchWriteItem request, so
// batches are split by count only.
const _: () = assert!(MAX_BATCH_WRITE_ITEMS * MAX_ITEM_BYTES <= MAX_BATCH_WRITE_BYTES);

/// The limits this store reports through `Backend::limits()`.
pub fn limits() -> Limits {
    Limits {
        max_key_len: Some(MAX_SORT_KEY_BYTES - SORT_KEY_PREFIX_BYTES),
        max_item_size: Some(MAX_ITEM_BYTES - ITEM_OVERHEAD_BYTES),
        max_request_bytes: Some(MAX_BATCH_WRITE_BYTES),
        max_batch_items: MAX_BATCH_WRITE_ITEMS,
        max_atomic_actions: MAX_ATOMIC_WRITE_SIZE.min(MAX_TRANSACT_ITEMS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_fit_the_service() {
        let l = limits();
        assert_eq!(l.max_batch_items, 25);
        assert_eq!(l.max_atomic_actions, 64);
        assert_eq!(l.max_key_len, Some(1016));
    }
}
