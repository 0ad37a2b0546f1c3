"""Fetch throughput per connector on loopback, next to a plain copy of the same files.

    .venv/bin/python bench/bench_fetch.py [--big 8 --big-mib 8 --small 400 --small-kib 16] [--json out.json]

For each source type the same data set (a few big files for MB/s, many small
ones for files/s) is served by a real server on 127.0.0.1, each in its own
process so it does not share the puller's interpreter lock: SFTP (asyncssh),
S3 (moto server), Google Drive and Dropbox (the tests' local API servers,
Dropbox over TLS through its CONNECT proxy). The puller is the production
code path (``transforms.pull.pull_partner``: temp file, checksums, sync state,
atomic rename, its default parallelism). The baseline is ``shutil.copyfile``
of the same files from disk to disk. A second, no-change pull measures the
incremental path (listing + state lookups only).

Numbers are loopback numbers: they show the overhead of each client and of
the safety machinery, not what a hospital's uplink will give.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "tests"))

KINDS = ["folder", "sftp", "s3", "gdrive", "dropbox"]


# --------------------------------------------------------------------------- data
def make_dataset(root: Path, big: int, big_mib: int, small: int, small_kib: int) -> dict[str, Path]:
    sets = {"big": root / "big", "small": root / "small"}
    for d in sets.values():
        d.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1024 * 1024)
    for i in range(big):
        with open(sets["big"] / f"series{i:02d}.dcm", "wb") as f:
            for j in range(big_mib):
                f.write(bytes([i, j]) + block[2:])  # distinct content per file (no dedup)
    for i in range(small):
        sub = sets["small"] / f"study{i // 100:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"img{i:05d}.dcm").write_bytes(i.to_bytes(4, "big") + os.urandom(small_kib * 1024 - 4))
    return sets


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- servers
def serve(kind: str, data: Path) -> None:
    """Run in a child process: start the server for ``kind`` over ``data``, print its connection."""
    files = files_of(data)
    info: dict = {}
    if kind == "sftp":
        from support.sftp import PASSWORD, USER, SFTPServer

        srv = SFTPServer(root=data)
        info = {"conn_type": "sftp", "host": "127.0.0.1", "port": srv.port, "login": USER, "password": PASSWORD,
                "extra": {"host_key": srv.host_key_line}, "source": {"path": "/"}}  # fmt: skip
    elif kind == "s3":
        import logging

        import boto3
        from moto.server import ThreadedMotoServer
        from support.s3 import free_port

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        port = free_port()
        ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
        endpoint = f"http://127.0.0.1:{port}"
        c = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                         region_name="us-east-1")  # fmt: skip
        c.create_bucket(Bucket="bench")
        for p in files:
            c.upload_file(str(p), "bench", "in/" + p.relative_to(data).as_posix())
        info = {"conn_type": "aws", "login": "bench", "password": "bench",
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                "source": {"bucket": "bench", "prefix": "in"}}  # fmt: skip
    elif kind == "gdrive":
        from support.gdrive import DriveFake

        d = DriveFake()
        top = d.add_folder("bench", d.root_id)
        folders = {Path("."): top}
        for p in files:
            rel = p.relative_to(data)
            parent = Path(".")
            for part in rel.parent.parts:
                nxt = parent / part
                if nxt not in folders:
                    folders[nxt] = d.add_folder(part, folders[parent])
                parent = nxt
            d.add_file(rel.name, folders[rel.parent], p.read_bytes())
        info = {"conn_type": "google_cloud_platform", "password": d.token,
                "extra": {"api_endpoint": d.api_endpoint}, "source": {"folder_id": top}}  # fmt: skip
    elif kind == "dropbox":
        from support.dropbox import DropboxFake

        d = DropboxFake()
        d.mkdir("/Bench")
        for p in files:
            d.put("/Bench/" + p.relative_to(data).as_posix(), p.read_bytes())
        info = {"conn_type": "dropbox", "password": d.token,
                "extra": {"proxy": f"http://127.0.0.1:{d.port}", "ca_certs": str(d.ca)},
                "source": {"path": "/Bench"}}  # fmt: skip
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps(info), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin


# --------------------------------------------------------------------------- measuring
def run_pull(kind: str, data: Path, work: Path, info: dict | None) -> dict:
    from foundation.partners import PartnerConfig
    from foundation.paths import PartnerRoot
    from transforms.pull import cleanup_landing, pull_partner
    from transforms.sources.base import ConnectionInfo

    source = {"type": kind}
    resolver = None
    if kind == "folder":
        source["path"] = str(data)
    else:
        assert info is not None
        source.update(info["source"], conn_id=f"bench_{kind}")
        conn = ConnectionInfo(conn_id=f"bench_{kind}", conn_type=info["conn_type"], host=info.get("host"),
                              port=info.get("port"), login=info.get("login"), password=info.get("password"),
                              extra=info["extra"])  # fmt: skip

        def resolver(_cid: str, conn=conn):
            return conn

    partner = PartnerConfig(id=f"bench_{kind}", name=kind, country="co", region="co", source=source)
    root = PartnerRoot(work, "co", partner.id)
    t0 = time.perf_counter()
    r1 = pull_partner(partner, root, "bench1", resolver)
    full = time.perf_counter() - t0
    assert r1.ok and not r1.skipped, (r1.failed[:3], r1.skipped[:3])
    nbytes = sum(f.size for f in r1.fetched)
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    t0 = time.perf_counter()
    r2 = pull_partner(partner, root, "bench2", resolver)
    incr = time.perf_counter() - t0
    assert not r2.fetched and len(r2.skipped) == len(r1.fetched)
    return {"files": len(r1.fetched), "bytes": nbytes, "seconds": full, "incremental_seconds": incr}


def pull_child(kind: str, data: Path, work: Path, info_json: str) -> None:
    """Run in a child process: one pull, then print seconds and peak RSS (bounded-memory check)."""
    import importlib

    from foundation.partners import PartnerConfig  # noqa: F401 - imports before the baseline
    from transforms import pull  # noqa: F401

    importlib.import_module(f"transforms.sources.{kind}")  # the client library is not the file

    def status(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    # Reset the peak-RSS mark (Linux: "5" > clear_refs), so the peak is this pull's.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = status("VmRSS")
    res = run_pull(kind, data, work, json.loads(info_json) if info_json else None)
    res["rss_before_mib"] = before
    res["rss_peak_mib"] = status("VmHWM")
    print(json.dumps(res), flush=True)


def plain_copy(data: Path, dest: Path) -> dict:
    files = files_of(data)
    t0 = time.perf_counter()
    for p in files:
        target = dest / p.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
    secs = time.perf_counter() - t0
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "seconds": secs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--big", type=int, default=8, help="number of big files")
    ap.add_argument("--big-mib", type=int, default=8, help="size of each big file (MiB)")
    ap.add_argument("--small", type=int, default=400, help="number of small files")
    ap.add_argument("--small-kib", type=int, default=16, help="size of each small file (KiB)")
    ap.add_argument("--huge-mib", type=int, default=256, help="one file this big, fetched in a child process "
                    "whose peak RSS is reported (0: skip)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--pull-child", choices=KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--info", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.data)
        return 0
    if args.pull_child:
        pull_child(args.pull_child, args.data, args.work, args.info)
        return 0

    import logging

    logging.basicConfig(level=logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    try:
        sets = make_dataset(tmp / "data", args.big, args.big_mib, args.small, args.small_kib)
        results: dict[str, dict] = {}
        for name, folder in sets.items():
            results[f"plain_copy/{name}"] = plain_copy(folder, tmp / "copy" / name)
        for kind in [k for k in args.kinds.split(",") if k]:
            for name, folder in sets.items():
                info = None
                proc = None
                if kind != "folder":
                    proc = subprocess.Popen(
                        [sys.executable, __file__, "--serve", kind, "--data", str(folder)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT,
                    )  # fmt: skip
                    line = proc.stdout.readline()  # type: ignore[union-attr]
                    if not line:
                        raise SystemExit(f"{kind} server did not start")
                    info = json.loads(line)
                try:
                    results[f"{kind}/{name}"] = run_pull(kind, folder, tmp / "pull" / kind / name, info)
                finally:
                    if proc is not None:
                        proc.stdin.close()  # type: ignore[union-attr]
                        proc.wait(timeout=30)
                print(f"  {kind}/{name}: {results[f'{kind}/{name}']['seconds']:.2f} s", file=sys.stderr, flush=True)
        if args.huge_mib:
            huge = tmp / "data" / "huge"
            huge.mkdir(parents=True)
            block = os.urandom(1024 * 1024)
            with open(huge / "whole-body-ct.dcm", "wb") as f:
                for j in range(args.huge_mib):
                    f.write(j.to_bytes(4, "big") + block[4:])
            for kind in [k for k in args.kinds.split(",") if k]:
                proc = None
                info = ""
                if kind != "folder":
                    proc = subprocess.Popen(
                        [sys.executable, __file__, "--serve", kind, "--data", str(huge)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT,
                    )  # fmt: skip
                    info = proc.stdout.readline().strip()  # type: ignore[union-attr]
                try:
                    child = subprocess.run(
                        [sys.executable, __file__, "--pull-child", kind, "--data", str(huge),
                         "--work", str(tmp / "huge-pull" / kind), "--info", info],
                        capture_output=True, text=True, cwd=PROJECT, timeout=600,
                    )  # fmt: skip
                    if child.returncode != 0:
                        raise SystemExit(f"{kind} huge pull failed: {child.stderr[-2000:]}")
                    results[f"{kind}/huge"] = json.loads(child.stdout.strip().splitlines()[-1])
                finally:
                    if proc is not None:
                        proc.stdin.close()  # type: ignore[union-attr]
                        proc.wait(timeout=30)
                shutil.rmtree(tmp / "huge-pull" / kind, ignore_errors=True)
                print(f"  {kind}/huge: {results[f'{kind}/huge']['seconds']:.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def row(key: str) -> tuple[str, str, str, str]:
        big, small = results.get(f"{key}/big"), results.get(f"{key}/small")
        mbs = f"{big['bytes'] / big['seconds'] / 1e6:8.1f}" if big else "-"
        fps = f"{small['files'] / small['seconds']:8.0f}" if small else "-"
        inc = f"{small['files'] / small['incremental_seconds']:8.0f}" if small and "incremental_seconds" in small else "       -"
        return key, mbs, fps, inc

    big_desc = f"{args.big} x {args.big_mib} MiB"
    small_desc = f"{args.small} x {args.small_kib} KiB"
    print(f"\nFetch throughput on loopback (big: {big_desc}; small: {small_desc})")
    print(f"{'connector':<12} {'MB/s big':>10} {'files/s small':>14} {'no-change files/s':>18}")
    for key in ["plain_copy", *[k for k in args.kinds.split(",") if k]]:
        k, mbs, fps, inc = row(key)
        print(f"{k:<12} {mbs:>10} {fps:>14} {inc:>18}")
    if args.huge_mib:
        print(f"\nOne {args.huge_mib} MiB file, pulled in a fresh process (memory must not grow with the file)")
        print(f"{'connector':<12} {'MB/s':>8} {'RSS before':>11} {'RSS peak':>9} {'growth':>8}")
        for kind in [k for k in args.kinds.split(",") if k]:
            h = results.get(f"{kind}/huge")
            if h:
                print(f"{kind:<12} {h['bytes'] / h['seconds'] / 1e6:8.1f} {h['rss_before_mib']:9.0f} M "
                      f"{h['rss_peak_mib']:7.0f} M {h['rss_peak_mib'] - h['rss_before_mib']:6.0f} M")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
