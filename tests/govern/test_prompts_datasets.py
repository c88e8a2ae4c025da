import pytest

from stoa.core.errors import InvalidInputError


def test_prompt_register_and_render(sqlite_client):
    info = sqlite_client.prompts.register(
        "greet",
        "Hello {{ name }}, about {{ topic }}.",
        variables=["topic", "name"],
        tags={"lang": "en"},
    )
    assert info.spec["variables"] == ["name", "topic"] and info.format == "jinja2"
    assert sqlite_client.prompts.render("greet@1", {"name": "Ada", "topic": "maths"}) == (
        "Hello Ada, about maths."
    )
    with pytest.raises(InvalidInputError, match="missing value") as e:
        sqlite_client.prompts.render("greet", {"name": "Ada"})
    assert e.value.field == "variables"


@pytest.mark.parametrize(
    ("template", "variables", "field", "message"),
    [
        ("", None, "template", "is empty"),
        ("{{ x ", None, "template", "syntax error on line 1"),
        ("{{ x }}", ["y"], "variables", "used but not declared: x; declared but not used: y"),
    ],
)
def test_prompt_bad_input(sqlite_client, template, variables, field, message):
    with pytest.raises(InvalidInputError) as e:
        sqlite_client.prompts.register("p", template, variables=variables)
    assert e.value.field == field and message in e.value.message
    assert sqlite_client.prompts.list() == []


def test_prompt_sandbox_blocks_attribute_escapes(sqlite_client):
    sqlite_client.prompts.register("evil", "{{ x.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(InvalidInputError, match="refused to render"):
        sqlite_client.prompts.render("evil", {"x": "s"})


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_dataset_formats_detected_by_content(sqlite_client, tmp_path, fmt):
    import pandas as pd

    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    path = tmp_path / "data.bin"  # the extension says nothing
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    info = sqlite_client.datasets.register("d", path)
    assert info.format == fmt and info.spec["rows"] == 3
    assert [c["name"] for c in info.spec["columns"]] == ["text", "label"]


def test_dataset_bad_input(sqlite_client, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="is empty") as e:
        sqlite_client.datasets.register("d", empty)
    assert e.value.field == "path"
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(InvalidInputError, match=r"could not be read as csv.*Expected 2 columns"):
        sqlite_client.datasets.register("d", ragged)
    with pytest.raises(InvalidInputError, match="is not a file"):
        sqlite_client.datasets.register("d", tmp_path)
    assert sqlite_client.datasets.list() == []
