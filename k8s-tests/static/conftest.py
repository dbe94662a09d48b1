"""Fixtures of the static chart tests: the pinned tools and the chart rendered per profile."""

import chartlib
import pytest


@pytest.fixture(scope="session", autouse=True)
def _tools() -> None:
    """The pinned tools are a hard requirement: fail with the command that installs them."""
    try:
        for name in ("helm", "kubeconform", "promqlcheck"):
            chartlib.tool(name)
    except chartlib.ToolMissingError as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture(scope="session")
def exported() -> set[str]:
    """Every metric series the components export."""
    return chartlib.exported_metrics()


@pytest.fixture(params=[None, *chartlib.PROFILES], ids=["default", *chartlib.PROFILES])
def profile(request: pytest.FixtureRequest) -> str | None:
    """Each values profile: the defaults and every ci/*-values.yaml."""
    return request.param


@pytest.fixture
def objects(profile: str | None) -> list[chartlib.Obj]:
    """A private deep copy of the objects the chart renders with the profile."""
    import copy  # noqa: PLC0415

    return copy.deepcopy(list(chartlib.rendered(profile)))
