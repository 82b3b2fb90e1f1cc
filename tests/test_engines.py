"""Real engines ship work to worker processes: Spark, Dask and Ray, locally, offline, no import.

Each test runs an engine in a network namespace with only loopback up (the engines talk to their
workers over 127.0.0.1), and every worker encodes the mixed sample with every encoding; the ids
must equal plain tiktoken's on the real files. No user code imports the package: tiktoken finds
its plugin. Each test has a HOME and a TMPDIR of its own, and checks that no copy of the data was
extracted there. The engines come from PyPI into the tests' own venvs, made once for this module.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_zipped import copies_of_the_data, private_env

from helpers import make_venv, offline, run

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).parent))
from probe_encodings import MIXED_TEXT  # noqa: E402

O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"  # o200k_base's file: one per copy of the data
ENGINES = ("pyspark>=4.0", "dask[distributed]>=2024.1", "ray>=2.30")
# What each worker sends back: the ids of every encoding, where the package was loaded from,
# and the worker's process id (the work must have left the driver's process).
WORK = f"""
import json, os, sys

TEXT = {MIXED_TEXT!r}


def encode(name):
    import tiktoken

    ids = tiktoken.get_encoding(name).encode(TEXT, allowed_special="all")
    package = sys.modules.get("tiktoken_encodings_offline")
    return name, ids, getattr(package, "__file__", None), os.getpid()


def report(results):
    print(json.dumps({{"results": results, "driver": os.getpid()}}))
"""
SPARK = (
    WORK
    + """
from pyspark.sql import SparkSession

names = sys.argv[1].split(",")
spark = (
    SparkSession.builder.master("local[2]")
    .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.ui.enabled", "false").config("spark.local.dir", os.environ["TMPDIR"])
    .getOrCreate()
)
report(spark.sparkContext.parallelize(names, len(names)).map(encode).collect())
spark.stop()
"""
)
DASK = (
    WORK
    + """
if __name__ == "__main__":
    from distributed import Client, LocalCluster

    names = sys.argv[1].split(",")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        report(client.gather(client.map(encode, names)))
"""
)
RAY = (
    WORK
    + """
import ray

names = sys.argv[1].split(",")
ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=sys.argv[2])
report(ray.get([ray.remote(encode).remote(name) for name in names]))
ray.shutdown()
"""
)


@pytest.fixture(scope="module")
def venvs(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """``installed``: the engines, tiktoken and the wheel; ``bare``: pyspark and tiktoken only."""
    folder = tmp_path_factory.mktemp("engine-venvs")
    installed = make_venv(folder / "installed", "tiktoken", *ENGINES, str(full_wheel))
    bare = make_venv(folder / "bare", "tiktoken", ENGINES[0])
    yield {"installed": installed, "bare": bare}
    shutil.rmtree(folder, ignore_errors=True)  # about 1.5 GB


def engine_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A HOME and a TMPDIR of the test's own, nothing of ours on PYTHONPATH."""
    env = private_env(tmp_path, tmp_path, **overrides)
    del env["PYTHONPATH"]
    return env


def java_env(env: dict[str, str]) -> dict[str, str]:
    java = shutil.which("java")
    if java is None:
        pytest.fail("no java: .ci/run installs default-jre-headless")
    # -XX:-UsePerfData: no /tmp/hsperfdata_<user>, which the JVM makes there whatever TMPDIR says
    return {
        **env,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_HOSTNAME": "localhost",
        "JAVA_TOOL_OPTIONS": "-XX:-UsePerfData",
    }


def check(result_json: str, reference: dict[str, object], tmp_path: Path, archive: str | None = None) -> None:
    report = json.loads(result_json.strip().splitlines()[-1])
    served = {name: ids for name, ids, _, _ in report["results"]}
    assert served == reference["encodings"]
    workers = {pid for *_, pid in report["results"]}
    assert report["driver"] not in workers  # the work ran in worker processes
    files = {file for _, _, file, _ in report["results"]}
    if archive is None:  # pip-installed: the package in the venv's site-packages
        assert all(file and "site-packages" in file for file in files), files
    else:  # shipped: every worker loaded it from (Spark's copy of) the .zip
        assert all(file and f"{archive}/tiktoken_encodings_offline/" in file for file in files), files
    assert copies_of_the_data(tmp_path) == []  # nothing extracted into HOME or TMPDIR


def names(reference: dict[str, object]) -> str:
    encodings = reference["encodings"]
    assert isinstance(encodings, dict)
    return ",".join(encodings)


def test_spark_local_with_the_wheel_pip_installed(
    venvs: dict[str, Path], reference: dict[str, object], tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text(SPARK)
    env = java_env(engine_env(tmp_path, PYSPARK_PYTHON=str(venvs["installed"])))
    result = run(offline([str(venvs["installed"]), str(script), names(reference)]), env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    check(result.stdout, reference, tmp_path)


def test_spark_submit_py_files_with_a_zip_copy_of_the_wheel(
    venvs: dict[str, Path], full_wheel: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    # Spark puts only .zip, .egg and .jar files of --py-files on the workers' sys.path: a .whl is
    # copied and never imported. The same wheel under a .zip name works.
    archive = tmp_path / "tiktoken_encodings_offline.zip"
    shutil.copyfile(full_wheel, archive)
    script = tmp_path / "job.py"
    script.write_text(SPARK)
    bare = venvs["bare"]
    env = java_env(engine_env(tmp_path, PYSPARK_PYTHON=str(bare)))
    submit = [str(bare.parent / "spark-submit"), "--master", "local[2]", "--py-files", str(archive), str(script)]
    result = run(offline([*submit, names(reference)]), env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    check(result.stdout, reference, tmp_path, archive=archive.name)


def test_dask_local_cluster_with_worker_processes(
    venvs: dict[str, Path], reference: dict[str, object], tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text(DASK)
    env = engine_env(tmp_path)
    result = run(offline([str(venvs["installed"]), str(script), names(reference)]), env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    check(result.stdout, reference, tmp_path)


def test_ray_local(venvs: dict[str, Path], reference: dict[str, object], tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(RAY)
    env = engine_env(tmp_path)
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # a short path: Ray's sockets live there
    try:
        command = [str(venvs["installed"]), str(script), names(reference), str(ray_tmp)]
        result = run(offline(command), env=env, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        check(result.stdout, reference, tmp_path)
        assert list(ray_tmp.rglob(O200K_FILE)) == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_spark_submit_py_files_never_imports_a_whl(
    venvs: dict[str, Path], full_wheel: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    # Why the README says to rename it: the same wheel as a .whl is copied to the executors and
    # left off their sys.path, so tiktoken goes to the network, which is not there.
    script = tmp_path / "job.py"
    script.write_text(SPARK)
    bare = venvs["bare"]
    env = java_env(engine_env(tmp_path, PYSPARK_PYTHON=str(bare)))
    submit = [str(bare.parent / "spark-submit"), "--master", "local[2]", "--py-files", str(full_wheel), str(script)]
    result = run(offline([*submit, "cl100k_base"]), env=env, check=False)
    assert result.returncode != 0
    assert "ConnectionError" in result.stderr or "NameResolutionError" in result.stderr, result.stderr[-3000:]
