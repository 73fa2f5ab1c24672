"""docs/security.md's roles and permissions tables are the code's (api/authz.py)."""

from __future__ import annotations

from pathlib import Path

from linkplane.server.api import authz

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_documented_tables_match_the_code():
    text = DOC.read_text()
    begin, end = "<!-- authz-tables:begin -->\n", "\n<!-- authz-tables:end -->"
    documented = text[text.index(begin) + len(begin) : text.index(end)]
    assert documented == authz.markdown_tables(), (
        "docs/security.md is stale; paste the output of "
        '`uv run python -c "from linkplane.server.api import authz; '
        'print(authz.markdown_tables())"` between its authz-tables markers'
    )


def test_the_identities_section_is_there_for_the_identity_layer():
    assert "\n## Identities" in DOC.read_text()
