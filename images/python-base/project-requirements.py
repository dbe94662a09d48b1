#!/usr/bin/env python3
"""Print the requirements of a pyproject.toml, one per line, for ``pip install -r``.

The role images install their dependencies in a layer of their own, before the project's code,
so a code change does not reinstall them. ``--extra NAME`` adds an optional-dependency group;
``--without NAME`` leaves a distribution out (pyspark: only the Spark image runs Spark).
"""

import argparse
import re
import sys
import tomllib


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        sys.exit(f"project-requirements: cannot read requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def main() -> None:
    """Read the project table and print the selected requirements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject")
    parser.add_argument("--extra", action="append", default=[], help="optional group to add")
    parser.add_argument("--without", action="append", default=[], help="distribution to omit")
    args = parser.parse_args()

    with open(args.pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in args.extra:
        if extra not in optional:
            sys.exit(f"project-requirements: no optional group {extra!r} in {args.pyproject}")
        requirements += optional[extra]

    omit = {_name(n) for n in args.without}
    # A renamed or removed dependency must not let --without silently stop omitting anything.
    unknown = omit - {_name(r) for r in requirements}
    if unknown:
        sys.exit(f"project-requirements: --without names no requirement: {sorted(unknown)}")
    for requirement in requirements:
        if _name(requirement) not in omit:
            sys.stdout.write(requirement + "\n")


if __name__ == "__main__":
    main()
