"""Build and serve the docs site locally: what ``make serve`` runs.

``python docs/hooks/serve_site.py [--port 8000] [--site site] [--build]`` (not a build
hook: it sits beside them because it is docs tooling, kept out of the wheel and the site)

The port is taken first, so a port in use is reported in one line before anything is
built; ``--build`` then runs ``mkdocs build --strict`` into the site directory. Pages
that do not exist get the site's own styled ``404.html`` with status 404. It listens on
127.0.0.1 only and needs no network.
"""

from __future__ import annotations

import argparse
import errno
import functools
import http.server
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files of the built site; a missing page gets the site's 404 page."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Send ``404.html`` (styled by the theme) for 404s, the default page otherwise."""
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            super().send_error(code, message, explain)
            return
        body = page.read_bytes()
        self.send_response(404, message)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the terminal quiet: no line per request."""


def bind(port: int, site: Path) -> http.server.ThreadingHTTPServer:
    """A server for ``site`` on 127.0.0.1:``port`` (0: any free port).

    Raises:
        SystemExit: with a one-line message when the port is taken or not allowed.
    """
    handler = functools.partial(SiteHandler, directory=str(site))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise SystemExit(
                f"serve: port {port} is already in use (another `make serve`?); "
                f"choose another: make serve PORT={port + 1}"
            ) from None
        if error.errno == errno.EACCES:
            raise SystemExit(
                f"serve: port {port} needs privileges; choose one above 1023: make serve PORT=8000"
            ) from None
        raise SystemExit(f"serve: cannot listen on 127.0.0.1:{port}: {error.strerror}") from None


def build(site: Path) -> None:
    """``mkdocs build --strict`` into ``site``; exits with mkdocs' status if it fails."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's end-of-life banner
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode:
        raise SystemExit(done.returncode)


def main(argv: list[str] | None = None) -> int:
    """Bind the port, build the site if asked, serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="serve_site", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (8000)")
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="built site directory")
    parser.add_argument("--build", action="store_true", help="run mkdocs build first")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"serve: port {args.port} is not a port (0..65535)")
    server = bind(args.port, args.site)
    with server:
        if args.build:
            build(args.site)
        if not (args.site / "index.html").is_file():
            raise SystemExit(f"serve: no site in {args.site}; build it first (make serve)")
        port = server.server_address[1]
        print(f"refattn docs: http://127.0.0.1:{port}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
