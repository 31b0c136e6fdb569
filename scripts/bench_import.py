"""Time a CSV import of many subscribers into a fresh SQLite database; print JSON.

    python scripts/bench_import.py [--rows 1000000] [--keep DIR] [--profile] [--chunk N]
                                   [--database-url URL]

Rows are fictional (`user{n}@example.com` / `.jp` domains, a few Japanese names, every 50th row
an invalid address, every 100th a duplicate), written as UTF-8 CSV. The import runs twice:
the second run shows the cost of a re-run after an interruption (everything unchanged).
`import_cpu_s` (process CPU time) next to the wall time shows how much other load slowed it.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.clock import SYSTEM_CLOCK  # noqa: E402
from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.session import make_engine, session_factory  # noqa: E402
from subscribers.importing import CHUNK_SIZE, import_csv  # noqa: E402

DOMAINS = ("example.com", "example.jp", "mail.example.co.jp", "example.org", "Example.NET")
NAMES = ("山田 太郎", "Suzuki Hanako", "佐藤 花子", "", "Tanaka Ichiro", "高橋 健")
LANGS = ("ja", "en", "both", "", "日本語")


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "language", "company"])
        for n in range(rows):
            if n % 50 == 49:
                email = f"broken{n}.example.com"
            elif n % 100 == 98:
                email = f"User{n - 1}@{DOMAINS[(n - 1) % len(DOMAINS)]}"
            else:
                email = f"User{n}@{DOMAINS[n % len(DOMAINS)]}"
            writer.writerow([email, NAMES[n % len(NAMES)], LANGS[n % len(LANGS)], f"co{n % 97}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep the files")
    parser.add_argument(
        "--database-url", help="an empty database to use instead of a fresh SQLite file"
    )
    parser.add_argument("--chunk", type=int, default=CHUNK_SIZE, help="rows per transaction")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "subscribers.csv"
    db_path = folder / "bench.db"
    db_path.unlink(missing_ok=True)
    started = time.perf_counter()
    write_csv(csv_path, args.rows)
    generate_s = time.perf_counter() - started

    engine = make_engine(args.database_url or f"sqlite:///{db_path}")
    upgrade(engine)
    sessions = session_factory(engine)
    profiler = cProfile.Profile() if args.profile else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    first = import_csv(
        sessions,
        SYSTEM_CLOCK,
        csv_path,
        report_path=folder / "report.csv",
        chunk_size=args.chunk,
    )
    if profiler:
        profiler.disable()
    first_s = time.perf_counter() - started
    first_cpu_s = time.process_time() - cpu_started
    started = time.perf_counter()
    second = import_csv(sessions, SYSTEM_CLOCK, csv_path, chunk_size=args.chunk)
    second_s = time.perf_counter() - started
    engine.dispose()
    result = {
        "rows": args.rows,
        "chunk": args.chunk,
        "database": engine.url.get_backend_name(),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "generate_csv_s": round(generate_s, 2),
        "import_s": round(first_s, 2),
        "import_cpu_s": round(first_cpu_s, 2),
        "rows_per_s": round(args.rows / first_s),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rerun_s": round(second_s, 2),
        "first": first.to_dict(),
        "rerun": second.to_dict(),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
