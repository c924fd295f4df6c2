"""README's two commands are the contract with newcomers and CI."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_the_two_commands_and_ci_runs_the_second():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2, "README.md must show the main-job and the test commands"
    main_cmd, test_cmd = blocks[0], blocks[1]
    assert "pip install" in main_cmd and "g2res" in main_cmd
    assert "pytest" in test_cmd
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci_lines, ".ci/run must run README's test command verbatim"
