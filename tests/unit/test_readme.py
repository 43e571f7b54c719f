"""README's module table is the map of the tree: every module is listed, nothing listed
is missing (a renamed or added module fails here until the table says so)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_module_table_matches_the_tree():
    text = (REPO / "README.md").read_text()
    section = text[text.index("| module | concern |") :]
    section = section[: section.index("\n\n")]
    listed = set(re.findall(r"^\| `([^`]+)`", section, re.M))
    modules = {
        str(p.relative_to(REPO))
        for root in ("slb_ryu", "lab")
        for p in (REPO / root).rglob("*.py")
        if p.name != "__init__.py"
    }
    modules |= {"slb_ryu/api/openapi.yaml", "mininet/chassis.py"}
    modules |= {
        str(p.relative_to(REPO)) + "/"
        for p in (REPO / "slb_ryu").iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    }
    assert listed == modules, (
        f"in the tree, not in README: {sorted(modules - listed)}; "
        f"in README, not in the tree: {sorted(listed - modules)}"
    )
