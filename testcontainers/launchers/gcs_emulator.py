"""Starts gcp-storage-emulator with the response headers real GCS sends.

Used by testcontainers/src/gcs.rs (embedded with include_str! and written to
the fixture's temp dir); run it with the Python that has gcp-storage-emulator
installed:

    python gcs_emulator.py --host 127.0.0.1 --port 9023 --data-dir DIR

What it changes (see shared/reference/deps-and-emulators.md, B.4):

* Object downloads (`alt=media`, `/download/...`, public URLs) get the
  `x-goog-generation`, `x-goog-metageneration` and
  `x-goog-stored-content-length` headers. The official Rust client
  (google-cloud-storage) refuses a download without `x-goog-generation`.
* If the HTTP server thread dies (for example: the port is taken), the whole
  process exits with status 98 instead of hanging, so the caller can retry on
  another port.

And, as real GCS does (the teleport GCS object store relies on each):

* Object listings honour `maxResults` (at most 1,000, as GCS caps it),
  `pageToken`/`nextPageToken`, `startOffset` and `endOffset` when no
  `delimiter` is given (with a delimiter the listing is left as it was).
  The page token is the last name returned, which GCS's opaque tokens
  behave like.
* A resumable session can be cancelled: DELETE on the session URI drops the
  session and its bytes and answers 499, as GCS does; later requests to it
  get 404.
* A status query (`Content-Range: bytes */*`) on a session that has
  received nothing answers 308 without a `Range` header (the emulator said
  `bytes=0-0`, i.e. one byte persisted).

And, for speed only (what the API answers does not change):

* The state file (`.cloudstorage/.meta`, every bucket, object and session
  as one JSON document) was rewritten after every change, which made N
  uploads cost O(N^2); it is now written at most every 50 ms by a
  background thread. Requests and that thread take one lock, so the file
  is always a consistent snapshot.
* A chunk of a resumable upload was appended by reading and rewriting the
  whole upload so far (O(N^2) in the chunks); it is appended to the file,
  and the received size is the file's size.
* The listen backlog is 128 instead of 5, so many concurrent clients do
  not wait for SYN retransmissions.

The handlers must be patched before gcp_storage_emulator.server is imported,
because server.py copies the function into its routing table at import time.
"""

import argparse
import json
import logging
import os
import sys
import threading
import traceback

from enum import IntEnum
from http import HTTPStatus

import http.server
import time

from gcp_storage_emulator.exceptions import BadRequest
from gcp_storage_emulator.handlers import objects
from gcp_storage_emulator.storage import RESUMABLE_DIR, Storage

_original_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
    _original_download(request, response, storage, *args, **kwargs)
    if response.status.value not in (200, 206):
        return
    try:
        obj = storage.get_file_obj(
            request.params["bucket_name"], request.params["object_id"]
        )
    except Exception:  # NotFound raced with a delete: leave the answer alone
        return
    response["x-goog-generation"] = str(obj.get("generation", "1"))
    response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))
    response["x-goog-stored-content-length"] = str(obj.get("size", "0"))


objects.download = _download_with_generation

_original_ls = objects.ls
_MAX_LIST = 1000


def _ls_paged(request, response, storage, *args, **kwargs):
    _original_ls(request, response, storage, *args, **kwargs)
    if response.status.value != 200 or request.query.get("delimiter"):
        return
    listing = json.loads(response._content)
    items = listing.get("items") or []
    first = lambda name: (request.query.get(name) or [None])[0]  # noqa: E731
    start, end, token = first("startOffset"), first("endOffset"), first("pageToken")
    if start:
        items = [o for o in items if o["name"] >= start]
    if end:
        items = [o for o in items if o["name"] < end]
    if token:
        items = [o for o in items if o["name"] > token]
    try:
        limit = max(1, min(int(first("maxResults") or _MAX_LIST), _MAX_LIST))
    except ValueError:
        limit = _MAX_LIST
    listing["items"] = items[:limit]
    listing.pop("nextPageToken", None)
    if len(items) > limit:
        listing["nextPageToken"] = items[limit - 1]["name"]
    response.json(listing)


objects.ls = _ls_paged


class _Status(IntEnum):
    def __new__(cls, value, phrase):
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.phrase = phrase
        return obj

    CLIENT_CLOSED_REQUEST = 499, "Client Closed Request"


def _cancel_resumable(request, response, storage, *args, **kwargs):
    upload_id = (request.query.get("upload_id") or [None])[0]
    if upload_id is None or upload_id not in storage.resumable:
        response.status = HTTPStatus.NOT_FOUND
        return
    storage.delete_resumable_file_obj(upload_id)
    try:
        storage._delete_file(RESUMABLE_DIR, storage.safe_id(upload_id))
    except Exception:  # no bytes were received
        pass
    storage._write_config_to_file()
    response.status = _Status.CLIENT_CLOSED_REQUEST


_original_incomplete = objects._resumable_incomplete


def _resumable_incomplete(response, storage, upload_id, fallback_end=0):
    _original_incomplete(response, storage, upload_id, fallback_end)
    if storage.get_resumable_byte_count(upload_id) == 0:
        del response._headers["Range"]


objects._resumable_incomplete = _resumable_incomplete

# Imported only now: server.py reads objects.download into its route table.
from gcp_storage_emulator import server as _server  # noqa: E402
from gcp_storage_emulator.server import create_server  # noqa: E402

for _regex, _methods in _server.HANDLERS:
    if _regex.startswith("^/upload/") and _methods.get("PUT") is objects.upload_partial:
        _methods["DELETE"] = _cancel_resumable

http.server.HTTPServer.request_queue_size = 128

# One lock for the request handlers and the state file writer.
_state_lock = threading.Lock()
_original_handle = _server.Router.handle


def _handle_locked(self, method):
    with _state_lock:
        _original_handle(self, method)


_server.Router.handle = _handle_locked

_original_write_config = Storage._write_config_to_file


def _mark_dirty(self):
    self._teleport_dirty = True


def _flush_config(storage):
    while True:
        time.sleep(0.05)
        with _state_lock:
            if getattr(storage, "_teleport_dirty", False):
                storage._teleport_dirty = False
                _original_write_config(storage)


Storage._write_config_to_file = _mark_dirty


def _resumable_path(storage, file_id):
    return storage._store._disk_path(
        storage._object_path(RESUMABLE_DIR, storage.safe_id(file_id))
    )


_original_add = Storage.add_to_resumable_upload
_original_count = Storage.get_resumable_byte_count


def _append_to_resumable_upload(
    self, file_id, content, total_size=None, expected_start=None
):
    if self._store._use_memory:
        return _original_add(self, file_id, content, total_size, expected_start)
    path = _resumable_path(self, file_id)
    size = path.stat().st_size if path.is_file() else 0
    if expected_start is not None and expected_start != size:
        raise BadRequest(
            "Invalid Content-Range start: expected {}, got {}".format(
                size, expected_start
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(content or b"")
    size += len(content or b"")
    if total_size is None or size < total_size:
        return None
    return path.read_bytes()[:total_size]


def _resumable_byte_count(self, file_id):
    if self._store._use_memory:
        return _original_count(self, file_id)
    path = _resumable_path(self, file_id)
    return path.stat().st_size if path.is_file() else 0


Storage.add_to_resumable_upload = _append_to_resumable_upload
Storage.get_resumable_byte_count = _resumable_byte_count


def _die_with_thread(args):
    traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback)
    sys.stderr.write("gcs_emulator.py: server thread died; exiting\n")
    sys.stderr.flush()
    os._exit(98)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9023)
    parser.add_argument("--data-dir", default=None, help="storage root (default: in memory)")
    parser.add_argument("--default-bucket", default=None)
    parser.add_argument("--project-number", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    threading.excepthook = _die_with_thread
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    server = create_server(
        args.host,
        args.port,
        in_memory=args.data_dir is None,
        default_bucket=args.default_bucket,
        data_dir=args.data_dir,
        project_number=args.project_number,
    )
    threading.Thread(
        target=_flush_config, args=(server._storage,), name="meta-writer", daemon=True
    ).start()
    print(
        "gcs_emulator.py: starting on http://{}:{}".format(args.host, args.port),
        flush=True,
    )
    server.run()


if __name__ == "__main__":
    main()
