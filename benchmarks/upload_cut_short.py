"""The tracking-server stall, reproduced alone: an artifact upload whose file another process
rewrites while it is being sent.

MLflow's HTTP artifact upload opens the file and PUTs it; ``requests`` takes the Content-Length from
``fstat`` and then streams the body. Here a real ``mlflow server`` receives a 300 MB file, and 0.3 s
into the upload the file is rewritten in place (what another study worker's ``savefig`` did to a
shared report file). The body then ends short of its stated size: the server waits for the rest
until the client's read timeout, and urllib3's retry, resending a file body already read, waits
again. First the same upload with nobody rewriting the file, as a control. With
``MLFLOW_HTTP_REQUEST_TIMEOUT=15`` and one retry the cut upload fails after about 30 s;
with MLflow's defaults (120 s, more retries) it is the stall a three-worker test once hung in.
The fix (``sentiment_core/system/folders.py``) never uploads a file that another process writes.

    MLFLOW_HTTP_REQUEST_TIMEOUT=15 MLFLOW_HTTP_REQUEST_MAX_RETRIES=1 python benchmarks/upload_cut_short.py
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from mlflow import MlflowClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=300, help="size of the uploaded file")
    args = parser.parse_args()
    folder, port = Path(tempfile.mkdtemp(prefix="upload-cut-")), free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                               "--artifacts-destination", str(folder / "artifacts")],
                              stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT,
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"mlflow server did not start; see {folder / 'server.log'}") from None
                time.sleep(0.5)
        client = MlflowClient(url)
        run_id = client.create_run(client.create_experiment("upload-cut-short")).info.run_id
        path = folder / "report.bin"
        path.write_bytes(os.urandom(args.megabytes * 2**20))
        start = time.perf_counter()  # the control: the same upload, nobody rewriting the file
        client.log_artifact(run_id, str(path), "control")
        print(f"a file nobody rewrites: uploaded in {time.perf_counter() - start:.1f} s")
        result: dict = {}

        def upload() -> None:
            start = time.perf_counter()
            try:
                client.log_artifact(run_id, str(path))
                result["finished"] = time.perf_counter() - start
            except Exception as error:  # what the upload ends with: the point of this script
                result["failed"] = (time.perf_counter() - start, str(error).splitlines()[0][:200])

        thread = threading.Thread(target=upload)
        thread.start()
        time.sleep(0.3)
        path.write_bytes(b"rewritten by another worker")  # truncated in place, as savefig does
        thread.join(600)
        timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120 (MLflow's default)")
        if thread.is_alive():
            print(f"the upload still waits after 600 s (read timeout {timeout} s)")
        elif "failed" in result:
            print(f"the upload failed after {result['failed'][0]:.1f} s (read timeout {timeout} s): {result['failed'][1]}")
        else:
            print(f"the upload finished in {result['finished']:.1f} s (the rewrite came too late to cut it)")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
