"""The build's Git revision and branch stamped into the package (itsm_exporter/_build.json), for
`itsm_build_info` and `--version`; everything else is in pyproject.toml. See itsm_exporter/build.py."""

import importlib.util
import json
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class StampedBuild(build_py):
    def run(self) -> None:
        super().run()
        # Loaded by path: the package's dependencies are not installed while it is being built.
        spec = importlib.util.spec_from_file_location("itsm_build", ROOT / "itsm_exporter" / "build.py")
        assert spec is not None and spec.loader is not None
        build = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
        spec.loader.exec_module(build)
        target = Path(self.build_lib) / "itsm_exporter" / build.STAMP
        target.write_text(json.dumps(build.stamp(ROOT)) + "\n", encoding="utf-8")


if __name__ == "__main__":  # as setuptools runs it; tests/test_build.py imports StampedBuild alone
    setup(cmdclass={"build_py": StampedBuild})
