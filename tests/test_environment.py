"""environment.yml (conda) and pyproject.toml (pip) name the same packages and version floors."""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda name -> pip name
NOT_PACKAGES = {"python", "pip"}
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def _split(requirement: str) -> tuple[str, str]:
    match = REQUIREMENT.match(requirement.split(";")[0].strip())
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def pip_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return dict(_split(r) for r in reqs if "python_version" not in r)


def conda_requirements() -> dict[str, str]:
    """The conda dependencies: top-level '  - name>=x' lines (not the nested pip: list)."""
    out = {}
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if in_deps and (match := re.match(r"^  - ([^\s#:]+)\s*$", line)):
            name, spec = _split(match.group(1))
            if name not in NOT_PACKAGES:
                out[CONDA_NAMES.get(name, name)] = spec
    return out


def test_same_packages_and_floors():
    pip, conda = pip_requirements(), conda_requirements()
    only_pip, only_conda = set(pip) - set(conda), set(conda) - set(pip)
    assert not only_pip and not only_conda, f"pyproject only: {only_pip}; conda only: {only_conda}"
    assert pip == conda


def test_torch_range_stays_open_for_users():
    assert pip_requirements()["torch"] == ">=2.2"


def test_python_floor_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    assert "  - python>=3.10" in (ROOT / "environment.yml").read_text()
