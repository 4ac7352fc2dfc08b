"""check-params: validates the whole params.yaml. DVC runs it whenever the file changes (params.yaml is a file
dependency of this stage), including keys no other stage depends on, and fails, so that the experiment is not
recorded as if it ran, when

- a typo adds an unknown key (`dvc exp run -S +serach.lr=0.01`): the unknown-key line;
- keys of other tasks than the selected one changed since the last commit (params.yaml against
  `git show HEAD:params.yaml`), and none that the task reads changed since its last run (the values in dvc.lock,
  else the commit's): `-S search.lr=0.05` when task is digits, which reads digits.search.lr. The line names the
  key to use instead. Changed together with keys the task reads, they only get a warning;
- dvc.yaml tracks other tasks' sections only (a workspace narrowed to one task by tools/workspace.py) and task names
  another: its changes would rerun nothing.

Keys that only other search strategies than the selected `search.strategy` read, changed since the last commit
(their sections: `-S nb201.search.enas.lr=0.01` while the strategy is rea, which never reads it; EDNAS's
`search.policy_*` keys: strategies.key_owners), get a warning naming the strategy key to set with them, not an
error: a grid over strategies sets one strategy's keys for all its runs.

Writes nothing."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ednas_core.config import TASKS, Params, changed_keys, flatten
from ednas_core.strategies import key_owners

from .common import PARAMS_FILE, StageError, key_task, read_params, run_stage

DVC_YAML = Path("dvc.yaml")
DVC_LOCK = Path("dvc.lock")
MISSING = object()


def _load(text: str) -> dict[str, Any] | None:
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe").load(text)
    except YAMLError:
        return None
    return data if isinstance(data, dict) else None


def committed_params(path: Path = PARAMS_FILE) -> str | None:
    """params.yaml as the last commit (the baseline of `dvc exp run`) has it; None outside git."""
    try:
        done = subprocess.run(["git", "show", f"HEAD:./{path.as_posix()}"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def flat_params_text(text: str | None) -> dict[str, Any]:
    """params.yaml's text as dotted keys; empty when it does not parse."""
    data = _load(text) if text is not None else None
    return flatten(data) if data is not None else {}


def locked_params(path: Path = DVC_LOCK) -> dict[str, Any]:
    """The param values the stages last ran with (dvc.lock), as dotted keys."""
    data = _load(path.read_text()) if path.is_file() else None
    out: dict[str, Any] = {}
    for stage in ((data or {}).get("stages") or {}).values():
        values = ((stage or {}).get("params") or {}).get(PARAMS_FILE.as_posix())
        for key, value in (values or {}).items():
            out.update(flatten({key: value}) if isinstance(value, dict) else {key: value})
    return out


def own_changes(now: dict[str, Any], committed: dict[str, Any], locked: dict[str, Any], task: str) -> list[str]:
    """The keys the selected task reads (or all tasks share) whose value differs from its last run: the value in
    dvc.lock where it has the key, else the commit's (a `dvc exp run` starts from the workspace, which may hold
    an earlier experiment's values: those ran already)."""
    return [k for k, v in now.items() if key_task(k) in (None, task)
            and (locked[k] if k in locked else committed.get(k, MISSING)) != v]


def other_task_line(other: list[str], params: Params) -> str:
    """What the changed keys of other tasks than the selected one do: nothing, and the key to use instead."""
    owners = [t for t in TASKS if t in {key_task(k) for k in other}]
    prefix, flat = params.task_prefix(), flatten(asdict(params))
    own = [f"{prefix}{k if key_task(k) == 'cifar10' else k.split('.', 1)[1]}" for k in other]
    own = [k for k in dict.fromkeys(own) if k in flat]
    shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
    whose = f"task{'s' if len(owners) > 1 else ''} {' and '.join(owners)}"
    reads = f"which reads {', '.join(own[:3])}" if own else f"which has no such key{'s' if len(other) > 1 else ''}"
    line = (f"{shown} belong{'s' if len(other) == 1 else ''} to {whose}, but task is {params.task} ({reads}); "
            "nothing will change — ")
    return line + (f"use -S {own[0]}=..." if own else f"run task {owners[0]} with -S task={owners[0]}")


def other_task_warning(now: dict[str, Any], committed: dict[str, Any], locked: dict[str, Any],
                       params: Params) -> str:
    """Keys of other tasks than the selected one changed since the commit: StageError when none that the task
    reads changed since its last run (the change would do nothing), else the warning line; '' when no other task's
    key changed (or there is no commit to compare with)."""
    other = [k for k in changed_keys(now, committed) if key_task(k) not in (None, params.task)] if committed else []
    if not other:
        return ""
    line = other_task_line(other, params)
    if not own_changes(now, committed, locked, params.task):
        raise StageError(line)
    return line.replace("nothing will change", "that change does nothing")


def unread_strategy_keys(keys: list[str], params: Params) -> dict[str, tuple[str, ...]]:
    """The keys among `keys` of the selected task's search section that only other strategies than the selected
    one read (their sections, search.<strategy>.*, and EDNAS's policy_* keys: strategies.key_owners), each with
    the strategies that read it: the run never reads them."""
    prefix, chosen = f"{params.task_prefix()}search.", params.task_config().search.strategy
    owners = {k: key_owners(k[len(prefix):]) for k in keys if k.startswith(prefix)}
    return {k: names for k, names in owners.items() if names and chosen not in names}


def other_strategy_warning(now: dict[str, Any], committed: dict[str, Any], params: Params) -> str:
    """Keys that only other strategies read changed since the commit: the warning line; '' when none changed (or
    there is no commit). Never an error: a grid over strategies (`-S 'search.strategy=ednas,nao' -S
    search.nao.epochs=100`) sets a section for the runs of one strategy only, and its other runs must go on."""
    unread = unread_strategy_keys(changed_keys(now, committed), params) if committed else {}
    if not unread:
        return ""
    prefix = f"{params.task_prefix()}search."
    owners = list(dict.fromkeys(name for names in unread.values() for name in names))
    keys = list(unread)
    shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    return (f"{shown} {'is' if len(keys) == 1 else 'are'} read by strateg{'ies' if len(owners) > 1 else 'y'} "
            f"{' and '.join(owners)} only, but {prefix}strategy is {params.task_config().search.strategy}; that "
            f"change does nothing — add -S {prefix}strategy={owners[0]} to run it")


def check_dvc_yaml(task: str, path: Path = DVC_YAML) -> None:
    """Fails when dvc.yaml's params lists name task sections, none of the selected task."""
    data = _load(path.read_text()) if path.is_file() else None
    keys = [key for stage in ((data or {}).get("stages") or {}).values() if isinstance(stage, dict)
            for key in stage.get("params") or [] if isinstance(key, str)]
    tracked = [t for t in TASKS if t in {key_task(k) for k in keys}]
    if tracked and task not in tracked:
        raise StageError(f"task is {task}, but {path} tracks the params of task {' and '.join(tracked)} only (a "
                         f"workspace made for it by tools/workspace.py): changes to {task}'s keys would rerun "
                         f"nothing; run task {task} in the project itself or in a workspace made for it")


def main() -> None:
    params, text = read_params()
    check_dvc_yaml(params.task)
    now, committed, locked = flat_params_text(text), flat_params_text(committed_params()), locked_params()
    for warning in (other_task_warning(now, committed, locked, params),
                    other_strategy_warning(now, committed, params)):
        if warning:
            print(f"check-params: warning: {warning}", file=sys.stderr)
    print(f"check-params: params.yaml is valid (task: {params.task})")


if __name__ == "__main__":
    run_stage("check-params", main)
