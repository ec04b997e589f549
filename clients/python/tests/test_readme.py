"""The README's example, run as written against a real City."""

import os
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example(city):
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(example.strip().splitlines()) <= 5
    out = subprocess.run([sys.executable, "-c", example], env={**os.environ, **city.env},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "Echo: Hello, City"
