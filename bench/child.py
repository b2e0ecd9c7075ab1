"""Child-process entry point: ``python child.py MODULE FUNC JSON`` runs ``bench.MODULE.FUNC(**JSON)``
and prints its result as one JSON line after a marker (see ``common.run_child``)."""

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MARK, loadavg, peak_rss  # noqa: E402

if __name__ == "__main__":
    module, func, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    res = getattr(importlib.import_module(module), func)(**kwargs)
    res.setdefault("process_peak_rss_bytes", peak_rss())
    res.setdefault("load_at_exit", loadavg())
    print(MARK + json.dumps(res, default=float), flush=True)
