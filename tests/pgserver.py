"""A throwaway PostgreSQL cluster for the tests: ``python -m tests.pgserver start|stop DIR``.

``start`` runs ``initdb`` and ``pg_ctl start`` in ``DIR`` (as the unprivileged ``postgres``
user, or ``nobody``, when run as root: the server refuses to run as root), listening on a Unix
socket in ``DIR`` only (no TCP port), and prints the URL of its superuser. ``stop`` stops it
(``-m immediate``: the data is thrown away). ``.ci/run`` and ``tests/conftest.py`` use it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUPERUSER = "ledger_admin"
PORT = 5432


def find_bin(name: str) -> str | None:
    """The path of a PostgreSQL server program (``initdb``, ``pg_ctl``), or None."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version, reverse=True)
    return candidates[0] if candidates else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


def _runas() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--clear-groups", "--"]
    raise RuntimeError("running as root and there is no postgres or nobody user to run the server as")


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    return None


def url_for(directory: str, database: str = "postgres") -> str:
    return f"postgresql://{SUPERUSER}@/{database}?host={directory}&port={PORT}"


def start(directory: str | None = None) -> tuple[str, str]:
    """Start a cluster in ``directory`` (a new temp directory if None); return (dir, url)."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise FileNotFoundError("PostgreSQL server programs (initdb, pg_ctl) not found")
    directory = directory or tempfile.mkdtemp(prefix="ledger-pg-", dir="/tmp")
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    owner = _owner()
    if owner is not None:
        os.chown(directory, *owner)
    data = os.path.join(directory, "data")
    runas = _runas()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    subprocess.run(
        [*runas, initdb, "-D", data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=directory,
    )
    options = (
        f"-k {directory} -c listen_addresses='' -p {PORT} -c max_connections=100 "
        "-c shared_buffers=64MB"
    )
    subprocess.run(
        [*runas, pg_ctl, "-D", data, "-o", options, "-l", os.path.join(directory, "server.log"), "-w", "-t", "60", "start"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=directory,
    )
    return directory, url_for(directory)


def restart(directory: str, *, mode: str = "immediate") -> None:
    """Stop the cluster with ``pg_ctl stop -m mode`` and start it again (crash recovery)."""
    pg_ctl = find_bin("pg_ctl")
    assert pg_ctl is not None
    data = os.path.join(directory, "data")
    runas = _runas()
    subprocess.run([*runas, pg_ctl, "-D", data, "-m", mode, "-w", "stop"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory)
    options = f"-k {directory} -c listen_addresses='' -p {PORT} -c max_connections=100 -c shared_buffers=64MB"
    subprocess.run(
        [*runas, pg_ctl, "-D", data, "-o", options, "-l", os.path.join(directory, "server.log"), "-w", "-t", "60", "start"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory,
    )


def stop_server(directory: str, *, mode: str = "immediate") -> None:
    """Stop the cluster (leaves the directory)."""
    pg_ctl = find_bin("pg_ctl")
    if pg_ctl is None:
        return
    subprocess.run([*_runas(), pg_ctl, "-D", os.path.join(directory, "data"), "-m", mode, "-w", "stop"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory)


def stop(directory: str) -> None:
    """Stop the cluster and remove its directory."""
    stop_server(directory)
    shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.pgserver start [DIR] | stop DIR", file=sys.stderr)
        return 2
    if argv[0] == "start":
        _, url = start(argv[1] if len(argv) > 1 else None)
        print(url)
        return 0
    stop(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
