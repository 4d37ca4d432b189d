"""Jupyter notebooks are checked and fixed (issue 13 §4), as ruff does it.

`seqlint check nb.ipynb` used to say "All checks passed!" on a notebook with three findings. Now the
code cells are checked as one module, findings are placed in their cell (`nb.ipynb:cell 3:12:5`),
`seqlint fix` rewrites the cells and leaves every other byte of the JSON as it was, directories pick
up notebooks, and IPython magics and shell lines do not stop a cell from being parsed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqlint.notebook import Notebook, NotebookError

CLASS_CELL = [
    "class Gen(keras.utils.Sequence):\n",
    "    def __init__(self, x, batch_size=32):\n",
    "        self.x = x\n",
    "        self.batch_size = batch_size\n",
    "\n",
    "    def __len__(self):\n",
    "        return len(self.x) // self.batch_size\n",
    "\n",
    "    def __getitem__(self, i):\n",
    "        return self.x[i * self.batch_size:(i + 1) * self.batch_size]",
]


def notebook(cells: list[dict], language: str = "python") -> dict:
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": language, "name": "python3"},
            "language_info": {"name": language, "version": "3.11.7"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def code(source, outputs=None, count=None) -> dict:
    return {"cell_type": "code", "execution_count": count, "id": f"c{id(source) % 10000}",
            "metadata": {}, "outputs": outputs or [], "source": source}


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "id": "md", "metadata": {}, "source": [text]}


def three_findings_notebook() -> dict:
    return notebook([
        markdown("# Training a digit classifier"),
        code(["%matplotlib inline\n", "!pip install -q keras\n", "import numpy as np\n", "from tensorflow import keras"],
             count=1),
        markdown("The generator:"),
        code(CLASS_CELL, count=2, outputs=[{"name": "stdout", "output_type": "stream", "text": ["ok\n"]}]),
        code(["gen = Gen(np.zeros((100, 4)))\n", "model.fit_generator(gen, epochs=1)"], count=3),
    ])


def write(path: Path, data: dict, **dumps) -> str:
    text = json.dumps(data, **({"indent": 1, "ensure_ascii": False} | dumps)) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def seqlint(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqlint", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_check_reports_findings_in_their_cells(tmp_path):
    write(tmp_path / "nb.ipynb", three_findings_notebook())
    proc = seqlint("check", "nb.ipynb", "--output-format", "concise", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(": ")[0] + " " + line.split(": ")[1].split()[0] for line in lines[:3]] == [
        "nb.ipynb:cell 4:2:9 SEQ302",
        "nb.ipynb:cell 4:7:16 SEQ306",
        "nb.ipynb:cell 5:2:1 SEQ303",
    ]
    assert "All checks passed" not in proc.stdout
    data = json.loads(seqlint("check", "nb.ipynb", "--output-format", "json", cwd=tmp_path).stdout)
    assert [(d["cell"], d["location"]["row"], d["code"]) for d in data] == [(4, 2, "SEQ302"), (4, 7, "SEQ306"),
                                                                           (5, 2, "SEQ303")]
    full = seqlint("check", "nb.ipynb", cwd=tmp_path).stdout
    assert "nb.ipynb:cell 4:2:9: SEQ302" in full
    assert "2 |     def __init__(self, x, batch_size=32):" in full  # the frame shows the cell's own rows


def test_fix_rewrites_the_cells_and_keeps_the_rest_of_the_json(tmp_path):
    path = tmp_path / "nb.ipynb"
    before = write(path, three_findings_notebook())
    proc = seqlint("fix", "nb.ipynb", "--output-format", "concise", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # SEQ306 remains: its fix is unsafe
    after = path.read_text(encoding="utf-8")
    old, new = json.loads(before), json.loads(after)
    source = "".join(new["cells"][3]["source"])
    assert "def __init__(self, x, batch_size=32, **kwargs):\n        super().__init__(**kwargs)\n" in source
    assert "".join(new["cells"][4]["source"]) == "gen = Gen(np.zeros((100, 4)))\nmodel.fit(gen, epochs=1)"
    assert new["cells"][1]["source"] == old["cells"][1]["source"]  # magics untouched
    # Everything but the two changed sources is byte for byte what it was: outputs, metadata, layout.
    for cell in (3, 4):
        old["cells"][cell]["source"] = new["cells"][cell]["source"]
    assert json.dumps(old, indent=1, ensure_ascii=False) + "\n" == after
    assert isinstance(new["cells"][3]["source"], list) and all(line.endswith("\n") for line in new["cells"][3]["source"][:-1])
    again = seqlint("fix", "nb.ipynb", cwd=tmp_path)
    assert again.returncode == 1 and path.read_text(encoding="utf-8") == after


def test_fix_keeps_an_unusual_layout(tmp_path):
    """Not nbformat's layout (indent 2, ASCII escapes, one-string sources): still only the sources change."""
    data = three_findings_notebook()
    data["cells"][3]["source"] = "".join(CLASS_CELL)
    data["cells"][0]["source"] = ["# Entraînement"]
    path = tmp_path / "nb.ipynb"
    before = write(path, data, indent=2, ensure_ascii=True)
    assert seqlint("fix", "nb.ipynb", cwd=tmp_path).returncode == 1
    after = path.read_text(encoding="utf-8")
    assert "\\u00ee" in after and "Entraînement" not in after  # escapes kept as the file had them
    new = json.loads(after)
    assert isinstance(new["cells"][3]["source"], str) and "**kwargs" in new["cells"][3]["source"]
    restored = json.loads(before)
    restored["cells"][3]["source"] = new["cells"][3]["source"]
    restored["cells"][4]["source"] = new["cells"][4]["source"]
    assert json.dumps(restored, indent=2, ensure_ascii=True) + "\n" == after


def test_magics_and_shell_lines_parse(tmp_path):
    cells = [
        code(["%load_ext autoreload\n", "%autoreload 2\n", "files = !ls data\n", "np.mean?\n", "?np.std\n",
              "!pip install \\\n", "    pillow\n", "import numpy as np\n", "from tensorflow import keras"]),
        code(["%%time\n", *CLASS_CELL]),  # a cell magic whose body is Python
        code(["%%bash\n", "  echo not python (at all\n"]),  # one that is not: left alone
        code(["for f in files:\n", "    %time np.load(f)\n", "    !echo {f}\n",
              "s = '''\n", "%not a magic: text\n", "'''\n", "fmt = ('%d'\n", "    % 3)"]),
    ]
    write(tmp_path / "nb.ipynb", notebook(cells))
    proc = seqlint("check", "nb.ipynb", "--output-format", "concise", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("nb.ipynb:cell 2:3:9: SEQ302")  # rows count the %%time line
    assert "warning: nb.ipynb: cell(s) 3 run a non-Python cell magic; not checked" in proc.stderr
    assert "error" not in proc.stderr


def test_fixes_never_touch_magic_lines_nor_cross_cells(tmp_path):
    nb = Notebook.parse(json.dumps(notebook([code(["%time x = 1\n", "y = 2"]), code(["z = 3"])])))
    layout = nb.layout
    assert layout.text == "pass\ny = 2\nz = 3"
    magic = (0, 4)
    assert layout.cell_index_of(*magic) is None  # inside the masked magic line
    assert layout.cell_index_of(4, 4) == 0  # an insertion right after it
    assert layout.cell_index_of(10, 12) is None  # across the boundary of cells 1 and 2
    assert layout.cell_index_of(11, 11) == 1  # an insertion at the start of cell 2
    fixed = layout.apply([(5, 5, "import numpy as np\n"), (11, 12, "w")])
    assert [c.source for c in fixed.cells] == ["%time x = 1\nimport numpy as np\ny = 2", "w = 3"]
    with pytest.raises(ValueError):
        layout.apply([(2, 3, "x")])


def test_directories_pick_up_notebooks_but_not_checkpoints(tmp_path):
    write(tmp_path / "nb.ipynb", three_findings_notebook())
    (tmp_path / ".ipynb_checkpoints").mkdir()
    write(tmp_path / ".ipynb_checkpoints" / "nb-checkpoint.ipynb", three_findings_notebook())
    proc = seqlint("check", ".", "--output-format", "concise", cwd=tmp_path)
    assert proc.returncode == 1
    assert {line.split(":")[0] for line in proc.stdout.splitlines() if ": SEQ" in line} == {"nb.ipynb"}


def test_noqa_in_a_cell_and_unknown_codes(tmp_path):
    data = three_findings_notebook()
    data["cells"][3]["source"][1] = "    def __init__(self, x, batch_size=32):  # noqa: SEQ302\n"
    data["cells"][4]["source"][1] = "model.fit_generator(gen, epochs=1)  # noqa: SEQ330"
    write(tmp_path / "nb.ipynb", data)
    proc = seqlint("check", "nb.ipynb", "--output-format", "concise", cwd=tmp_path)
    assert "SEQ302" not in proc.stdout.replace("noqa: SEQ302", "")
    assert "nb.ipynb:cell 5:2: `# noqa` names SEQ330, which is not a seqlint rule" in proc.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a valid notebook: invalid JSON"),
        ('{"worksheets": []}', "nbformat 3 notebooks are not supported"),
        (json.dumps(notebook([code(["x = 1"])], language="R")), "not a Python notebook"),
    ],
)
def test_unreadable_notebooks_are_errors_with_the_reason(tmp_path, text, message):
    (tmp_path / "nb.ipynb").write_text(text)
    proc = seqlint("check", "nb.ipynb", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nb.ipynb" in proc.stderr and message in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(NotebookError, match=message.split(":")[0]):
        Notebook.parse(text)
