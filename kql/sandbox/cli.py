"""`kql sandbox`: build the data, print the base URL, serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import math
import re
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from urllib.parse import urlsplit

from kql.sandbox import CACHE_ENV, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Sandbox, default_cache_dir

# Settings the library itself checks (page sizes in Sandbox, rates in Faults, customers and sites
# in data.generate) are left to it: its ValueError becomes a usage error naming the options concerned.
# The checks here are only those it has no rule for (port, latency, token, links host, token lifetime).
_OPTION_OF = {"default_page_size": "--page-size", "max_page_size": "--max-page-size", "error_rate": "--error-rate",
              "drop_rate": "--drop-rate", "rate_limit": "--rate-limit", "customers": "--customers",
              "sites": "--sites"}


def _options_in(message: str) -> str:
    return "/".join(option for name, option in _OPTION_OF.items() if re.search(rf"\b{name}\b", message))


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _at_least(
    lowest: float, parse: Callable[[str], float], meaning: str, highest: float = math.inf
) -> Callable[[str], float]:
    def check(text: str) -> float:
        value = parse(text)
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(f"must be {meaning}, got {text}")
        return value
    return check


# A sandbox that waits longer than an hour per request serves nothing (and sleep() overflows).
_MAX_DELAY_MS = 3_600_000


def _port(text: str) -> int:
    port = _whole(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be in the range 0-65535 (0: any free port), got {text}")
    return port


def _token(text: str) -> str:
    if not text or not all("!" <= c <= "~" for c in text):
        raise argparse.ArgumentTypeError("must be a non-empty string of printable ASCII without whitespace")
    return text


def _links_host(text: str) -> str:
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid URL ({error})") from None
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise argparse.ArgumentTypeError(
            f"must be an absolute http(s) URL: scheme and host, optionally a path "
            f"(e.g. https://app.kajabi.com/api), got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kql sandbox", description="Serve a local Kajabi customers API on 127.0.0.1.")
    p.add_argument("--port", type=_port, default=8477, help="port on 127.0.0.1 (0: any free port; default 8477)")
    p.add_argument("--customers", type=_whole, default=10_000, help="customers to generate (default 10000)")
    p.add_argument("--sites", type=_whole, default=1, help="sites; with more than one, filter[site_id] is required")
    p.add_argument("--seed", type=_whole, default=1, help="seed of the generated data and of the faults (default 1)")
    p.add_argument("--db", help="SQLite file to build (or reuse when seed, size and sites match)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help=f"where generated data is cached (default: ${CACHE_ENV}, else the user cache directory)")
    p.add_argument("--no-cache", action="store_true", help="generate the data in memory, neither reading nor "
                   "writing the cache")
    delay = _at_least(0, _number, f"between 0 and {_MAX_DELAY_MS:,} (one hour)", _MAX_DELAY_MS)
    p.add_argument("--latency-ms", type=delay, default=0, help="added latency per request")
    p.add_argument("--jitter-ms", type=delay, default=0, help="random extra latency, 0..N ms")
    p.add_argument("--error-rate", type=_number, default=0.0, help="share of requests answered 503 (0..1)")
    p.add_argument("--rate-limit", type=_number, metavar="RPS", help="requests per second before 429 + Retry-After")
    p.add_argument("--drop-rate", type=_number, default=0.0, help="share of responses cut off mid-body (0..1)")
    p.add_argument("--page-size", type=_whole, default=DEFAULT_PAGE_SIZE,
                   help=f"default page[size] (default {DEFAULT_PAGE_SIZE})")
    p.add_argument("--max-page-size", type=_whole, default=MAX_PAGE_SIZE,
                   help=f"largest page[size] accepted (default {MAX_PAGE_SIZE})")
    p.add_argument("--links-host", type=_links_host,
                   help="origin (and path prefix) for pagination links, e.g. https://app.kajabi.com/api")
    p.add_argument("--token", type=_token, default="sandbox", help="static bearer token accepted (default: sandbox)")
    p.add_argument("--expires-in", type=_at_least(1, _whole, "> 0 (seconds)"), default=3600,
                   help="lifetime of OAuth access tokens, seconds")
    return p



def _fail(message: object) -> int:
    print("kql sandbox: " + " ".join(str(message).split()), file=sys.stderr)  # one line, whatever the error
    return 2


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        cache = False if args.no_cache or args.db else (args.cache_dir or default_cache_dir())
        sandbox = Sandbox(
            customers=args.customers, seed=args.seed, sites=args.sites, port=args.port, latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms, error_rate=args.error_rate, rate_limit=args.rate_limit,
            drop_rate=args.drop_rate, max_page_size=args.max_page_size, default_page_size=args.page_size,
            links_host=args.links_host, token=args.token, expires_in=args.expires_in, db=args.db, cache=cache,
        )
    except ValueError as error:
        if args.db is not None and args.db in str(error):
            return _fail(error)  # --db names a file that is not a sandbox database
        # A setting the sandbox refuses (it checks them before generating any data): a usage error.
        parser.print_usage(sys.stderr)
        options = _options_in(str(error))
        print(f"kql sandbox: error: {f'argument {options}: ' if options else ''}{error}", file=sys.stderr)
        return 2
    except sqlite3.Error as error:  # --db cannot be opened or written
        return _fail(f"--db {args.db}: {error}" if args.db else error)
    except OSError as error:  # --db cannot be read or replaced; or the port is in use or not allowed
        if error.filename is not None:
            return _fail(f"--db {error.filename}: {error.strerror or error}")
        return _fail(f"cannot listen on 127.0.0.1:{args.port}: {error.strerror or error}")
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug: still one readable line, not a traceback
        return _fail(f"internal error ({type(error).__name__}): {error}")
    # Both stop the server; SIGINT explicitly, since a shell's background job starts with it ignored.
    # The handler raises nothing: it asks the server to stop (from a thread, as shutdown() waits for
    # serve_forever), so a signal that lands while the banner is printed or before serving starts
    # still ends in a clean exit 0, never a KeyboardInterrupt traceback.
    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=sandbox.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        print(sandbox.base_url, flush=True)
        how = "loaded from the cache" if sandbox.store.loaded_from_cache else "built"
        print(f"{args.customers} customers, {args.sites} site(s), seed {args.seed}, {how} in "
              f"{time.perf_counter() - started:.1f}s; token: {args.token}; client id/secret: sandbox/sandbox; "
              "Ctrl-C stops", file=sys.stderr, flush=True)
        sandbox.serve_forever()
    except BrokenPipeError:
        pass  # whoever read the banner has gone; stopping is all that is left
    finally:
        sandbox.server.server_close()
        sandbox.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
