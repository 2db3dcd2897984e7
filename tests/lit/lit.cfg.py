# lit configuration: `lit tests/lit` (the Makefile puts the venv's bin/ first on PATH, which
# provides tinytrain-opt and filecheck).
import os
import sys

import lit.formats

config.name = "tinytrain"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".py"]
config.excludes = ["lit.cfg.py", "harness.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.test_source_root, "Output")
config.environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
config.environment["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
config.substitutions.append(("%PYTHON", sys.executable))
