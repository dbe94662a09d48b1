"""The TypeScript SDK's own checks: the type check of source, tests and examples, and vitest."""

from pathlib import Path

from tests.client_js.conftest import assert_ran, run_node


def test_sdk_type_checks(js_sdk: Path) -> None:
    """``tsc --noEmit`` passes on the SDK, its tests and its examples (strict)."""
    assert_ran(run_node(["node_modules/typescript/bin/tsc", "--noEmit"]), "tsc --noEmit")


def test_sdk_unit_suite(js_sdk: Path) -> None:
    """vitest's unit suite passes: back-off, resume, SSE parsing, errors, sends, feeds, examples."""
    result = run_node(["node_modules/vitest/vitest.mjs", "run"])
    assert_ran(result, "vitest run")
    assert " passed" in result.stdout
