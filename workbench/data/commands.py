"""The `workbench data` commands: list what is present, download what is public.

`workbench/cli.py` calls :func:`add_data_commands` with its subparsers; each command returns an exit code, and a
`DataError` (bad file, failed download) is printed by the CLI as `error: file:line: problem` with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

NO_DATA_HINT = (
    "set WORKBENCH_DATA to a folder laid out like shared/data (e.g. `export WORKBENCH_DATA=/path/to/data`) or pass "
    "--root, or fetch a dataset with `workbench data download NAME`"
)

DATA_DESCRIPTION = """\
List the datasets under the data root, one row per (dataset, subset, split): rows, label distribution, rows
dropped on purpose (with the reason) and notes (seeded splits, empty stubs). A dataset that is absent is listed as
missing, with the command that fetches it. The first line says which data root was read and why.

Exit codes: 0 all present datasets are complete and readable; 1 a dataset folder is incomplete (e.g. an
AfriSenti language without test.tsv; the files are listed); 2 a file the loaders would reject (its file, line
and problem are printed), or no dataset at all under the data root (unset, empty or wrong WORKBENCH_DATA).

The data root is --root, else $WORKBENCH_DATA, else ./data.

  workbench data                              list (same as `workbench data list`)
  workbench data download afrisenti           fetch a dataset (checksummed) into the data root
  workbench data download imdb --root ~/data  fetch into another folder
"""

DOWNLOAD_EPILOG = """\
Each file is verified against its SHA-256 after the download; a mismatch removes it. Files already present with
the right checksum are kept (--force fetches them again). --base-url points at a mirror that holds the upstream
files under the same relative paths (http://, https:// or file://).
BESSTIE (gated on the Hugging Face Hub) and CMU-MOSI/MOSEI (CMU-MultimodalSDK) are not fetched: the command
prints how to get them and where to put the files, and exits with code 1."""


def _root_argument(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument("--root", default=default, help="data root (default: $WORKBENCH_DATA, else ./data)")


def cmd_data_list(args: argparse.Namespace) -> int:
    """Print which data root is read and why, then the summary table of what is present. Exit code 1 when a
    dataset folder is incomplete, 2 when no dataset is found."""
    from workbench.data.catalog import summarize
    from workbench.data.schema import data_root_source

    root, why = data_root_source(args.root)
    shown = root.absolute()
    print(f"data root: {shown} ({why})")
    if not root.is_dir():
        print(f"error: data root {shown} does not exist ({why}); {NO_DATA_HINT}", file=sys.stderr)
        return 2
    table = summarize(root)
    if not table.attrs.get("found"):
        print(f"error: no dataset found under {shown} ({why}); {NO_DATA_HINT}", file=sys.stderr)
        return 2
    for dataset, group in table.groupby("dataset", sort=False):
        print(dataset)
        columns = ["subset", "split", "rows", "labels"]
        cells = group[columns].astype(str)
        widths = {c: cells[c].str.len().max() for c in columns}
        for (_, row), (_, raw) in zip(cells.iterrows(), group.iterrows()):
            line = "  " + "  ".join(
                row[c].rjust(widths[c]) if c == "rows" else row[c].ljust(widths[c]) for c in columns
            )
            extras = [str(raw[c]) for c in ("dropped", "note") if str(raw.get(c) or "").strip()]
            if str(raw.get("status", "ok")) != "ok":
                extras.insert(0, str(raw["status"]))
            print(line.rstrip() + (f"   [{'; '.join(extras)}]" if extras else ""))
    incomplete = table.attrs.get("incomplete", [])
    if incomplete:
        print(f"error: {len(incomplete)} file(s) missing from dataset folders that are present:", file=sys.stderr)
        for path in incomplete:
            print(f"  {path}: file not found", file=sys.stderr)
        print("  get them with the `workbench data download` commands listed above", file=sys.stderr)
        return 1
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    """Download one dataset; print where its files are, or the manual steps for gated data."""
    from workbench.data.download import ManualDownloadRequired, download

    try:
        paths = download(args.name, root=args.root, base_url=args.base_url, force=args.force)
    except ManualDownloadRequired as err:
        print(err.problem)
        return 1
    for path in paths:
        print(path)
    print(f"{args.name}: {len(paths)} file(s) ready", file=sys.stderr)
    return 0


def add_data_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `workbench data [list]` and `workbench data download NAME` on the CLI's subparsers."""
    from workbench.data.download import SOURCES

    data = subparsers.add_parser(
        "data",
        help="list the datasets present, or download one",
        description=DATA_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _root_argument(data)
    data.set_defaults(func=cmd_data_list)
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")

    listing = actions.add_parser("list", help="table of datasets present (the default)")
    _root_argument(listing, argparse.SUPPRESS)  # keeps a --root given before the action
    listing.set_defaults(func=cmd_data_list)

    names = "\n".join(f"  {name:<26}{source.description}" for name, source in SOURCES.items())
    fetch = actions.add_parser(
        "download",
        help="fetch a public dataset into the data root (checksummed)",
        description=f"Download a dataset into the layout the loaders read.\n\ndatasets:\n{names}",
        epilog=DOWNLOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch.add_argument("name", choices=list(SOURCES), metavar="NAME", help="dataset name (listed above)")
    _root_argument(fetch, argparse.SUPPRESS)
    fetch.add_argument("--base-url", default=None, help="mirror to download from instead of the official hosts")
    fetch.add_argument("--force", action="store_true", help="download again even if the files are present")
    fetch.set_defaults(func=cmd_data_download)
    return data
