"""Starts moto_server with two fixes that make DynamoDB behave as it does on AWS.

Used by testcontainers/src/dynamodb.rs (embedded with include_str! and written
to the fixture's temp dir); run it with the Python that has moto installed,
with moto_server's own arguments:

    python moto_server.py -H 127.0.0.1 -p 5000

What it changes in moto 5.2 (measured: 20 threads x 10 revision-conditioned
increments of one counter through TransactWriteItems ended at 151 and 132
instead of 200 on stock moto; with this launcher, 200):

* Requests are served one at a time (a process-wide lock around the WSGI
  app). moto's models have no locks of their own, while its server runs a
  thread per request, so a condition check and the write it guards can
  interleave with another request: two conditional puts could both succeed.
  DynamoDB makes every single-item write atomic; so does this.
* TransactWriteItems checks every condition first and writes only when all
  hold. Stock moto deep-copies each touched TABLE before the transaction and,
  when a condition fails, puts the copy in the table's place. That (a) undoes
  writes other requests made in the meantime (lost updates), (b) copies the
  whole table for every transaction, and (c) replaces the table's stream
  shard, so every open DynamoDB Streams iterator silently stops seeing new
  records after the first failed transaction. Here a failed transaction
  writes nothing, and if applying an already-checked transaction raises (a
  validation error), the items it touched and the stream records it added
  are put back as they were.

Everything else is moto's own `moto_server` entry point.
"""

import sys
import threading

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_LOCK = threading.RLock()
_original_call = DomainDispatcherApplication.__call__


def _serialized_call(self, environ, start_response):
    with _LOCK:
        return _original_call(self, environ, start_response)


DomainDispatcherApplication.__call__ = _serialized_call


def _condition_holds(backend, table_name, key, op):
    expression = op.get("ConditionExpression")
    if expression is None:
        return True, None
    current = backend.get_item(table_name, key)
    condition = get_filter_expression(
        expression,
        op.get("ExpressionAttributeNames"),
        op.get("ExpressionAttributeValues"),
    )
    if condition.expr(current):
        return True, None
    item = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        item = current.to_json()["Attributes"]
    return False, item


def _restore(table, key, old):
    """Puts `old` (an Item, or None for absent) back under `key` in `table`
    without writing a stream record."""
    hash_value = DynamoType(key[table.hash_key_attr])
    if table.range_key_attr is None:
        if old is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = old
        return
    range_value = DynamoType(key[table.range_key_attr])
    if old is None:
        table.items.get(hash_value, {}).pop(range_value, None)
    else:
        table.items[hash_value][range_value] = old


def _transact_write_items(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen = set()
    ops = []
    errors = []
    # Pass 1: validate and evaluate every condition; write nothing.
    for entry in transact_items:
        if len(list(entry.keys())) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise MockValidationException("Unsupported transaction operation")
        table_name = op["TableName"]
        table = self.get_table(table_name)
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        unique = (str(table_name), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        ok, item = _condition_holds(self, table_name, key, op)
        if ok:
            errors.append((None, None, None))
        else:
            errors.append(("ConditionalCheckFailed", "The conditional request failed", item))
        ops.append((op_type, op, table_name, table, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    # Pass 2: apply. Conditions were checked under the same lock, so they
    # still hold; only validation errors can stop us now.
    undo = []
    stream_lengths = {}
    try:
        for op_type, op, table_name, table, key in ops:
            if table.stream_shard is not None and table_name not in stream_lengths:
                stream_lengths[table_name] = (table, len(table.stream_shard.items))
            if op_type == "ConditionCheck":
                continue
            undo.append((table, key, self.get_item(table_name, key)))
            if op_type == "Put":
                self.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table_name, key)
            else:
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=None,
                    expression_attribute_names=op.get("ExpressionAttributeNames"),
                    expression_attribute_values=op.get("ExpressionAttributeValues"),
                )
    except Exception:
        for table, key, old in reversed(undo):
            _restore(table, key, old)
        for table, length in stream_lengths.values():
            del table.stream_shard.items[length:]
        raise


DynamoDBBackend.transact_write_items = _transact_write_items

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
