"""`make bench`: run every benchmark script in bench/ side by side in one process run, print their ratios."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(script.stem, script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            module.main()
        except Exception as err:  # report and go on with the other benchmarks
            failed.append(script.name)
            print(f"{script.name} failed: {err!r}", file=sys.stderr)
        print(f"({script.name}: {time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
