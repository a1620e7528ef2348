"""Once, before a scale-out: the PostgreSQL roles and databases, the password file and MLflow's
authentication config, with no password on a command line, in a URL or in a log.

On the PostgreSQL server ADMIN_URL names (a role allowed to create roles and databases; its
password from PGPASSFILE / ~/.pgpass, or typed at the prompt), this makes three databases, each
owned by a role of its own that may log in to that database only (no superuser, no CREATEDB, no
CREATEROLE): PREFIX_mlflow (runs, metrics, models), PREFIX_auth (MLflow's users and
permissions) and PREFIX_optuna (the studies). Their passwords are random; they go into DIR/pgpass
(mode 600, libpq's password file: psycopg, SQLAlchemy, MLflow and Optuna read it through
PGPASSFILE), never into a URL. DIR also receives:

  auth.ini          MLflow's basic-auth config: every user starts with NO_PERMISSIONS
  admin-password    the MLflow admin's first password (mode 600; change it once the server runs)
  flask-secret-key  the tracking server's CSRF key (mode 600; the same for every server process)
  env               the variables a worker needs: `. DIR/env`
  server.env        env plus the server's two secrets, read from their files: `. DIR/server.env`

    python experiments/setup_scale_out.py postgresql://postgres@127.0.0.1:55432/postgres --dir scale-out
    . scale-out/env && echo "$MLFLOW_BACKEND_URL" "$OPTUNA_STORAGE"     # URLs without passwords

Run it again with the same PREFIX and DIR: what exists is kept (and said); a role whose password
is not in DIR/pgpass gets a new one.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentiment_core.cli import run_main  # noqa: E402
from sentiment_core.errors import UserError, first_line  # noqa: E402
from sentiment_core.tuning.storage import redact_url  # noqa: E402

DATABASES = ("mlflow", "auth", "optuna")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("admin_url", metavar="ADMIN_URL",
                        help="postgresql://USER@HOST:PORT/DB of a role that may create roles and databases")
    parser.add_argument("--dir", default="scale-out", type=Path,
                        help="where pgpass, auth.ini, admin-password and env go (default: %(default)s)")
    parser.add_argument("--prefix", default="sentiment",
                        help="names of the roles and databases: PREFIX_mlflow, PREFIX_auth, PREFIX_optuna "
                             "(default: %(default)s)")
    parser.add_argument("--workers-host", help="the database host as the workers reach it (default: ADMIN_URL's)")
    args = parser.parse_args(argv)
    if not args.prefix.isidentifier() or args.prefix != args.prefix.lower():
        parser.error(f"--prefix must be lower-case letters, digits and _, got {args.prefix!r}")
    return args


def read_pgpass(path: Path) -> dict[tuple[str, str, str, str], str]:
    entries = {}
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split(":")
            if len(fields) == 5 and not line.startswith("#"):
                entries[tuple(fields[:4])] = fields[4]
    return entries


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read, created so from the start."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(text)


def connect_admin(admin_url: str):
    import psycopg

    try:
        return psycopg.connect(admin_url, autocommit=True)
    except psycopg.OperationalError as error:
        if "no password supplied" not in str(error) or not sys.stdin.isatty():
            fix = "; put the admin's password in PGPASSFILE (or ~/.pgpass), or run this in a terminal to type it" \
                if "password" in str(error) else ""
            raise UserError(f"cannot connect to {redact_url(admin_url)}: {first_line(error)}{fix}") from None
    try:
        return psycopg.connect(admin_url, autocommit=True, password=getpass.getpass("PostgreSQL admin password: "))
    except psycopg.OperationalError as error:
        raise UserError(f"cannot connect to {redact_url(admin_url)}: {first_line(error)}") from None


def main(args: argparse.Namespace) -> None:
    from psycopg import sql

    admin = urlsplit(args.admin_url)
    host, port = args.workers_host or admin.hostname or "localhost", admin.port or 5432
    args.dir.mkdir(parents=True, exist_ok=True)
    args.dir.chmod(0o700)
    pgpass_path = args.dir.resolve() / "pgpass"
    entries = read_pgpass(pgpass_path)
    urls = {}
    with connect_admin(args.admin_url) as conn:
        for kind in DATABASES:
            name = f"{args.prefix}_{kind}"
            key = (host, str(port), name, name)
            role_exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            if not role_exists or key not in entries:
                entries[key] = secrets.token_urlsafe(24)  # URL-safe: no ':' or '\\' to escape in pgpass
                verb = "ALTER" if role_exists else "CREATE"
                conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(entries[key])))
                print(f"role {name}: {'new password' if role_exists else 'created'}")
            else:
                print(f"role {name}: exists, its password is in {pgpass_path}")
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                print(f"database {name}: exists")
            else:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
                print(f"database {name}: created, owned by {name}")
            # Only its own role (and superusers) may connect to it.
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
            urls[kind] = f"postgresql://{name}@{host}:{port}/{name}"
    write_private(pgpass_path, "".join(f"{':'.join(key)}:{password}\n" for key, password in sorted(entries.items())))
    for secret in ("admin-password", "flask-secret-key"):  # kept on a second run: servers share the key
        if not (args.dir / secret).exists():
            write_private(args.dir / secret, secrets.token_urlsafe(24) + "\n")
    (args.dir / "auth.ini").write_text(
        "[mlflow]\n"
        "# Users see and change only what they created or were granted.\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {urls['auth']}\n"
        "admin_username = admin\n"
        "# A checked password is trusted for 60 s per server process (otherwise MLflow hashes it with PBKDF2\n"
        "# on every request, which more than doubled a tiny study's time); a changed password reaches every\n"
        "# process within that time.\n"
        "auth_cache_ttl_seconds = 60\n"
        "# The admin's first password comes from MLFLOW_AUTH_ADMIN_PASSWORD (server.env), never from this file.\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    directory = args.dir.resolve()
    (args.dir / "env").write_text(
        f"export PGPASSFILE={pgpass_path}\n"
        f"export MLFLOW_AUTH_CONFIG_PATH={directory / 'auth.ini'}\n"
        f"export MLFLOW_BACKEND_URL={urls['mlflow']}\n"
        f"export OPTUNA_STORAGE={urls['optuna']}\n")
    # The server's secrets are read from their files when sourced: this file holds none itself.
    (args.dir / "server.env").write_text(
        f". {directory / 'env'}\n"
        f"export MLFLOW_AUTH_ADMIN_PASSWORD=\"$(cat {directory / 'admin-password'})\"\n"
        f"export MLFLOW_FLASK_SERVER_SECRET_KEY=\"$(cat {directory / 'flask-secret-key'})\"\n")
    print(f"\nwrote in {directory}: pgpass, admin-password and flask-secret-key (mode 600), auth.ini, env (for "
          "workers) and server.env (for the tracking server)\nnext: the tracking server (docs/scaling.md)")


if __name__ == "__main__":
    run_main(lambda: main(parse_args()))
