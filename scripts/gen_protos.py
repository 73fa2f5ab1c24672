"""Regenerates the committed `linkplane.v1` Python modules from `protos/`.

Run `uv run python scripts/gen_protos.py` after editing a .proto; CI runs it with `--check`,
which generates into a scratch folder and fails when the committed output differs. It also fills
the git-ignored `third_party/` folder with the google/api, google/rpc and google/longrunning
protos from the installed googleapis-common-protos wheel, which `buf` reads as a second module
(the Buf Schema Registry is out of reach, and copying them into the repo would fork them).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / "third_party"
OUTPUT = ROOT / "client" / "src"
GENERATED = OUTPUT / "linkplane" / "v1"

# The wheel ships google/longrunning/operations.proto as operations_proto.proto, but registers
# its descriptor as "google/longrunning/operations.proto"; importing it under that name keeps
# our generated code loadable next to the wheel's modules.
GOOGLE_PROTOS = {
    "google/api/annotations.proto": "google/api/annotations.proto",
    "google/api/client.proto": "google/api/client.proto",
    "google/api/field_behavior.proto": "google/api/field_behavior.proto",
    "google/api/http.proto": "google/api/http.proto",
    "google/api/launch_stage.proto": "google/api/launch_stage.proto",
    "google/api/resource.proto": "google/api/resource.proto",
    "google/rpc/status.proto": "google/rpc/status.proto",
    "google/rpc/code.proto": "google/rpc/code.proto",
    "google/rpc/error_details.proto": "google/rpc/error_details.proto",
    "google/longrunning/operations_proto.proto": "google/longrunning/operations.proto",
}


def fill_third_party() -> None:
    site = Path(next(iter(google.api.__path__))).parents[1]
    for source, target in GOOGLE_PROTOS.items():
        destination = THIRD_PARTY / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site / source, destination)


def generate(into: Path) -> None:
    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{THIRD_PARTY}",
        f"-I{well_known}",
        f"--python_out={into}",
        f"--grpc_python_out={into}",
        f"--mypy_out={into}",
        f"--mypy_grpc_out={into}",
        *sources,
    ]
    subprocess.run(command, check=True)
    package = into / "linkplane" / "v1"
    (package / "__init__.py").write_text('"""Generated linkplane v1 protocol modules."""\n')
    (package / "py.typed").write_text("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code drifted")
    args = parser.parse_args()
    fill_third_party()
    if not args.check:
        shutil.rmtree(GENERATED, ignore_errors=True)
        generate(OUTPUT)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        fresh = Path(scratch) / "linkplane" / "v1"
        comparison = filecmp.dircmp(fresh, GENERATED)
        drift = comparison.left_only + comparison.right_only + comparison.diff_files
        if drift:
            print(f"generated code drifted from protos/: {sorted(drift)}", file=sys.stderr)
            print("run: uv run python scripts/gen_protos.py", file=sys.stderr)
            return 1
    print("generated code matches protos/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
