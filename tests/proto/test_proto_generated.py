"""The committed JSON Schemas and AsyncAPI document are exactly what `make proto` generates."""

from __future__ import annotations

import difflib

import yaml

from proto import generate


def test_committed_files_are_up_to_date() -> None:
    rendered = generate.render_all()
    stale = [name for name, text in rendered.items()
             if not (generate.PROTO_DIR / name).exists() or (generate.PROTO_DIR / name).read_text(encoding="utf-8") != text]
    diff = "".join(difflib.unified_diff(
        (generate.PROTO_DIR / stale[0]).read_text(encoding="utf-8").splitlines(keepends=True),
        rendered[stale[0]].splitlines(keepends=True), "committed", "generated", n=1)) if stale else ""
    assert not stale, f"stale generated files {stale}: run `make proto` and commit\n{diff[:3000]}"
    assert generate.main(["--check"]) == 0


def test_asyncapi_document_references_resolve() -> None:
    document = yaml.safe_load(generate.render_asyncapi())
    assert document["asyncapi"] == "3.0.0"

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    for ref in refs(document):
        target = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert target, ref
    assert document["components"]["messages"]["violation_identified"]["tags"][0]["name"] == "personal-data"
