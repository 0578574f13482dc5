#!/usr/bin/env bash
# Pack Prefect and MLflow (skinny) for the device tool's Python 3.12, so that the whole eval flow
# can run on the GPU machine (benchmarks: flows/bench_overhead.py --model sd15):
#
#   scripts/pack_flow_deps.sh DEST        # -> DEST/prefect-mlflow.tar.xz (extract into a site dir)
#
# Downloads cp312 manylinux wheels of the pins in pyproject.toml / STACK.md (prefect 3.8.8,
# fastapi<0.151, sqlalchemy<2.1, mlflow-skinny at our mlflow version), leaves out the packages the
# device image already has (its package list: /work/.library/device/KINDS.md) and those carried
# beside (.whl: pydantic, diffusers, importlib_metadata 9.x, which MLflow needs below 10; .raylite:
# Ray with jsonschema), unpacks the rest into one
# folder and compresses it with xz: a call carries at most 64 MiB with the working tree, and Ray
# alone is 27 MB. Needs network access to PyPI (this machine), not on the device.
set -euo pipefail
dest=${1:?usage: scripts/pack_flow_deps.sh DEST}
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mlflow_version=$("$py" -c "import importlib.metadata as m; print(m.version('mlflow'))" 2>/dev/null || echo 3.17.2)
"$py" -m pip download -q "prefect==3.8.8" "fastapi<0.151" "sqlalchemy<2.1" "mlflow-skinny==$mlflow_version" \
    --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 -d "$work/wheels"
# on the device already (KINDS.md) or carried beside (.whl, .raylite)
have='annotated_doc annotated_types anyio attrs certifi charset_normalizer click cloudpickle colorama fsspec h11
      httpcore httpx humanize idna importlib_metadata jinja2 markdown markdown_it_py markupsafe mdurl packaging pathspec
      pluggy prometheus_client protobuf pydantic pydantic_core typing_extensions typing_inspection pygments
      python_dateutil pyyaml regex requests rich shellingham six typer urllib3 zipp jsonschema
      jsonschema_specifications referencing rpds_py'
keep=()
for w in "$work"/wheels/*.whl; do
    name=$(basename "$w" | cut -d- -f1 | tr 'A-Z.-' 'a-z__')
    if [[ " $(echo $have) " == *" $name "* ]]; then continue; fi
    keep+=("$w")
done
"$py" -m pip install -q --no-deps --no-compile --target "$work/site" --python-version 3.12 --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 "${keep[@]}"
rm -rf "$work/site/bin"
find "$work/site" -name '__pycache__' -prune -exec rm -rf {} +
mkdir -p "$dest"
tar -C "$work/site" -cf - . | xz -T0 -6 > "$dest/prefect-mlflow.tar.xz"
echo "${#keep[@]} packages -> $dest/prefect-mlflow.tar.xz ($(du -h "$dest/prefect-mlflow.tar.xz" | cut -f1))"
