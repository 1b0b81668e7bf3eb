"""One authenticated GET of the deployed function, for deploy.sh's smoke test.

    printf '%s' "$ID_TOKEN" | python3 -m deploy.smoke URL

The identity token comes on standard input (a credential: never argv). Prints
one line, STATUS<TAB>BODY (the body's first 300 characters, on one line); status
0 when the function could not be reached at all. Standard library only.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def get(url: str, token: str, timeout: float = 60.0) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read(300).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(300).decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, f"could not reach {url}: {error}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m deploy.smoke URL < token", file=sys.stderr)
        return 2
    status, body = get(argv[0], sys.stdin.read().strip())
    print(f"{status}\t{' '.join(body.split())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
