"""Genotypes: round trips with sampled architectures, JSON, and the paper's genotypes (EDNAS_SPEC.md s.7, s.8)."""

import json

import pytest
import torch

from ednas_core.genotypes import (PAPER_GENOTYPES, Genotype, from_architecture, load_genotype, save_genotype,
                                  to_architecture)
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.spaces import CNN_SPACE, RNN_SPACE


@pytest.mark.parametrize("space", [CNN_SPACE, RNN_SPACE], ids=["cnn", "rnn"])
def test_genotype_round_trip_of_sampled_architectures(space):
    vectors = PolicyVectors(space, init_std=1.0, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    for _ in range(500):
        arch = vectors.sample(g)
        genotype = from_architecture(space, arch)
        assert genotype.space == space.name
        # the genotype names exactly the sampled ops and inputs, node by node
        for t in space.cell_types:
            expected = [(space.cell.ops[op], pred) for node in arch[t] for pred, op in node]
            assert list(genotype.cells[t]) == expected
            assert genotype.concat[t] == space.concat
        assert to_architecture(genotype) == arch
        reloaded = Genotype.from_dict(json.loads(genotype.to_json()))
        assert reloaded == genotype
        assert to_architecture(reloaded) == arch


def test_from_architecture_canonicalises():
    arch = {"normal": (((1, 3), (0, 2)), ((0, 0), (1, 0)), ((0, 0), (1, 0)), ((0, 0), (1, 0))),
            "reduce": (((0, 0), (1, 0)),) * 4}
    genotype = from_architecture(CNN_SPACE, arch)
    assert genotype.cells["normal"][:2] == (("skip_connect", 0), ("sep_conv_3x3", 1))


PAPER_JSON = {
    "paper-cifar10": {
        "space": "cnn",
        "normal": [["sep_conv_3x3", 0], ["dil_conv_3x3", 1], ["sep_conv_5x5", 0], ["avg_pool_3x3", 1],
                   ["sep_conv_5x5", 0], ["sep_conv_5x5", 3], ["avg_pool_3x3", 0], ["sep_conv_5x5", 1]],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [["skip_connect", 0], ["avg_pool_3x3", 1], ["sep_conv_3x3", 0], ["dil_conv_3x3", 2],
                   ["max_pool_3x3", 0], ["skip_connect", 3], ["sep_conv_5x5", 0], ["skip_connect", 4]],
        "reduce_concat": [2, 3, 4, 5],
    },
    "paper-imagenet": {
        "space": "cnn",
        "normal": [["sep_conv_5x5", 0], ["dil_conv_5x5", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
                   ["max_pool_3x3", 1], ["dil_conv_3x3", 3], ["sep_conv_5x5", 1], ["max_pool_3x3", 3]],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [["sep_conv_5x5", 0], ["sep_conv_3x3", 1], ["dil_conv_3x3", 0], ["sep_conv_3x3", 2],
                   ["sep_conv_3x3", 0], ["avg_pool_3x3", 2], ["avg_pool_3x3", 0], ["dil_conv_5x5", 1]],
        "reduce_concat": [2, 3, 4, 5],
    },
    "paper-ptb": {
        "space": "rnn",
        "recurrent": [["identity", 0], ["tanh", 1], ["relu", 1], ["tanh", 2],
                      ["relu", 4], ["relu", 3], ["sigmoid", 4], ["tanh", 7]],
        "recurrent_concat": [1, 2, 3, 4, 5, 6, 7, 8],
    },
}


@pytest.mark.parametrize("name", sorted(PAPER_JSON))
def test_paper_genotypes_load_by_name_and_match_the_published_lists(name):
    genotype = load_genotype(name)
    assert genotype is PAPER_GENOTYPES[name]
    assert json.loads(genotype.to_json()) == PAPER_JSON[name]
    arch = to_architecture(genotype)
    assert from_architecture(genotype.search_space, arch) == genotype


def test_paper_ptb_genotype_as_architecture():
    arch = to_architecture(load_genotype("paper-ptb"))
    assert arch == {"recurrent": (((0, 3),), ((1, 0),), ((1, 1),), ((2, 0),), ((4, 1),), ((3, 1),),
                                  ((4, 2),), ((7, 0),))}


def test_load_genotype_from_json_file(tmp_path):
    path = tmp_path / "genotype.json"
    save_genotype(PAPER_GENOTYPES["paper-imagenet"], path)
    assert load_genotype(path) == PAPER_GENOTYPES["paper-imagenet"]
    assert load_genotype(str(path)) == PAPER_GENOTYPES["paper-imagenet"]
    assert [p.name for p in tmp_path.iterdir()] == ["genotype.json"]


def test_unknown_name_lists_the_known_names(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_genotype("paper-cifar100")
    for name in ("paper-cifar10", "paper-imagenet", "paper-ptb"):
        assert name in str(err.value)
    with pytest.raises(FileNotFoundError):
        load_genotype(tmp_path / "missing.json")


def test_invalid_json_file_raises_value_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"space": "cnn", "normal": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_genotype(path)


def _cifar_dict():
    return json.loads(json.dumps(PAPER_JSON["paper-cifar10"]))


def test_bad_op_names_the_op(tmp_path):
    data = _cifar_dict()
    data["reduce"][3][0] = "conv_7x1_1x7"
    with pytest.raises(ValueError, match="conv_7x1_1x7"):
        Genotype.from_dict(data)
    path = tmp_path / "bad_op.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="conv_7x1_1x7"):
        load_genotype(path)


@pytest.mark.parametrize("index, value", [(0, 2), (3, 3), (7, 9), (4, -1)])
def test_bad_input_index_raises_value_error(index, value):
    data = _cifar_dict()
    data["normal"][index][1] = value
    with pytest.raises(ValueError, match="input"):
        Genotype.from_dict(data)


def test_duplicate_inputs_and_wrong_lengths_are_rejected():
    data = _cifar_dict()
    data["normal"][1][1] = 0  # node 2 takes node 0 twice
    with pytest.raises(ValueError, match="distinct inputs"):
        Genotype.from_dict(data)
    data = _cifar_dict()
    data["normal"] = data["normal"][:6]
    with pytest.raises(ValueError, match="expected 8"):
        Genotype.from_dict(data)
    data = _cifar_dict()
    del data["reduce"]
    with pytest.raises(ValueError, match="reduce"):
        Genotype.from_dict(data)
    data = _cifar_dict()
    data["normal_concat"] = [2, 3]
    with pytest.raises(ValueError, match="concat"):
        Genotype.from_dict(data)
    with pytest.raises(ValueError, match="space"):
        Genotype.from_dict({**_cifar_dict(), "space": "transformer"})


SHAPE = ('{"normal": [[op, input], ...], "reduce": [[op, input], ...]} (a recurrent cell: '
         '{"space": "rnn", "recurrent": [[op, input], ...]})')


@pytest.mark.parametrize("top, kind", [([["sep_conv_3x3", 0]], "a list"), (3, "a number"),
                                       ("paper-cifar10", "a string"), (None, "null"), (True, "true or false")])
def test_genotype_file_that_is_not_an_object_is_one_line_naming_file_and_shape(tmp_path, top, kind):
    """evaluate.genotype: path to a JSON list (or number, string) gave an AttributeError traceback."""
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(top))
    with pytest.raises(ValueError) as err:
        load_genotype(path)
    assert str(err.value) == f"genotype file {path}: expected a JSON object {SHAPE}, got {kind}"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(normal=5), "genotype normal: expected a list [[op, input], ...], got a number"),
    (lambda d: d.update(normal={"op": "sep_conv_3x3"}), "genotype normal: expected a list [[op, input], ...], "
                                                        "got an object"),
    (lambda d: d["normal"][0].__setitem__(1, "0"), "genotype normal: entries must be [op, input] (a name and an "
                                                   "integer), got ['sep_conv_3x3', '0']"),
    (lambda d: d["normal"][0].__setitem__(1, 0.0), "genotype normal: entries must be [op, input] (a name and an "
                                                   "integer), got ['sep_conv_3x3', 0.0]"),
    (lambda d: d["normal"][0].__setitem__(1, False), "genotype normal: entries must be [op, input] (a name and an "
                                                     "integer), got ['sep_conv_3x3', False]"),
    (lambda d: d["normal"][0].__setitem__(0, ["sep_conv_3x3"]), "genotype normal: entries must be [op, input] (a "
                                                                "name and an integer), got [['sep_conv_3x3'], 0]"),
    (lambda d: d.update(normal_concat="2345"), "genotype normal_concat must be [2, 3, 4, 5] in this search space"),
    (lambda d: d.update(normal_concat=[2, 3, 4, 5.5]), "genotype normal_concat must be [2, 3, 4, 5] in this "
                                                       "search space"),
    (lambda d: d.update(space=["cnn"]), "genotype space ['cnn'] is unknown; known: cnn, rnn, nb201"),
], ids=["cell_number", "cell_object", "input_string", "input_float", "input_bool", "op_list", "concat_string",
        "concat_float", "space_list"])
def test_genotype_file_of_wrong_types_is_one_line_naming_the_file(tmp_path, change, message):
    """Values of the wrong JSON type were converted (int('0'), int(0.5)) or raised TypeError tracebacks."""
    data = _cifar_dict()
    change(data)
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as err:
        load_genotype(path)
    assert str(err.value) == f"{path}: {message}"


def test_from_dict_of_a_non_object_names_the_shape():
    with pytest.raises(ValueError, match=r"^expected a genotype object \{\"normal\""):
        Genotype.from_dict([["sep_conv_3x3", 0]])  # type: ignore[arg-type]


def test_binary_genotype_file_is_one_line(tmp_path):
    path = tmp_path / "genotype.json"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ValueError, match=r"is not a text \(JSON\) file"):
        load_genotype(path)
