#!/usr/bin/env bash
# Pack Prefect and MLflow (skinny) for the device tool's Python 3.12, so that the whole eval flow
# can run on the GPU machine (benchmarks: flows/bench_overhead.py --model sd15):
#
#   scripts/pack_flow_deps.sh DEST        # -> DEST/$NAME (default prefect-mlflow.tar.xz; extract into a site dir)
#
# Downloads cp312 manylinux wheels of the pins in pyproject.toml / STACK.md (prefect 3.8.8,
# fastapi<0.151, sqlalchemy<2.1, mlflow-skinny at our mlflow version) and of $EXTRA (more requirement
# specs, e.g. `ray==2.60.0 av==18.1.0`: scripts/gpu_scale.sh), leaves out the packages the device image
# already has (its package list: /work/.library/device/KINDS.md) and those carried beside ($BESIDE;
# default: .whl's pydantic, diffusers and importlib_metadata 9.x, which MLflow needs below 10, and
# .raylite's Ray with jsonschema), unpacks the rest into one folder (Ray without the parts the flow never
# imports) and compresses it with xz: a call carries at most 64 MiB with the working tree, and Ray
# alone is 27 MB. Needs network access to PyPI (this machine), not on the device.
set -euo pipefail
dest=${1:?usage: scripts/pack_flow_deps.sh DEST}
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plat=(--python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux_2_28_x86_64)
mlflow_version=$("$py" -c "import importlib.metadata as m; print(m.version('mlflow'))" 2>/dev/null || echo 3.17.2)
# shellcheck disable=SC2086  # EXTRA is a list of requirement specs
"$py" -m pip download -q "prefect==3.8.8" "fastapi<0.151" "sqlalchemy<2.1" "mlflow-skinny==$mlflow_version" ${EXTRA:-} \
    "${plat[@]}" -d "$work/wheels"
# the GPU image's packages (/work/.library/device/KINDS.md, "Python packages already there")
have='absl_py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated_doc anyio attrs certifi
      charset_normalizer click cloudpickle colorama filelock frozenlist fsspec grpcio h11 hf_xet httpcore httpx
      huggingface_hub humanize idna jinja2 markdown markdown_it_py markupsafe mdurl msgpack multidict numpy packaging
      pandas pathspec pillow pluggy prometheus_client propcache protobuf psutil pyarrow pygments python_dateutil
      pyyaml regex requests rich safetensors scipy shellingham six tokenizers torch tqdm transformers typer
      typing_extensions urllib3 werkzeug yarl zipp'
beside=${BESIDE-annotated_types importlib_metadata pydantic pydantic_core typing_inspection jsonschema
                jsonschema_specifications referencing rpds_py}
keep=()
for w in "$work"/wheels/*.whl; do
    name=$(basename "$w" | cut -d- -f1 | tr 'A-Z.-' 'a-z__')
    if [[ " $(echo $have $beside) " == *" $name "* ]]; then continue; fi
    keep+=("$w")
done
"$py" -m pip install -q --no-deps --no-compile --target "$work/site" "${plat[@]}" "${keep[@]}"
rm -rf "$work/site/bin"
if [ -d "$work/site/ray" ]; then  # Ray's parts the flow never imports: Java jars, the dashboard's web client, the libraries
    (cd "$work/site/ray" && rm -rf jars dashboard/client rllib data serve llm train tune air workflow)
fi
find "$work/site" -name '__pycache__' -prune -exec rm -rf {} +
mkdir -p "$dest"
name=${NAME:-prefect-mlflow.tar.xz}
tar -C "$work/site" -cf - . | xz -T0 -6 > "$dest/$name"
echo "${#keep[@]} packages -> $dest/$name ($(du -h "$dest/$name" | cut -f1))"
