"""The README's "Supported layers and models" table is the one rendered from the test cases."""

import pathlib
import subprocess
import sys

from tinytrain.tools import support_table

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_embeds_the_rendered_table():
    text = README.read_text()
    assert support_table.embed(text) == text, (
        "README.md's support table is stale: run `python -m tinytrain.tools.support_table --write README.md`")


def test_table_lists_every_case():
    table = support_table.render()
    for case in support_table.LAYER_CASES:
        assert f"`test_layers.py::{case.key}`" in table
    for model in support_table.ZOO_MODELS:
        assert f"`test_zoo.py::{model.key}`" in table


def test_cli_prints_and_writes(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tinytrain.tools.support_table"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == support_table.render()
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{support_table.BEGIN}\nold\n{support_table.END}\noutro\n")
    subprocess.run([sys.executable, "-m", "tinytrain.tools.support_table", "--write", str(doc)], check=True)
    assert doc.read_text() == f"intro\n{support_table.render()}\noutro\n"
    missing = tmp_path / "none.md"
    missing.write_text("no markers\n")
    r = subprocess.run([sys.executable, "-m", "tinytrain.tools.support_table", "--write", str(missing)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "no '<!-- support-table:begin -->'" in r.stderr
