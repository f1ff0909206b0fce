"""The README stays true: its Python examples run, its make targets and CLI commands exist."""
import re
import subprocess
import sys

from crossmedia.core import paths

README = (paths.checkout_root() / "README.md").read_text()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_python_examples_run():
    blocks = _blocks("python")
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_make_targets_named_in_the_readme_exist():
    makefile = (paths.checkout_root() / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z]+):", makefile, flags=re.M))
    used = set(re.findall(r"^make (\w+)", "\n".join(_blocks("bash")), flags=re.M))
    assert used and used <= targets, used - targets


def test_crossmedia_subcommands_named_in_the_readme_parse():
    """Every `crossmedia zoo|data X` line answers --help (the command and its sub-command exist)."""
    lines = re.findall(r"^crossmedia (zoo|data) (\w+)", "\n".join(_blocks("bash")), flags=re.M)
    assert lines
    for group, command in sorted(set(lines)):
        result = subprocess.run([sys.executable, "-m", "crossmedia", group, command, "--help"],
                                capture_output=True, text=True)
        assert result.returncode == 0, (group, command, result.stderr)
