"""The C code of certgen, backend, proxy, the common library and the fuzz
targets is formatted as the committed .clang-format says (make format)."""

import shutil
import subprocess

from uptls import ROOT


def test_c_code_is_formatted():
    assert shutil.which("clang-format"), "clang-format is not installed (make deps)"
    files = subprocess.run(["git", "ls-files", "*.c", "*.h"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    assert files
    r = subprocess.run(["clang-format", "--style=file", "--dry-run", "--Werror", *files],
                       cwd=ROOT, capture_output=True, text=True)
    bad = sorted({ln.split(":")[0] for ln in r.stderr.splitlines() if ": error:" in ln})
    assert r.returncode == 0, f"not formatted (run make format): {bad}"
