"""The local stack's parts: ingest's gunicorn behind nginx, on ports of their own."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from emostream.localstack.settings import StackSettings
from emostream.localstack.stack import LocalStack


def test_clients_reach_ingest_through_nginx(tmp_path: Path) -> None:
    """nginx listens on the ingest port and starts after gunicorn, which has its own port and
    takes the client address from nginx's X-Forwarded-For."""
    stack = LocalStack(
        StackSettings(stack_dir=tmp_path, ingest_port=18000, ingest_upstream_port=18001)
    )
    parts = {part.name: part for part in stack.parts}
    names = [part.name for part in stack.parts]
    assert names.index("ingest") < names.index("nginx")
    assert (parts["nginx"].port, parts["ingest"].port) == (18000, 18001)
    assert parts["nginx"].url == "http://127.0.0.1:18000"
    assert parts["ingest"].env["EMOSTREAM_FORWARDED_FOR_HOPS"] == "1"
    assert "127.0.0.1:18001" in parts["ingest"].command()
    proxy = stack.ingest_proxy()
    assert (proxy.port, proxy.upstream_port) == (18000, 18001)
    assert proxy.root == tmp_path.resolve() / "nginx"


def test_each_role_serves_its_metrics_on_a_port_of_its_own(tmp_path: Path) -> None:
    """ingest, fanout and the aggregation each get their own metrics port, and say where."""
    stack = LocalStack(
        StackSettings(
            stack_dir=tmp_path,
            ingest_metrics_port=19100,
            fanout_metrics_port=19101,
            aggregate_metrics_port=19108,
        )
    )
    parts = {part.name: part for part in stack.parts}
    for name, port in (("ingest", 19100), ("fanout", 19101), ("aggregate", 19108)):
        assert parts[name].env["EMOSTREAM_METRICS_PORT"] == str(port), name
        assert parts[name].metrics_url == f"http://127.0.0.1:{port}/metrics", name
        assert port in parts[name].ports, name
    assert parts["nginx"].metrics_url == ""
    assert parts["ingest"].ports == {stack.settings.ingest_upstream_port, 19100}


def test_nginx_and_gunicorn_cannot_share_a_port() -> None:
    """Settings that put nginx and ingest's gunicorn on one port are refused at start-up."""
    with pytest.raises(ValidationError, match="ingest_upstream_port must differ"):
        StackSettings(ingest_port=8000, ingest_upstream_port=8000)
