"""Type-check the python blocks of the pages a user copies whole programs from, as that
user's mypy reads them against the installed, typed packages (PEP 561 ``py.typed``).

tests/test_sdk_walkthrough.py and tests/test_training_sdk.py run these pages as written;
running is not type-checking: docs/sdk.md ran, yet a typed user got 8 mypy errors from it
(``Dataset.events`` and ``RunResult.cost`` are Optional and the page used them unnarrowed).
Each page's blocks, joined in order, are one module, as the walkthrough tests execute them.
Pages whose blocks are fragments (names defined in the prose) are not listed.

Usage: ``python .ci/doc_types.py`` from the repository root; exit 1 on any error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["docs/sdk.md", "docs/training_sdk.md", "docs/event_data.md", "README.md"]
PACKAGES = ["runtime", "trainer", "export", "edge"]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for page in PAGES:
            blocks = BLOCK.findall((ROOT / page).read_text())
            if not blocks:
                print(f"error: {page} has no python block; expected at least one (update PAGES)")
                return 1
            # doc_ prefix: a page named runtime.md would shadow the runtime package
            f = Path(tmp) / f"doc_{Path(page).stem.lower()}.py"
            f.write_text("\n".join(f"# {page} block {i + 1}\n{b}" for i, b in enumerate(blocks)))
            files.append(str(f))
        # a third-party module without stubs (onnxruntime) is Any, as in the project's own
        # check; a module of ours that does not exist is an error (a page naming a removed one)
        config = Path(tmp) / "mypy.ini"
        ours = ",".join(f"{package}.*" for package in PACKAGES)
        config.write_text(
            "[mypy]\npython_version = 3.11\nfollow_imports = silent\nignore_missing_imports = True\n"
            f"[mypy-{ours}]\nignore_missing_imports = False\n"
        )
        # the checkout on MYPYPATH: an editable install's import hook is invisible to mypy
        env = {**os.environ, "MYPYPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental", *files]
        done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
        print(done.stdout.replace(tmp + os.sep, ""), end="")
        print(done.stderr, end="", file=sys.stderr)
        return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
