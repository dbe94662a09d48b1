"""What the repository holds about the SDK agrees with the SDK: the viewer page's bundle is a
fresh build, the README states its size, and the examples in docs/sdk.md are the tested files."""

import json
import re
from pathlib import Path

from tests.client_js.conftest import SDK_DIR, assert_ran, run_node
from tests.support.services import ROOT

VIEWER_BUNDLE = ROOT / "src" / "emostream" / "fanout" / "static" / "emostream-client.min.js"
SDK_DOC = ROOT / "docs" / "sdk.md"
#: ``<!-- file: path -->`` then a fenced block: the block is that file's text.
_INCLUDED = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)```\n", re.DOTALL)


def test_committed_bundle_is_a_fresh_build(js_sdk: Path, tmp_path: Path) -> None:
    """The viewer page's copy of the SDK is byte for byte what clients/js builds now."""
    fresh = tmp_path / "bundle.js"
    assert_ran(run_node(["scripts/bundle.mjs", "--out", str(fresh)]), "the SDK bundle build")
    assert fresh.read_bytes() == VIEWER_BUNDLE.read_bytes(), (
        "src/emostream/fanout/static/emostream-client.min.js is stale: run "
        "`npm run bundle` in clients/js and commit it"
    )


def test_readme_states_the_bundle_size(js_sdk: Path) -> None:
    """clients/js/README.md gives the bundle's size as measured now (minified, and gzipped)."""
    result = run_node(["scripts/bundle.mjs", "--size"])
    assert_ran(result, "the bundle size measurement")
    size = json.loads(result.stdout.strip().splitlines()[-1])
    stated = f"{size['minified'] / 1000:.1f} kB minified, {size['gzip'] / 1000:.1f} kB gzipped"
    readme = (SDK_DIR / "README.md").read_text()
    assert stated in readme, f"README.md should say {stated!r} (npm run size)"


def test_docs_examples_are_the_tested_files() -> None:
    """Each example in docs/sdk.md is a file in clients/js/examples/, copied exactly, and every
    example file is shown."""
    doc = SDK_DOC.read_text()
    shown = dict(_INCLUDED.findall(doc))
    examples = {
        str(p.relative_to(ROOT))
        for p in (SDK_DIR / "examples").rglob("*.ts*")
        if not p.name.endswith(".d.ts")
    }
    assert set(shown) == examples
    for path, text in shown.items():
        assert text == (ROOT / path).read_text(), f"docs/sdk.md's copy of {path} differs"
