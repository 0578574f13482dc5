"""`magicvideo data ...` subcommands (placeholder, filled in below)."""


def add_data(subparsers):
    subparsers.add_parser("data", help="benchmarks and datasets")
