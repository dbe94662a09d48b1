"""access.*: the stream registry's mode, its admin token, and the sender and viewer tokens."""

import chartlib
import pytest

pytestmark = pytest.mark.chart

RELEASE = chartlib.RELEASE


def env_of(objects: list[chartlib.Obj], kind: str, name: str) -> dict[str, chartlib.Obj]:
    """The env entries of the first container of a workload, by name."""
    obj = chartlib.find(objects, kind, name)
    spec = obj["spec"]["template"]["spec"]
    return {e["name"]: e for e in spec["containers"][0].get("env", [])}


def secret_ref(entry: chartlib.Obj) -> tuple[str, str]:
    """The (Secret, key) an env entry reads."""
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def test_the_default_is_a_closed_registry_with_a_made_up_admin_token() -> None:
    """closed on both tiers, tokens off; ingest and the load test read the chart's Secret."""
    objects = chartlib.render(values=["loadtest.enabled=true"])
    assert chartlib.settings_of(objects, "ingest")["EMOSTREAM_REGISTRY_MODE"] == "closed"
    assert chartlib.settings_of(objects, "fanout")["EMOSTREAM_REGISTRY_MODE"] == "closed"
    assert chartlib.settings_of(objects, "ingest")["EMOSTREAM_SENDER_TOKENS"] == "off"
    assert chartlib.settings_of(objects, "fanout")["EMOSTREAM_VIEWER_TOKENS"] == "off"
    secret = chartlib.find(objects, "Secret", f"{RELEASE}-admin")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(secret["data"]["admin-token"]) > 40
    ingest = env_of(objects, "Deployment", f"{RELEASE}-ingest")
    assert secret_ref(ingest["EMOSTREAM_ADMIN_TOKEN"]) == (f"{RELEASE}-admin", "admin-token")
    assert "EMOSTREAM_ADMIN_TOKEN" not in env_of(objects, "Deployment", f"{RELEASE}-fanout")
    jobs = chartlib.of_kind(objects, "Job")
    assert jobs
    for job in jobs:
        load = env_of(objects, "Job", job["metadata"]["name"])
        assert secret_ref(load["EMOSTREAM_LOAD_ADMIN_TOKEN"]) == (f"{RELEASE}-admin", "admin-token")


def test_tokens_and_an_existing_admin_secret() -> None:
    """Tokens on: both tiers read the key from the named Secret; the load test mints its own
    token with it; a named admin Secret replaces the chart's."""
    objects = chartlib.render(
        values=[
            "access.registry=open",
            "access.adminToken.existingSecret=platform-admin",
            "access.tokens.senders=required",
            "access.tokens.viewers=required",
            "access.tokens.existingSecret=platform-tokens",
            "loadtest.enabled=true",
        ]
    )
    assert not chartlib.of_kind(objects, "Secret")
    assert chartlib.settings_of(objects, "ingest")["EMOSTREAM_REGISTRY_MODE"] == "open"
    assert chartlib.settings_of(objects, "ingest")["EMOSTREAM_SENDER_TOKENS"] == "required"
    assert chartlib.settings_of(objects, "fanout")["EMOSTREAM_VIEWER_TOKENS"] == "required"
    for tier in ("ingest", "fanout"):
        env = env_of(objects, "Deployment", f"{RELEASE}-{tier}")
        assert secret_ref(env["EMOSTREAM_TOKEN_SECRET"]) == ("platform-tokens", "token-secret")
    ingest = env_of(objects, "Deployment", f"{RELEASE}-ingest")
    assert secret_ref(ingest["EMOSTREAM_ADMIN_TOKEN"]) == ("platform-admin", "admin-token")
    job = chartlib.of_kind(objects, "Job")[0]["metadata"]["name"]
    load = env_of(objects, "Job", job)
    assert secret_ref(load["EMOSTREAM_LOAD_TOKEN_SECRET"]) == ("platform-tokens", "token-secret")


def test_a_public_key_or_jwks_url_checks_tokens() -> None:
    """RS256/ES256: the PEM from the Secret; or a JWKS URL as a setting of both tiers."""
    objects = chartlib.render(
        values=[
            "access.tokens.senders=optional",
            "access.tokens.existingSecret=platform-tokens",
            "access.tokens.secretKey=",
            "access.tokens.publicKeyKey=public.pem",
        ]
    )
    env = env_of(objects, "Deployment", f"{RELEASE}-fanout")
    assert secret_ref(env["EMOSTREAM_TOKEN_PUBLIC_KEY"]) == ("platform-tokens", "public.pem")
    assert "EMOSTREAM_TOKEN_SECRET" not in env
    url = "https://auth.tv.example/.well-known/jwks.json"
    objects = chartlib.render(
        values=["access.tokens.viewers=required", f"access.tokens.jwksUrl={url}"]
    )
    for tier in ("ingest", "fanout"):
        assert chartlib.settings_of(objects, tier)["EMOSTREAM_TOKEN_JWKS_URL"] == url


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["access.tokens.senders=required"], "access.tokens.senders/viewers need a key"),
        (
            ["access.tokens.existingSecret=t", "access.tokens.secretKey="],
            "access.tokens.existingSecret needs access.tokens.secretKey",
        ),
        (["access.registry=public"], "at '/access/registry': value must be one of"),
        (["ingest.config.registry_mode=open"], "additional properties 'registry_mode' not allowed"),
        (["fanout.config.viewer_tokens=off"], "additional properties 'viewer_tokens' not allowed"),
    ],
)
def test_inconsistent_access_values_are_refused(values: list[str], message: str) -> None:
    """Tokens without a key, or access settings set in a role's config, fail clearly."""
    result = chartlib.render_text(None, values)
    assert result.returncode != 0, f"{values} rendered"
    assert message in result.stderr
