"""check-params: validates the whole params.yaml. DVC runs it whenever any key of the file changes, including
keys no other stage depends on, so that `dvc exp run -S +serach.lr=0.01` (a typo that adds an unknown key) fails
with the unknown-key line instead of recording an experiment that ran nothing. Writes nothing."""

from __future__ import annotations

from .common import read_params, run_stage


def main() -> None:
    params, _ = read_params()
    print(f"check-params: params.yaml is valid (task: {params.task})")


if __name__ == "__main__":
    run_stage("check-params", main)
