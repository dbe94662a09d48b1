"""nginx in front of ingest: a slow client costs nginx a connection, not one of gunicorn's threads.

gunicorn's gthread worker gives a request a thread from its first byte until the response, and
reads the headers and body with no overall deadline, so a few dozen clients that send half a
request and wait take every thread of every worker and ingest answers no one
(``docs/ingest.md``, "Slow clients", has the measurements). nginx reads each request whole on
its event loop first, holds thousands of stalled ones for a few kilobytes each, and drops
them after ``header_timeout_s`` (the whole header block) or ``body_timeout_s`` (between two
reads of a body); only complete requests reach gunicorn, over a few kept-alive connections.
In a cluster the Ingress controller is this proxy (``docs/operations.md`` says what to set).

The errors nginx answers itself are problem documents like ingest's own: a body over ingest's
limit is 413; a request gunicorn never received (it is down or restarting) is 503 with
``Retry-After``, so clients retry it as they retry a full queue; one gunicorn received but did
not answer is 502, as it may or may not have been enqueued.
"""

import grp
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from emostream.common.errors import StackError

#: Where Debian's package puts the binary, which is not on every user's PATH.
_SBIN = "/usr/sbin:/sbin"
#: Request bodies up to this size stay in memory; larger ones (big batches) go to a temp file.
_BODY_BUFFER = "64k"
#: Seconds nginx keeps an idle upstream connection: less than ingest's gunicorn keep-alive, so
#: nginx never sends a request on a connection gunicorn is closing (a test keeps them in step).
UPSTREAM_IDLE_S = 2
#: Seconds nginx keeps an idle client connection for its next request; cheap on an event loop.
CLIENT_KEEPALIVE_S = 15


def nginx_program() -> str:
    """The path of ``nginx``, or an error saying how to install it."""
    path = shutil.which("nginx") or shutil.which("nginx", path=_SBIN)
    if path is None:
        raise StackError("nginx is required in front of ingest: apt-get install -y nginx")
    return path


def _problem(status: int, title: str, detail: str) -> str:
    """A problem document as an nginx string literal (no quote or backslash inside)."""
    body = f'{{"type":"about:blank","title":"{title}","status":{status},"detail":"{detail}"}}'
    return f"'{body}'"


@dataclass(frozen=True)
class IngestProxy:
    """nginx on loopback ``port`` in front of ingest's gunicorn on ``upstream_port``.

    Its configuration, pid file and temp files live in ``root``.
    """

    root: Path
    port: int
    upstream_port: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    #: Ingest's own limit (``EMOSTREAM_MAX_BODY_BYTES``): larger bodies are refused here, before
    #: they are buffered; ingest refuses those up to one byte over the limit itself.
    max_body_bytes: int

    @property
    def config_file(self) -> Path:
        """The nginx.conf written by :meth:`prepare`."""
        return self.root / "nginx.conf"

    @property
    def url(self) -> str:
        """Base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        """Write the configuration (anew on every start: settings may have changed)."""
        (self.root / "temp").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config())

    def command(self) -> list[str]:
        """nginx in the foreground on the prepared configuration, its errors on stderr."""
        return [
            nginx_program(), "-e", "stderr", "-p", str(self.root), "-c", str(self.config_file),
            "-g", "daemon off;",
        ]  # fmt: skip

    def command_after_prepare(self) -> list[str]:
        """:meth:`prepare`, then :meth:`command`."""
        self.prepare()
        return self.command()

    def config(self) -> str:
        """The nginx.conf text."""
        temp = self.root / "temp"
        too_large = _problem(
            413, "Content Too Large", f"the request body exceeds {self.max_body_bytes} bytes"
        )
        bad_request = _problem(400, "Bad Request", "the request is not valid HTTP/1.1")
        unavailable = _problem(
            503, "Service Unavailable", "ingest is not running; nothing was enqueued"
        )
        bad_gateway = _problem(
            502, "Bad Gateway", "ingest did not answer; the reactions may have been enqueued"
        )
        return f"""\
# Written by the local stack (emostream.localstack.nginx) at every start; edits are lost.
{self._user_line()}
worker_processes 1;
worker_rlimit_nofile {2 * self.max_connections + 64};
pid {self.root / "nginx.pid"};
error_log stderr warn;

events {{
    worker_connections {self.max_connections};
}}

http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};

    # The whole header block within this; between two reads of a body, at most this.
    client_header_timeout {self.header_timeout_s:g}s;
    client_body_timeout {self.body_timeout_s:g}s;
    send_timeout {self.body_timeout_s:g}s;
    keepalive_timeout {CLIENT_KEEPALIVE_S}s;
    client_max_body_size {self.max_body_bytes + 1};
    client_body_buffer_size {_BODY_BUFFER};

    upstream ingest {{
        server 127.0.0.1:{self.upstream_port};
        keepalive 64;
        keepalive_timeout {UPSTREAM_IDLE_S}s;
    }}

    # Whether gunicorn received none of a failed request (no connection, or none of it sent).
    map $upstream_bytes_sent $ingest_got_nothing {{
        "" 1;
        "~^0(, 0)*$" 1;
        default 0;
    }}

    server {{
        listen 127.0.0.1:{self.port} backlog=4096;

        location / {{
            # The whole request is read here before gunicorn sees any of it.
            proxy_request_buffering on;
            proxy_pass http://ingest;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}

        # nginx's own errors, as problem documents.
        error_page 400 494 /_emostream/400;
        error_page 413 /_emostream/413;
        error_page 502 504 = /_emostream/502;

        location = /_emostream/400 {{
            internal;
            default_type application/problem+json;
            return 400 {bad_request};
        }}
        location = /_emostream/413 {{
            internal;
            default_type application/problem+json;
            return 413 {too_large};
        }}
        location = /_emostream/502 {{
            internal;
            default_type application/problem+json;
            if ($ingest_got_nothing) {{
                add_header Retry-After 1 always;
                return 503 {unavailable};
            }}
            return 502 {bad_gateway};
        }}
    }}
}}
"""

    @staticmethod
    def _user_line() -> str:
        # A master started as root would run its workers as "nobody", which cannot reach temp
        # directories under a root-only path; they run as whoever started the stack instead.
        if os.geteuid() != 0:
            return "# (workers run as the user who started nginx)"
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        return f"user {user} {group};"
