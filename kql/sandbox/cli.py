"""`kql sandbox`: build the data, print the base URL, serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import time
from types import FrameType

from kql.sandbox import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Sandbox


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kql sandbox", description="Serve a local Kajabi customers API on 127.0.0.1.")
    p.add_argument("--port", type=int, default=8477, help="port on 127.0.0.1 (0: any free port; default 8477)")
    p.add_argument("--customers", type=int, default=10_000, help="customers to generate (default 10000)")
    p.add_argument("--sites", type=int, default=1, help="sites; with more than one, filter[site_id] is required")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data and of the faults (default 1)")
    p.add_argument("--db", help="SQLite file to build (or reuse when seed, size and sites match)")
    p.add_argument("--latency-ms", type=float, default=0, help="added latency per request")
    p.add_argument("--jitter-ms", type=float, default=0, help="random extra latency, 0..N ms")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503 (0..1)")
    p.add_argument("--rate-limit", type=float, metavar="RPS", help="requests per second before 429 + Retry-After")
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of responses cut off mid-body (0..1)")
    p.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE,
                   help=f"default page[size] (default {DEFAULT_PAGE_SIZE})")
    p.add_argument("--max-page-size", type=int, default=MAX_PAGE_SIZE,
                   help=f"largest page[size] accepted (default {MAX_PAGE_SIZE})")
    p.add_argument("--links-host", help="origin (and path prefix) for pagination links, e.g. https://app.kajabi.com/api")
    p.add_argument("--token", default="sandbox", help="static bearer token accepted (default: sandbox)")
    p.add_argument("--expires-in", type=int, default=3600, help="lifetime of OAuth access tokens, seconds")
    return p


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        sandbox = Sandbox(
            customers=args.customers, seed=args.seed, sites=args.sites, port=args.port, latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms, error_rate=args.error_rate, rate_limit=args.rate_limit,
            drop_rate=args.drop_rate, max_page_size=args.max_page_size, default_page_size=args.page_size,
            links_host=args.links_host, token=args.token, expires_in=args.expires_in, db=args.db,
        )
    except (ValueError, OSError, sqlite3.Error) as error:  # bad settings, port in use, unusable --db
        print(f"kql sandbox: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    # Both stop the server; SIGINT explicitly, since a shell's background job starts with it ignored.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(sandbox.base_url, flush=True)
    print(f"{args.customers} customers, {args.sites} site(s), seed {args.seed}, built in "
          f"{time.perf_counter() - started:.1f}s; token: {args.token}; client id/secret: sandbox/sandbox; "
          "Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.server.server_close()
        sandbox.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
