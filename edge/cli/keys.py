"""`qamoe-keys`: CURVE key pairs for authenticated, encrypted publishing.

    qamoe-keys generate keys/server --name server      # on the publisher
    qamoe-keys generate keys/tap --name tap            # on each subscriber; copy tap.key to the publisher's
                                                       # allowed-clients directory, and server.key to the client
Exit codes: 0 written, 2 bad arguments or the files exist."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.errors import EXIT_OK, EXIT_USAGE
from edge.publish import CurveKeyError
from edge.publish.curve import generate_keypair, load_public_key


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qamoe-keys",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]),
    )
    sub = p.add_subparsers(dest="command", required=True)
    gen = sub.add_parser(
        "generate", help="write DIR/NAME.key (public) and DIR/NAME.key_secret (secret, 0600)"
    )
    gen.add_argument("directory", type=Path)
    gen.add_argument("--name", required=True, help="file name stem, e.g. server or tap")
    gen.add_argument("--force", action="store_true", help="replace existing files of that name")
    show = sub.add_parser("show", help="print the public key of a .key or .key_secret file")
    show.add_argument("file", type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            files = generate_keypair(args.directory, args.name, overwrite=args.force)
            print(f"public key (share): {files.public}")
            print(f"secret key (keep private): {files.secret}")
        else:
            print(load_public_key(args.file).decode("ascii"))
    except CurveKeyError as exc:
        print(f"qamoe-keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # generate: DIRECTORY is a file or not writable; show: FILE unreadable
        where, fix = (
            (args.directory, "pass a directory you can write to")
            if args.command == "generate"
            else (args.file, "pass a readable .key or .key_secret file")
        )
        print(f"qamoe-keys: cannot use {where} ({exc.strerror or exc}): {fix}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
