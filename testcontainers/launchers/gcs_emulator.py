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

The handler must be patched before gcp_storage_emulator.server is imported,
because server.py copies the function into its routing table at import time.
"""

import argparse
import logging
import os
import sys
import threading
import traceback

from gcp_storage_emulator.handlers import objects

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

# Imported only now: server.py reads objects.download into its route table.
from gcp_storage_emulator.server import create_server  # noqa: E402


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
    print(
        "gcs_emulator.py: starting on http://{}:{}".format(args.host, args.port),
        flush=True,
    )
    server.run()


if __name__ == "__main__":
    main()
