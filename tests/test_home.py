"""FEDSAGE_HOME is private: created 0700, refused when another user could change it,
and what fedsage writes into it (registry, jobs, store, endpoints, logs) is 0600 / 0700."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from fedsage import DbConnection, DwcSagemaker
from fedsage._home import atomic_path, fedsage_home, registry
from fedsage.errors import ConfigurationError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_home_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDSAGE_HOME", str(tmp_path / "deep" / "home"))
    home = fedsage_home()
    assert _mode(home) == 0o700
    registry().add("job", "x", {"name": "x"})
    assert _mode(home / "registry.sqlite3") == 0o600


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_home_others_may_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    home = tmp_path / f"shared-{mode:o}"
    home.mkdir()
    home.chmod(mode)
    monkeypatch.setenv("FEDSAGE_HOME", str(home))
    with pytest.raises(ConfigurationError, match=rf"writable by group or others.*chmod 700 {home}"):
        fedsage_home()


def test_a_home_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.getuid() == 0:
        home = tmp_path / "theirs"
        home.mkdir(mode=0o700)
        os.chown(home, 65534, 65534)  # nobody
    else:
        home = Path("/usr")  # root's, not writable by group or others
    monkeypatch.setenv("FEDSAGE_HOME", str(home))
    with pytest.raises(ConfigurationError, match="belongs to another user"):
        fedsage_home()


def test_an_old_readable_home_of_ours_is_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "old"
    home.mkdir()
    home.chmod(0o755)
    monkeypatch.setenv("FEDSAGE_HOME", str(home))
    assert fedsage_home() == home.resolve()
    assert _mode(home) == 0o700


MODEL_SCRIPT = textwrap.dedent(
    """
    import os, pickle
    def model_fn(model_dir):
        return pickle.load(open(os.path.join(model_dir, "m.pkl"), "rb"))
    def predict_fn(data, model):
        return data * model
    if __name__ == "__main__":
        pickle.dump(2.0, open(os.path.join(os.environ["SM_MODEL_DIR"], "m.pkl"), "wb"))
        print("trained")
    """
)


def test_everything_fedsage_writes_in_the_home_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.umask(0o022)  # a usual shell umask: fedsage must not rely on a strict one
    script = tmp_path / "train.py"
    script.write_text(MODEL_SCRIPT)
    dwc = DwcSagemaker(prefix="private")
    handle = dwc.train_sklearn_model(
        pd.DataFrame({"a": [1.0, 2.0]}),
        train_script=str(script),
        framework_version="host",
        wait=True,
        logs="None",
    )
    endpoint = dwc.deploy(handle, 1, "local", cleanup_resources=False)
    with DbConnection.embedded() as warehouse:  # the embedded warehouse, in the home
        warehouse.create_table("CREATE TABLE secrets (v VARCHAR)")
        warehouse.insert_into_table("secrets", pd.DataFrame({"v": ["x"]}))
    try:
        assert dwc.predict(endpoint, "1.5", content_type="text/csv") == "3.0"
        home = fedsage_home()
        runtimes = Path(os.environ["FEDSAGE_RUNTIMES_DIR"]).resolve()
        loose = []
        for folder, dirs, files in os.walk(home):
            here = Path(folder)
            if here == runtimes or runtimes in here.parents:
                continue
            for name in dirs + files:
                path = here / name
                if path.is_symlink():
                    continue
                if _mode(path) & 0o077:
                    loose.append(f"{path.relative_to(home)} {stat.filemode(path.lstat().st_mode)}")
        assert _mode(home) == 0o700
        assert loose == []
        assert any((home / "s3").rglob("train.csv"))  # the walk did see the store
        assert (home / "endpoints" / endpoint / "server.log").is_file()
        assert (home / "warehouse.duckdb").is_file()
    finally:
        dwc.delete_endpoint(endpoint)


def test_atomic_path_moves_a_private_file_into_place(tmp_path: Path) -> None:
    target = tmp_path / "new" / "out.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent.parent == target.parent and not tmp.exists()
        assert tmp.parent.stat().st_mode & 0o777 == 0o700
        tmp.write_bytes(b"done")
        (tmp.parent / "writer's own scratch").write_bytes(b"x")
        assert not target.exists()
    assert target.read_bytes() == b"done"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass  # the writer wrote nothing
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
