"""ednas_core.config: the committed params.yaml, one-line validation errors, task sections, flatten."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ednas_core.config import (ConfigError, DeriveConfig, Params, SearchConfig, TaskConfig, digits_defaults,
                               flatten, from_mapping, load_params)
from ednas_core.seeds import SEED_MAX

PARAMS_YAML = Path(__file__).parents[1] / "params.yaml"


def yaml12(text: str):
    """YAML as DVC (and stages.common.read_params) reads it: ruamel.yaml, YAML 1.2."""
    return YAML(typ="safe").load(text)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml12(PARAMS_YAML.read_text())


def data(raw: dict) -> dict:
    return copy.deepcopy(raw)


def error_of(mapping: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_params(mapping)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- the committed params.yaml ---------------------------------------------------------------------------------

def test_committed_params_equal_typed_defaults(raw):
    assert load_params(raw) == Params()


def test_committed_params_hold_paper_values(raw):
    p = load_params(raw)
    assert p.task == "cifar10"
    s = p.search
    assert (s.lr, s.lr_min, s.epochs, s.batch_size, s.layers, s.init_channels) == (0.05, 0.001, 300, 128, 8, 16)
    assert s.nesterov is True
    assert s.weight_decay == pytest.approx(3e-4)
    assert s.grad_clip == 5
    assert s.policy_lr == pytest.approx(3.5e-4)
    assert (s.policy_beta1, s.policy_beta2) == (0.5, 0.999)
    assert s.policy_weight_decay == pytest.approx(1e-3)
    assert s.baseline_decay == 0.99
    assert p.data.train_portion == 0.8
    assert p.derive.samples == 100
    e = p.evaluate
    assert (e.epochs, e.layers, e.init_channels, e.lr, e.batch_size) == (600, 20, 36, 0.025, 128)
    assert e.auxiliary_weight == 0.4
    assert e.drop_path == 0.2
    assert e.cutout == 16
    assert e.nesterov is False


def test_committed_params_hold_every_knob(raw):
    """The file spells out every key (flatten of the YAML equals flatten of the defaults: same keys)."""
    assert set(flatten(raw)) == set(flatten(dataclasses.asdict(Params())))


def test_committed_digits_sections_equal_digits_defaults(raw):
    p = load_params(raw)
    assert p.digits == digits_defaults()
    assert p.digits.search.epochs == 15 and p.digits.search.augment is False


# Keys whose meaning is plain from their name; every other key line of the sections below needs a comment.
SELF_EXPLANATORY = {"epochs", "batch_size", "layers", "init_channels", "lr_min", "momentum", "nesterov",
                    "weight_decay", "grad_clip", "policy_beta1", "policy_beta2", "policy_weight_decay"}
COMMENTED_SECTIONS = ("runtime", "data", "search", "derive", "evaluate", "tracking")


def test_committed_params_comment_every_non_obvious_key():
    section = None
    checked, uncommented = 0, []
    for number, line in enumerate(PARAMS_YAML.read_text().splitlines(), 1):
        top = re.match(r"^(\w+):", line)
        if top:
            section = top.group(1)
            if section == "task":
                assert "#" in line, f"line {number}: {line}"
            continue
        key = re.match(r"^  (\w+):", line)
        if key and section in COMMENTED_SECTIONS:
            checked += 1
            if "#" not in line and key.group(1) not in SELF_EXPLANATORY:
                uncommented.append(f"line {number}: {section}.{key.group(1)}")
    assert checked > 50  # the parser saw the sections
    assert not uncommented, uncommented


# --- one-line errors --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, value, message", [
    pytest.param(("search", "lr"), -1, "search.lr: got -1; expected a number > 0", id="negative_lr"),
    pytest.param(("search", "lr"), "abc", "search.lr: got 'abc'; expected a number > 0", id="string_lr"),
    pytest.param(("search", "epochs"), True, "search.epochs: got True; expected an integer >= 1",
                 id="bool_for_int"),
    pytest.param(("search", "batch_size"), 1.5, "search.batch_size: got 1.5; expected an integer >= 1",
                 id="float_for_int"),
    pytest.param(("runtime", "amp"), 1, "runtime.amp: got 1; expected true or false", id="int_for_bool"),
    pytest.param(("runtime", "amp"), "yes", "runtime.amp: got 'yes'; expected true or false (params.yaml is "
                 "YAML 1.2, as DVC reads it: yes/no/on/off are strings)", id="yaml11_yes_for_bool"),
    pytest.param(("search", "nesterov"), "off", "search.nesterov: got 'off'; expected true or false (params.yaml "
                 "is YAML 1.2, as DVC reads it: yes/no/on/off are strings)", id="yaml11_off_for_bool"),
    pytest.param(("runtime", "amp"), "true", "runtime.amp: got 'true'; expected true or false (write it without "
                 "quotes)", id="quoted_true_for_bool"),
    pytest.param(("runtime", "amp"), "maybe", "runtime.amp: got 'maybe'; expected true or false",
                 id="string_for_bool"),
    pytest.param(("search", "lr"), "0.05", "search.lr: got '0.05'; expected a number > 0 (write it without quotes)",
                 id="quoted_float"),
    pytest.param(("search", "policy_lr"), "1e-3", "search.policy_lr: got '1e-3'; expected a number >= 0 (write it "
                 "without quotes)", id="quoted_exponent"),
    pytest.param(("search", "epochs"), "5", "search.epochs: got '5'; expected an integer >= 1 (write it without "
                 "quotes)", id="quoted_int"),
    pytest.param(("search", "lr"), True, "search.lr: got True; expected a number > 0", id="bool_for_float"),
    pytest.param(("runtime", "seed"), False, "runtime.seed: got False; expected an integer >= 0 and <= 4294967295",
                 id="bool_for_seed"),
    pytest.param(("runtime", "seed"), 2**64, "runtime.seed: got 18446744073709551616; expected an integer >= 0 and "
                 "<= 4294967295", id="seed_beyond_manual_seed"),
    pytest.param(("runtime", "seed"), 2**32, "runtime.seed: got 4294967296; expected an integer >= 0 and "
                 "<= 4294967295", id="seed_just_too_large"),
    pytest.param(("runtime", "seed"), -1, "runtime.seed: got -1; expected an integer >= 0 and <= 4294967295",
                 id="negative_seed"),
    pytest.param(("evaluate", "genotype"), 5, "evaluate.genotype: got 5; expected a string", id="int_for_string"),
    pytest.param(("data", "train_portion"), 1.0, "data.train_portion: got 1.0; expected a number > 0 and < 1",
                 id="bound_upper_exclusive"),
    pytest.param(("search", "strategy"), "darts",
                 "search.strategy: got 'darts'; expected one of ednas, random, enas, evnas, nao, rea",
                 id="unknown_choice"),
    pytest.param(("task",), "mnist", "task: got 'mnist'; expected one of cifar10, digits, ptb, markov, nb201, imagenet",
                 id="unknown_top_level_choice"),
    pytest.param(("digits", "search", "lr"), 0, "digits.search.lr: got 0; expected a number > 0",
                 id="nested_error_names_full_key"),
    pytest.param(("search", "enas", "temperature"), 0, "search.enas.temperature: got 0; expected a number > 0",
                 id="strategy_section"),
    pytest.param(("ptb", "search", "nao", "trade_off"), 1.5,
                 "ptb.search.nao.trade_off: got 1.5; expected a number >= 0 and <= 1", id="strategy_section_of_a_task"),
    pytest.param(("search", "evnas", "tournament_size"), 60,
                 "search.evnas.tournament_size: got 60; expected at most search.evnas.population_size (50) "
                 "(a tournament draws distinct individuals)", id="strategy_keys_that_conflict"),
])
def test_bad_value_is_one_line_naming_the_key_and_what_is_expected(raw, path, value, message):
    d = data(raw)
    *sections, key = path
    section = d
    for name in sections:
        section = section[name]
    section[key] = value
    assert error_of(d) == message


def test_unknown_key_in_section(raw):
    d = data(raw)
    d["search"]["lrr"] = 0.1
    known = ", ".join(f.name for f in dataclasses.fields(SearchConfig))
    assert error_of(d) == f"search.lrr: unknown key; did you mean search.lr? known keys of search: {known}"


def test_unknown_key_in_nested_task_section(raw):
    d = data(raw)
    d["digits"]["derive"]["sample"] = 3
    known = ", ".join(f.name for f in dataclasses.fields(DeriveConfig))
    assert error_of(d) == (f"digits.derive.sample: unknown key; did you mean digits.derive.samples? "
                           f"known keys of digits.derive: {known}")


def test_unknown_top_level_key(raw):
    d = data(raw)
    d["serach"] = {"lr": 0.01}
    assert error_of(d) == ("serach: unknown key; did you mean search? known keys of params: task, runtime, data, "
                           "search, derive, evaluate, digits, ptb, markov, nb201, imagenet, tracking")


def test_unknown_key_without_a_close_match_lists_the_known_keys(raw):
    d = data(raw)
    d["tracking"]["colour"] = "red"
    assert error_of(d) == ("tracking.colour: unknown key; known keys of tracking: policy_every, heatmap_every, "
                           "progress")


def test_unknown_key_that_is_not_a_string(raw):
    d = data(raw)
    d["search"][1] = 2  # `1: 2` in params.yaml
    assert error_of(d).startswith("search.1: unknown key; known keys of search: strategy, epochs")


def test_missing_key(raw):
    d = data(raw)
    del d["search"]["lr"]
    assert error_of(d) == "search.lr: missing; add it to params.yaml (default 0.05)"


def test_missing_key_of_digits_section(raw):
    d = data(raw)
    del d["digits"]["evaluate"]["cutout"]
    assert error_of(d) == "digits.evaluate.cutout: missing; add it to params.yaml (default 16)"


def test_missing_section(raw):
    d = data(raw)
    del d["tracking"]
    assert error_of(d) == "tracking: missing"


def test_section_not_a_mapping(raw):
    d = data(raw)
    d["search"] = 5
    assert error_of(d) == "search: expected a mapping of keys, got int"


def test_top_level_not_a_mapping():
    with pytest.raises(ConfigError, match=r"^params: expected a mapping of keys, got list$"):
        load_params([1, 2])


def test_yaml12_exponent_is_a_float(raw):
    """YAML 1.2 (DVC's reading) gives 1e-3 as a float; a string that looks like a number is refused (above)."""
    d = data(raw)
    d["search"]["policy_lr"] = yaml12("x: 1e-3")["x"]
    value = load_params(d).search.policy_lr
    assert value == 0.001 and isinstance(value, float)


def test_yaml12_yes_is_a_string_and_refused(raw):
    d = data(raw)
    d["runtime"]["amp"] = yaml12("amp: yes")["amp"]
    assert d["runtime"]["amp"] == "yes"  # YAML 1.1 (PyYAML) would have read true: DVC and the stages disagreed
    assert error_of(d).startswith("runtime.amp: got 'yes'; expected true or false")


def test_int_beyond_any_float_for_a_float_knob(raw):
    d = data(raw)
    d["search"]["lr"] = 10**400
    message = error_of(d)
    assert message.startswith("search.lr: got 1000") and message.endswith("; expected a number > 0")


def test_largest_seed_is_accepted_and_every_generator_takes_it(raw):
    """runtime.seed's bound (seeds.SEED_MAX) keeps every generator the seed reaches within manual_seed's range:
    the hashed seeds (seed_for), the split and the loaders' (seed + 1) * 1_000_003 + epoch."""
    import torch

    from ednas_core.data import DeviceLoader, split_indices
    from ednas_core.runtime import Runtime

    d = data(raw)
    d["runtime"]["seed"] = SEED_MAX
    assert load_params(d).runtime.seed == SEED_MAX
    runtime = Runtime(torch.device("cpu"), amp=False, channels_last=False, deterministic=False, seed=SEED_MAX)
    runtime.generator("arch", 10**6)
    state = torch.random.get_rng_state()
    runtime.seed_epoch(10**6, "search")
    torch.random.set_rng_state(state)
    split_indices(10, 0.5, SEED_MAX)
    images, labels = torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64)
    loader = DeviceLoader(images, labels, 2, (0.5,), (0.5,), seed=SEED_MAX + 1, augment=True)
    assert len(list(loader.epoch(10**6))) == 2


def test_int_for_float_becomes_float(raw):
    d = data(raw)
    d["search"]["grad_clip"] = 5
    value = load_params(d).search.grad_clip
    assert value == 5.0 and isinstance(value, float)


@pytest.mark.parametrize("bad, shown", [(float("nan"), "nan"), (float("inf"), "inf"), ("nan", "'nan'"),
                                        ("inf", "'inf'")])
def test_non_finite_rejected(raw, bad, shown):
    d = data(raw)
    d["search"]["grad_clip"] = bad
    why = "" if isinstance(bad, str) else " (finite: nan and inf are refused)"  # inf > 0, but not finite
    assert error_of(d) == f"search.grad_clip: got {shown}; expected a number > 0{why}"


def test_yaml_nan_rejected(raw):
    d = data(raw)
    d["evaluate"]["lr"] = yaml12("x: .nan")["x"]
    assert error_of(d) == "evaluate.lr: got nan; expected a number > 0 (finite: nan and inf are refused)"
    d["evaluate"]["lr"], d["search"]["epochs"] = 0.1, yaml12("x: .inf")["x"]
    assert error_of(d) == "search.epochs: got inf; expected an integer >= 1"


@pytest.mark.parametrize("device", ["cuda:x", "gpu", "CUDA", "cuda:", "cpu:0", "mps"])
def test_misspelt_device_rejected_before_any_stage(raw, device):
    """check-params reads the same load: a device torch cannot parse stops the run there, not in the search."""
    d = data(raw)
    d["runtime"]["device"] = device
    assert error_of(d) == f"runtime.device: got {device!r}; expected auto, cpu, cuda or cuda:N"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_spellings_accepted(raw, device):
    d = data(raw)
    d["runtime"]["device"] = device
    assert load_params(d).runtime.device == device   # whether the GPU exists is checked by the stage


def test_non_strict_fills_defaults():
    p = from_mapping(Params, {"task": "digits", "search": {"lr": 0.2}, "evaluate": {}}, strict=False)
    assert p.task == "digits"
    assert p.search == dataclasses.replace(SearchConfig(), lr=0.2)
    assert p.evaluate == Params().evaluate
    assert p.digits == digits_defaults()  # an absent section keeps Params' default for it
    assert p.runtime == Params().runtime and p.tracking == Params().tracking
    assert from_mapping(Params, None, strict=False) == Params()


def test_non_strict_still_rejects_unknown_and_bad_values():
    with pytest.raises(ConfigError, match=r"^search\.lrr: unknown key"):
        from_mapping(Params, {"search": {"lrr": 1}}, strict=False)
    with pytest.raises(ConfigError, match=r"^derive\.mode: got 'max'; expected one of best, argmax, queried$"):
        from_mapping(Params, {"derive": {"mode": "max"}}, strict=False)


def test_strict_empty_mapping_names_first_missing_key():
    with pytest.raises(ConfigError, match=r"^task: missing; add it to params\.yaml \(default 'cifar10'\)$"):
        load_params({})


# --- task sections ----------------------------------------------------------------------------------------------

def test_task_config_cifar10_is_top_level_sections(raw):
    p = load_params(raw)
    tc = p.task_config()
    assert isinstance(tc, TaskConfig)
    assert tc.search is p.search and tc.derive is p.derive and tc.evaluate is p.evaluate
    assert tc.search.lr == 0.05
    assert p.task_prefix() == ""


def test_task_config_digits_is_digits_sections(raw):
    d = data(raw)
    d["task"] = "digits"
    d["digits"]["search"]["lr"] = 0.123
    p = load_params(d)
    tc = p.task_config()
    assert tc is p.digits
    assert tc.search.lr == 0.123 and tc.search.epochs == 15
    assert tc.evaluate.layers == 5
    assert p.task_prefix() == "digits."


# --- flatten ----------------------------------------------------------------------------------------------------

def test_flatten_nested():
    assert flatten({"a": {"b": 1, "c": {"d": 2, "e": [3]}}, "f": "x"}) == {"a.b": 1, "a.c.d": 2, "a.c.e": [3],
                                                                          "f": "x"}
    assert flatten({}) == {}
    assert flatten({"a": 1}, prefix="p.") == {"p.a": 1}


def test_flatten_params():
    flat = flatten(dataclasses.asdict(Params()))
    assert flat["task"] == "cifar10"
    assert flat["search.lr"] == 0.05
    assert flat["digits.search.lr"] == 0.1
    assert flat["tracking.progress"] == "auto"
    assert not any(isinstance(v, dict) for v in flat.values())


def test_derive_mode_queried_only_for_a_tabular_nb201_search(raw):
    """queried picks among a tabular search's own look-ups: refused for any other task or mode, with the key."""
    raw["derive"]["mode"] = "queried"
    with pytest.raises(ConfigError, match=r"^derive\.mode: queried picks among the table look-ups"):
        load_params(raw)
    raw["derive"]["mode"] = "best"
    raw["nb201"]["search"]["mode"] = "weight_sharing"
    with pytest.raises(ConfigError, match=r"^nb201\.derive\.mode: queried"):
        load_params(raw)
    raw["nb201"]["search"]["mode"] = "tabular"
    assert load_params(raw).nb201.derive.mode == "queried"


@pytest.mark.parametrize("section", [("search",), ("ptb", "search"), ("imagenet", "search"), ("digits", "search")])
def test_a_nao_search_shorter_than_its_round_interval_is_refused(raw, section):
    """NAO learns only in its rounds (every update_every epochs): a schedule with none would derive from an
    untrained predictor; refused with the key. The same epochs are fine for a strategy that learns every epoch."""
    params = data(raw)
    search = params
    for name in section:
        search = search[name]
    where = ".".join(section) + "."
    search["strategy"], search["epochs"] = "nao", search["nao"]["update_every"] - 1
    assert error_of(params) == (
        f"{where}nao.update_every: got {search['nao']['update_every']}; expected at most {where}epochs "
        f"({search['epochs']}): NAO scores its pool and trains its predictor only every update_every epochs, so "
        f"this search would run no round; lower {where}nao.update_every or raise {where}epochs")
    search["epochs"] = search["nao"]["update_every"]
    assert load_params(params)
    search["strategy"], search["epochs"] = "enas", 1
    assert load_params(params)


@pytest.mark.parametrize("update_every,budget,scored", [(4, 150, 30), (16, 150, 0), (1, 45, 45)])
def test_a_tabular_nao_search_whose_budget_never_scores_its_whole_pool_is_refused(raw, update_every, budget, scored):
    """Tabular NB201: NAO gets at most queries_per_epoch look-ups on its round epochs, so a round needs several of
    them (ednas_core/tabular.py); a budget that never scores the whole pool runs no round (3 and 50 are fine: one
    round, as tests/test_tabular.py's runs count)."""
    params = data(raw)
    search = params["nb201"]["search"]
    search["strategy"], search["budget"], search["nao"]["update_every"] = "nao", budget, update_every
    assert error_of(params).startswith(
        f"nb201.search.nao.seed_architectures: got 50; expected at most {scored}, the look-ups NAO gets in this "
        f"tabular search (nb201.search.budget {budget}, at most nb201.search.queries_per_epoch 10 on every "
        f"nb201.search.nao.update_every-th ({update_every}) epoch): no round would")
    search["strategy"] = "ednas"
    assert load_params(params)
    search["strategy"], search["mode"], search["epochs"] = "nao", "weight_sharing", update_every
    params["nb201"]["derive"]["mode"] = "best"
    assert load_params(params)  # weight sharing scores the whole pool in its round epoch
    params["nb201"]["derive"]["mode"] = "queried"
    for update_every, budget in ((3, 150), (1, 50)):
        search["mode"], search["budget"], search["nao"]["update_every"] = "tabular", budget, update_every
        assert load_params(params)


@pytest.mark.parametrize("strategy,key,needed", [("enas", "enas.num_aggregate", 20),
                                                 ("evnas", "evnas.population_size", 10),
                                                 ("rea", "rea.population_size", 11)])
def test_a_tabular_budget_below_the_strategys_first_learning_step_is_refused(raw, strategy, key, needed):
    """A tabular search whose budget ends before the strategy's first learning step would be random search under
    the strategy's name (tests/test_tabular.py counts the steps at these budgets)."""
    params = data(raw)
    search = params["nb201"]["search"]
    search["strategy"], search["budget"] = strategy, needed - 1
    message = error_of(params)
    assert message.startswith(f"nb201.search.budget: got {needed - 1}; strategy {strategy} learns nothing in fewer "
                              f"than {needed} look-ups (")
    assert message.endswith(f"); raise nb201.search.budget or lower nb201.search.{key}")
    search["budget"] = needed
    assert load_params(params)
    search["strategy"], search["budget"] = "ednas", 1
    assert load_params(params)
